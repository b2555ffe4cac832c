#!/usr/bin/env bash
# Second call for `cuda:wgs`: the chained GPU test after making the split tiles' sum
# deterministic (block order), then `bench --kernel` of stream-K variants on the M = 8, 32
# and 128 rows against the default, and the committed table on the same rows (its winners).
# Build as in run.sh; carry [".dev"].
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/wgsp; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong|cuda:wgs" $OUT/gpu-tests.log | head -40 >>$log
for m in 8 32 128; do (head -5 shapes/llama-h100-63.csv; awk -F, -v m=$m 'NR>5 && $3==m' shapes/llama-h100-63.csv) >$OUT/m$m.csv; done
(head -5 shapes/llama-h100-63.csv; awk -F, 'NR>5 && $3>=8 && $3<=128' shapes/llama-h100-63.csv) >$OUT/m8-128.csv
timeout 60 .dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes $OUT/m8-128.csv --budget-ms 200 -q --pdl --json $OUT/table.json | grep -E "^M <= 32|^32 < M" >>$log
probe() {  # <M> <id>...
  local m=$1; shift
  for id in "$@"; do
    timeout 60 .dev/gemmtune bench --backend cuda --kernel $id --shapes $OUT/m$m.csv --budget-ms 200 -q --pdl --json $OUT/k-$id.json >/dev/null 2>$OUT/err-$id.txt || echo "$id failed: $(tail -2 $OUT/err-$id.txt)" >>$log
  done
}
probe 8 cuda:wgs:n16:g1:t1:s16:o1 cuda:wgs:n16:g1:t1:s8:o2 cuda:wgs:n16:g1:t2:s12:o1 cuda:wgs:n16:g2:t1:s12:o1
probe 32 cuda:wgs:n32:g1:t1:s16:o1 cuda:wgs:n32:g1:t1:s8:o2 cuda:wgs:n32:g1:t2:s8:o1 cuda:wgs:n32:g2:t1:s8:o1
probe 128 cuda:wgs:n128:g1:t1:s8:o1 cuda:wgs:n128:g1:t1:s4:o2 cuda:wgs:n128:g2:t1:s6:o1 cuda:wgs:n128:g2:t1:s4:o1
echo "== end" >>$log
tar -C "$OUT" -czf "$final/results.tgz" . ; cp $log "$final/"
