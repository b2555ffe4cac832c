#!/usr/bin/env bash
# A/B of early weight loads under PDL: .dev/gemmtune-old (HEAD) vs .dev/gemmtune (new kernels).
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p $out
log=$out/log.txt
new=.dev/gemmtune; old=.dev/gemmtune-old
pick() { [ $1 = old ] && echo $old || echo $new; }
awk -F, '/^#/||/^dtype/{print;next} $3<=32{print}' shapes/llama-h100-63.csv > /tmp/dec.csv
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>$log
echo "== gpu tests" >>$log
timeout 150 .dev/cuda-tests --ignored --test-threads 1 chained awkward quantized >>$log 2>&1
for r in 1 2; do for b in old new; do
  echo "== bench committed table chained, $b, round $r" >>$log
  timeout 60 $(pick $b) bench --backend cuda --table tables/h200-llama-63.csv --shapes /tmp/dec.csv --budget-ms 300 -q --pdl $([ $r = 1 ] && echo --json $out/bench-$b-$r.json) >>$log 2>&1
done; done
for b in old new; do
  echo "== decode-bench 8B committed table, $b" >>$log
  timeout 60 $(pick $b) decode-bench --backend cuda --config shapes/configs/llama-3.1-8b.json --table tables/h200-llama-63.csv --batch 1,16 --prompt-len 128 --steps 64 --reps 5 --json $out/decode-$b.json 2>&1 | grep -E '^\|' >>$log
done
echo "== tune decode shapes --pdl with new" >>$log
timeout 60 $new tune --backend cuda --shapes /tmp/dec.csv --out $out/h200-decode-early.csv --budget-ms 250 --pdl -v >$out/tune.log 2>&1; grep -E "^tuned|wall" $out/tune.log >>$log
for b in new old; do
  echo "== bench new-tuned table chained, $b" >>$log
  timeout 50 $(pick $b) bench --backend cuda --table $out/h200-decode-early.csv --shapes /tmp/dec.csv --budget-ms 300 -q --pdl >>$log 2>&1
done
echo "== end" >>$log
