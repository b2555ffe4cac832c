#!/usr/bin/env bash
# The GEMM kernels (gemv, mma, wg/wgt) trigger their dependents first thing
# (PDL_TRIGGER, kernels/common.cuh) instead of after their wait on the kernel before, so
# a chained successor is scheduled once every block has started. GPU tests; the committed
# table's 27 decode rows benched by main and by this build, alternated twice; whole
# decode steps of the 70B-TP8 rank and the 8B (random weights) by both, batch 1 and 32.
# The change: early-trigger.patch here (not merged). Build (scripts/gpu/build.sh, carry [".dev"]): main (044b950) -> .dev/gemmtune-main,
# this build -> .dev/gemmtune and .dev/cuda-tests.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/et; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader >>$log
timeout 170 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $OUT/gpu-tests.log | head -30 >>$log
for r in 1 2; do
  for b in main new; do
    bin=.dev/gemmtune; [ $b = main ] && bin=.dev/gemmtune-main
    timeout 45 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/d27-$b-r$r.json | grep -E "^M <= 32|stale" | sed "s/^/$b r$r: /" >>$log
  done
done
for r in 1 2; do
  for b in main new; do
    bin=.dev/gemmtune; [ $b = main ] && bin=.dev/gemmtune-main
    for mt in llama-3.1-70b,8 llama-3.1-8b,1; do
      echo "== $b r$r $mt" >>$log
      timeout 60 $bin decode-bench --backend cuda --config shapes/configs/${mt%,*}.json --tp ${mt#*,} --table tables/h200-llama-63.csv --batch 1,32 --prompt-len 128 --steps 64 --reps 3 2>&1 | grep "^| " >>$log
    done
  done
done
echo "== end" >>$log
python3 - $OUT <<'PY' >>$log
import json, glob, sys
d = {f.split("/")[-1][:-5]: json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/d27-*.json"))}
keys = sorted(d)
print("shape " + " ".join(keys))
for i, s in enumerate(d[keys[0]]["shapes"]):
    print(f"{s['m']}x{s['n']}x{s['k']} {s['kernels'][0]['kernel']}", " ".join(f"{d[k]['shapes'][i]['kernels'][0]['median_us']:.2f}" for k in keys))
PY
cd $OUT && tar czf data.tgz *.json gpu-tests.log && cp data.tgz log.txt "$final/"
