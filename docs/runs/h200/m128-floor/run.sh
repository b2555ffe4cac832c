#!/usr/bin/env bash
# What a chained M = 128 call costs, and whether the M = 128 winners are memory- or
# self-bound: one device call, main's binaries of scripts/gpu/build.sh in .dev/.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
out=${OUT:-/tmp/out}; mkdir -p $out; log=$out/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>$log
# 1. Calls with nearly no work (K = 64), M = 1-128, chained: every candidate's time (-v).
timeout 90 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/chain-cost.csv --out $out/chain-cost.csv --budget-ms 150 --pdl -v >$out/chain-cost.log 2>&1
echo "== chain-cost rc=$?" >>$log
# 2. The table of docs/runs/h200/retune-63 (then tables/h200-llama-63.csv; TABLE= to pick
# another) on all 36 shapes with M <= 128, cold then hot (`bench --hot`: one
# operand set, W stays in L2 where it fits), then cold again.
grep -v '^#' shapes/llama-h100-63.csv | awk -F, 'NR==1 || $3<=128' >$out/upto128.csv
for run in cold hot cold2; do
  flag=; [ $run = hot ] && flag=--hot
  echo "== bench $run" >>$log
  timeout 120 .dev/gemmtune bench --backend cuda --table ${TABLE:-tables/h200-llama-63.csv} --shapes $out/upto128.csv --budget-ms 200 -q --pdl $flag --json $out/bench-$run.json >>$log 2>&1
done
echo "== end" >>$log
