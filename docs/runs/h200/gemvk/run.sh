#!/usr/bin/env bash
# On the GPU machine (one call), with ../stream-chain/gemvk.patch applied (the first
# cuda:gemvk, global-slot reduction; the patch adds stream-chain/gemvk.sh): 1) the stream-K GEMV validated and
# timed on six shapes (every candidate checked against the f64 reference, -v lists each
# candidate), 2) the GPU tests, 3) the 27 decode rows tuned with gemvk among the
# candidates, then that table and the committed one benched alternately by the same binary.
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
bash docs/runs/h200/stream-chain/gemvk.sh
echo "== GPU tests"
.dev/cuda-tests --ignored --test-threads 1 --skip runtime:: > /tmp/tests.txt 2>&1; echo "rc=$?"
grep -E "^test |test result" /tmp/tests.txt | grep -vE " ok$" ; grep -E "test result" /tmp/tests.txt
echo "== tune decode-27"
.dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $OUT/dec27.csv --budget-ms 200 --pdl -v > /tmp/tune27.txt 2>&1; echo "rc=$?"
grep -E "^\[" /tmp/tune27.txt | cut -c1-160
cp /tmp/tune27.txt $OUT/tune27.txt
echo "== A/B: committed table vs new"
for r in 1 2; do
  for t in tables/h200-llama-63.csv $OUT/dec27.csv; do
    echo "-- $t round $r"
    .dev/gemmtune bench --backend cuda --table $t --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json /tmp/ab-$(basename $t)-$r.json 2>&1 | grep -E "^M <= 32|gate"
  done
done
tar czf $OUT/ab.tgz -C /tmp $(cd /tmp && ls ab-*.json)
