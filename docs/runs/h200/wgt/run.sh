#!/usr/bin/env bash
# The first device call for branch `wgt` (the TMA form of the wgmma
# kernel as family `cuda:wgt`, 8/12/16 stages). Build here first:
#   git checkout main && scripts/gpu/build.sh && cp .dev/gemmtune /tmp/gemmtune-main
#   git checkout wgt && scripts/gpu/build.sh && cp /tmp/gemmtune-main .dev/gemmtune-main
# then run from the branch tree with carry [".dev"], timeout_s 590 (about 6 minutes).
# 1. GPU tests of this build (every candidate on awkward shapes, chained calls incl. a wgt row).
# 2. The 63 shapes re-tuned with wgt in the candidate set and benched (the table to commit:
#    tables/h200-llama-63.csv; check the tune stays <= 60 s with the extra family).
# 3. The decode A/B against main's committed table, alternated (what docs/runs/h200/wg-deep
#    measured with the branch's earlier form: 87.0 -> 87.7 %).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/wgt; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version --format=csv >>$log
timeout 150 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked" $OUT/gpu-tests.log >>$log
timeout 200 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^\[|^tuned " $OUT/tune.log >$OUT/tune-decisions.txt
grep -E "^tuned " $OUT/tune.log >>$log
grep -c "cuda:wgt" $OUT/h200-llama-63.csv | sed 's/^/wgt rows: /' >>$log
timeout 200 .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-chained.json >>$log 2>&1
tar -C "$OUT" --exclude tune.log -czf "$final/results.tgz" . ; cp $log "$final/"
for r in 1 2; do
  .dev/gemmtune-main bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl | grep "^M <= 32" | sed "s/^/main r$r: /" >>$log
  .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl | grep "^M <= 32" | sed "s/^/wgt  r$r: /" >>$log
done
echo "== end" >>$log
cp $log "$final/"
