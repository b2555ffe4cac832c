#!/usr/bin/env bash
# Branch wg-pingpong (commit 0f79bb4): the warp-specialized TMA form of cuda:wg (l1: a
# producer warp, consumer warpgroups on full/empty mbarriers, all stages in flight) beside
# the cp.async form (l0). Run 2026-12-03 as one device call with the branch's binaries in
# .dev/ws (built from a worktree of the branch: `cargo build --release`, the tests/cuda.rs
# test binary; carry .dev/ws): correctness first, then the 18 mid-M shapes tuned -v and
# benched (compare the best l0 and l1 per shape: best-per-family.txt).
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p $out; log=$out/log.txt
nvidia-smi --query-gpu=name,driver_version --format=csv >>$log
timeout 150 .dev/ws/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$out/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $out/gpu-tests.log | head -20 >>$log
timeout 120 .dev/ws/gemmtune tune --backend cuda --shapes scripts/gpu/mid-m.csv --out $out/mid.csv --budget-ms 250 --pdl -v >$out/tune.log 2>&1
grep -E "^tuned|wall|error" $out/tune.log >>$log
timeout 90 .dev/ws/gemmtune bench --backend cuda --table $out/mid.csv --shapes scripts/gpu/mid-m.csv --budget-ms 300 -q --pdl --json $out/bench-mid.json >>$log 2>&1
