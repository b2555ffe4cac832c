#!/usr/bin/env bash
# On the GPU machine (one call): `cuda:mmaw` (mma.sync with W as the B operand, 8-row
# tiles). 1) the GPU tests (every candidate on awkward shapes, mmaw among them); 2) the 27
# decode rows tuned with it among the candidates (-v: per shape the winner, the 3 fastest
# mmaw variants and the 2 fastest others, first successive-halving round); 3) that table
# and the committed one benched alternately by this build.
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
.dev/cuda-tests --ignored --test-threads 1 --skip runtime:: > /tmp/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^test " /tmp/tests.txt | grep -v " ok$"; grep -E "test result" /tmp/tests.txt | head -1
dec=scripts/gpu/decode-27.csv
s=$(date +%s%N)
.dev/gemmtune tune --backend cuda --shapes $dec --out $OUT/tuned.csv --budget-ms 250 --pdl -v > /tmp/tune.txt 2>&1; echo "tune rc=$? in $(( ($(date +%s%N) - s) / 1000000 )) ms"
awk '/^\[/{ if (h) flush(); h=$0; n=0; next } /^    cuda:/{ l[n++]=$0 } END{ flush() }
function flush(  i) { print substr(h, 1, 150);
  for (i=0;i<n;i++) if (l[i] ~ /mmaw/) print l[i] | "sort -k2 -g | grep -v dropped | head -3"; close("sort -k2 -g | grep -v dropped | head -3");
  for (i=0;i<n;i++) if (l[i] !~ /mmaw/) print l[i] | "sort -k2 -g | grep -v dropped | head -2"; close("sort -k2 -g | grep -v dropped | head -2") }' /tmp/tune.txt | cut -c1-110
grep -E "rejected" /tmp/tune.txt | grep -v " 0 rejected" | head -5
bench() {  # table tag
  .dev/gemmtune bench --backend cuda --table $1 --shapes $dec --budget-ms 200 -q --pdl --json /tmp/bench-$2.json 2>&1 | grep -E "^M <= 32|gate" | sed "s/^/$2: /"
}
for r in 1 2; do
  bench tables/h200-llama-63.csv comm-$r
  bench $OUT/tuned.csv tuned-$r
done
gzip -c /tmp/tune.txt > /tmp/tune.txt.gz
tar czf $OUT/out.tgz -C /tmp $(cd /tmp && ls bench-*.json) tune.txt.gz tests.txt
