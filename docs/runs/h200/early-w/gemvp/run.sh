#!/usr/bin/env bash
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p $out
log=$out/log.txt
b=.dev/gemmtune
awk -F, '/^#/||/^dtype/{print;next} $3<=32{print}' shapes/llama-h100-63.csv > /tmp/dec.csv
timeout 150 .dev/cuda-tests --ignored --test-threads 1 chained awkward >$out/gpu-tests.log 2>&1
grep -E "^test |test result|panicked" $out/gpu-tests.log >>$log
$b tune --backend cuda --shapes /tmp/dec.csv --out $out/dec-gemvp.csv --budget-ms 250 --pdl -v >$out/tune.log 2>&1
grep -E "^tuned" $out/tune.log >>$log
for r in 1 2; do for t in new old; do
  tab=$out/dec-gemvp.csv; [ $t = old ] && tab=tables/h200-llama-63.csv
  echo "== bench $t table chained round $r" >>$log
  $b bench --backend cuda --table $tab --shapes /tmp/dec.csv --budget-ms 300 -q --pdl $([ $r = 1 ] && echo --json $out/bench-$t.json) >>$log 2>&1
done; done
for c in "llama-3.1-70b 8"; do set -- $c; for t in old new old new; do
  tab=$out/dec-gemvp.csv; [ $t = old ] && tab=tables/h200-llama-63.csv
  printf '%s tp%s %s table: ' $1 $2 $t >>$log
  timeout 60 $b decode-bench --backend cuda --config shapes/configs/$1.json --tp $2 --table $tab --batch 1 --prompt-len 128 --steps 64 --reps 5 2>&1 | grep '^| tuned' | cut -d'|' -f5,7 >>$log
done; done
echo "== end" >>$log
