#!/usr/bin/env bash
# On the GPU machine, binaries of build.sh carried in .dev/timeline: the timeline of 48 chained
# calls of each kernel on the shapes its variant won (tables/h200-llama-63.csv) or was
# measured on. Output: log.txt (stdout), the raw records as CSV under $OUT.
set -uo pipefail
b=.dev/timeline
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
run() { "$b/$1" "${@:2}"; }
run gemv_r4_t256_u1 1 1280 8192
run gemv_r4_t256_u2 1 1280 8192
run mma_mt1_w8_v1_k8 8 1280 8192
run mmal_mt1_w16_k1 8 1280 8192
run wgt_n32_s16_k4 32 1280 8192
run wgt_n32_s16_k4 8 1280 8192
run wg_n32_s8_k8 32 1280 8192
run gemv_r2_t256_u1 1 4096 4096
run mmal_mt2_w8_k2 8 4096 4096
run wgt_n32_s16_k2 32 4096 4096
run mmal_mt1_w8_k1 1 8192 1024
run mmal_mt1_w8_k1 8 8192 1024
run wgt_n32_s12_k1 32 8192 1024
run gemv_r2_t256_u1 1 28672 4096
run wgt_n32_s16_k2 32 28672 4096
