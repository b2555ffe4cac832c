#!/usr/bin/env bash
# On the GPU machine (one call): split-K partials of the mma.sync kernels (mma, mmal, qmma)
# summed in a thread-block cluster over distributed shared memory instead of through a
# global workspace, a fence and a per-tile counter. 1) the GPU tests; 2) the committed
# table's 27 decode rows benched by main's build and this one alternately; 3) the 27 rows
# re-tuned by this build, and that table benched against the committed one.
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
.dev/cuda-tests --ignored --test-threads 1 --skip runtime:: > /tmp/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^test " /tmp/tests.txt | grep -v " ok$"; grep -E "test result" /tmp/tests.txt
dec=scripts/gpu/decode-27.csv
bench() {  # binary table tag
  .dev/$1 bench --backend cuda --table $2 --shapes $dec --budget-ms 200 -q --pdl --json /tmp/bench-$3.json 2>&1 | grep -E "^M <= 32|gate" | sed "s/^/$3: /"
}
for r in 1 2; do
  bench gemmtune-main tables/h200-llama-63.csv main-$r
  bench gemmtune tables/h200-llama-63.csv clus-$r
done
s=$(date +%s%N)
.dev/gemmtune tune --backend cuda --shapes $dec --out $OUT/tuned.csv --budget-ms 250 --pdl -v > /tmp/tune.txt 2>&1; echo "tune rc=$? in $(( ($(date +%s%N) - s) / 1000000 )) ms"
grep -E "^\[" /tmp/tune.txt | cut -c1-120
for r in 1 2; do
  bench gemmtune tables/h200-llama-63.csv c-comm-$r
  bench gemmtune $OUT/tuned.csv c-tuned-$r
done
# The split-K rows of the committed table, by build and round (median us).
python3 - /tmp/bench-main-*.json /tmp/bench-clus-*.json <<'PY'
import json, sys
for f in sys.argv[1:]:
    for s in json.load(open(f))["shapes"]:
        t = s["kernels"][0]
        if "mma" in t["kernel"] and not t["kernel"].endswith(":k1"):
            print(f.split("/")[-1], s["problem"], t["kernel"], "%.2f us" % t["median_us"], "%.1f%%" % s["roofline_pct"])
PY
tar czf $OUT/bench.tgz -C /tmp $(cd /tmp && ls bench-*.json) tune.txt tests.txt
