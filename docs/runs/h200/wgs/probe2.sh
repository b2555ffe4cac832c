#!/usr/bin/env bash
# Third call for `cuda:wgs`, after the finisher scheme (each block walks its range
# backwards; the block holding a split tile's last K step waits for the others' partials
# and writes Y; no fence or atomic on the other blocks' critical path). GPU tests, the
# same `bench --kernel` probe as probe.sh (the committed table's winners on the same rows
# in this call), then the 36 rows with M <= 128 tuned with wgs in the set and benched.
# Build as in run.sh; carry [".dev"].
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/wgsp; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong|cuda:wgs" $OUT/gpu-tests.log | head -40 >>$log
for m in 8 32 128; do (head -5 shapes/llama-h100-63.csv; awk -F, -v m=$m 'NR>5 && $3==m' shapes/llama-h100-63.csv) >$OUT/m$m.csv; done
(head -5 shapes/llama-h100-63.csv; awk -F, 'NR>5 && $3<=128' shapes/llama-h100-63.csv) >$OUT/m1-128.csv
timeout 60 .dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes $OUT/m1-128.csv --budget-ms 200 -q --pdl --json $OUT/table.json | grep -E "^M <= 32|^32 < M" | sed "s/^/committed table: /" >>$log
probe() {  # <M> <id>...
  local m=$1; shift
  for id in "$@"; do
    timeout 60 .dev/gemmtune bench --backend cuda --kernel $id --shapes $OUT/m$m.csv --budget-ms 200 -q --pdl --json $OUT/k-$id.json >/dev/null 2>$OUT/err-$id.txt || echo "$id failed: $(tail -2 $OUT/err-$id.txt)" >>$log
  done
}
probe 8 cuda:wgs:n16:g1:t1:s16:o1 cuda:wgs:n16:g1:t1:s8:o2
probe 32 cuda:wgs:n32:g1:t1:s16:o1 cuda:wgs:n32:g1:t1:s8:o2
probe 128 cuda:wgs:n128:g1:t1:s8:o1 cuda:wgs:n128:g2:t1:s6:o1
timeout 100 .dev/gemmtune tune --backend cuda --shapes $OUT/m1-128.csv --out $OUT/wgs-36.csv --budget-ms 250 --pdl >$OUT/tune.log 2>&1
grep -E "^tuned " $OUT/tune.log >>$log
echo "wgs rows: $(grep -c cuda:wgs $OUT/wgs-36.csv)" >>$log
timeout 60 .dev/gemmtune bench --backend cuda --table $OUT/wgs-36.csv --shapes $OUT/m1-128.csv --budget-ms 200 -q --pdl --json $OUT/wgs-36.json | grep -E "^M <= 32|^32 < M" | sed "s/^/wgs table: /" >>$log
echo "== end" >>$log
tar -C "$OUT" -czf "$final/results.tgz" . ; cp $log "$final/"
