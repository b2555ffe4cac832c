#!/usr/bin/env bash
# The mma.sync kernels' K split reduced in a thread-block cluster over distributed shared
# memory (finish_tile, kernels/common.cuh) instead of a global workspace, a fence, an
# atomic and the last block's reads. GPU tests; `bench --kernel` of split mma variants on
# 8 x 1280 x 8192 (main's and this build); the committed table's 27 decode rows benched
# by main and by this build; the 27 rows re-tuned with this build and that table benched;
# alternated twice. Build (scripts/gpu/build.sh, carry [".dev"]): main (044b950) ->
# .dev/gemmtune-main, this build (cluster-k.patch here, not merged) -> .dev/gemmtune and .dev/cuda-tests.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/ck; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader >>$log
timeout 170 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $OUT/gpu-tests.log | head -30 >>$log
printf 'dtype,layout,m,n,k\nbf16,TN,8,1280,8192\nbf16,TN,8,8192,1024\nbf16,TN,8,4096,4096\n' >$OUT/probe.csv
for kid in cuda:mma:mt1:w8:v1:n1:k8 cuda:mma:mt1:w8:v1:n1:k4 cuda:mma:mt2:w8:v1:n1:k4; do
  for b in main new; do
    bin=.dev/gemmtune; [ $b = main ] && bin=.dev/gemmtune-main
    echo "== $b $kid" >>$log
    timeout 40 $bin bench --backend cuda --kernel $kid --shapes $OUT/probe.csv --budget-ms 150 -q --pdl --json $OUT/probe-$b-$(echo $kid | tr : _).json >>$log 2>&1
  done
done
timeout 60 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $OUT/d27-new.csv --budget-ms 250 --pdl -v >$OUT/tune.txt 2>&1
tail -2 $OUT/tune.txt >>$log
for r in 1 2; do
  for b in main new newtable; do
    bin=.dev/gemmtune; [ $b = main ] && bin=.dev/gemmtune-main
    table=tables/h200-llama-63.csv; [ $b = newtable ] && table=$OUT/d27-new.csv
    timeout 45 $bin bench --backend cuda --table $table --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/d27-$b-r$r.json | grep -E "^M <= 32|stale|slower" | sed "s/^/$b r$r: /" >>$log
  done
done
echo "== end" >>$log
python3 - $OUT <<'PY' >>$log
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/probe-*.json")):
    d = json.load(open(f))
    print(f.split("/")[-1], " ".join(f"{s['m']}x{s['n']}x{s['k']}:{s['kernels'][0]['median_us']:.2f}us" for s in d["shapes"]))
PY
cd $OUT && tar czf data.tgz *.json *.csv tune.txt gpu-tests.log && cp data.tgz log.txt "$final/"
