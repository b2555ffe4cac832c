#!/usr/bin/env bash
# The split-K ending with arrival tickets first (kernels/common.cuh `finish_tile`) against
# main's: the GPU tests; the timelines of both versions of the split-K kernels (binaries of
# build.sh, main's with SUFFIX=-main); then the committed table's 27 decode rows benched by
# main's build and this one alternately, twice (only rows with a K-split mma/mmal winner
# change kernels; the others are the control).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/tl; mkdir -p "$OUT/csv" "$final"
log=$OUT/log.txt
( time timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
tl() { OUT=$OUT/csv "$@" | grep -E "^==|^--|mean over" >>$log; }
for v in "" -main; do
  echo "#### timeline$v" >>$log
  tl .dev/timeline$v/mma_mt1_w8_v1_k8 8 1280 8192
  tl .dev/timeline$v/mmal_mt2_w8_k2 8 4096 4096
  tl .dev/timeline$v/mmal_mt1_w8_k4 8 1280 8192
done
for r in 1 2; do
  for t in main new; do
    bin=.dev/gemmtune; [ $t = main ] && bin=.dev/gemmtune-main
    timeout 60 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-$r.json 2>&1 | grep -E "decode phase|gate" | sed "s/^/$t $r: /" >>$log
  done
done
echo "#### the other kernels' timelines (warm clocks)" >>$log
b=.dev/timeline
tl $b/gemv_r4_t256_u1 1 1280 8192
tl $b/gemv_r4_t256_u2 1 1280 8192
tl $b/mmal_mt1_w16_k1 8 1280 8192
tl $b/wgt_n32_s16_k4 32 1280 8192
tl $b/wg_n32_s8_k8 32 1280 8192
tl $b/wgt_n32_s16_k2 32 4096 4096
tl $b/mmal_mt1_w8_k1 8 8192 1024
tl $b/wgt_n32_s12_k1 32 8192 1024
cd $OUT && tar czf data.tgz csv *.json gpu-tests.log && cp data.tgz log.txt "$final/"
