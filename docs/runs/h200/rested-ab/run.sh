#!/usr/bin/env bash
# Tune's second A/B from rest: a contender gaining less than 6 % must also beat the
# default after 500 ms idle (the GPU default of `tune --settle-ms`). The 36 shapes with
# M >= 128 tuned with it (-v: which rows it turned back to the default), then that table
# and the committed one benched alternately, twice: does the gate's stale check still
# flag rows? Build (scripts/gpu/build.sh, carry [".dev"]) of this commit -> .dev/gemmtune.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/ra; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, 'NR == 1 || $1 == "dtype" || ($3 + 0 >= 128)' shapes/llama-h100-63.csv >$OUT/heavy.csv
grep -c '^bf16' $OUT/heavy.csv >>$log
( time timeout 150 .dev/gemmtune tune --backend cuda --shapes $OUT/heavy.csv --out $OUT/heavy-table.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "^\[|not from rest|^real|tuned [0-9]+ shapes" $OUT/tune.txt | grep -E "not from rest|^real|shapes" >>$log
for r in 1 2; do
  for t in committed rested; do
    table=tables/h200-llama-63.csv; [ $t = rested ] && table=$OUT/heavy-table.csv
    timeout 80 .dev/gemmtune bench --backend cuda --table $table --shapes $OUT/heavy.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-r$r.json 2>&1 | grep -vE "^limits" | sed "s/^/$t r$r: /" >>$log
  done
done
echo "== end" >>$log
cd $OUT && tar czf data.tgz *.json *.csv tune.txt && cp data.tgz log.txt "$final/"
