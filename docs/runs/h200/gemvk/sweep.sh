#!/usr/bin/env bash
# On the GPU machine (one call): the cluster stream-K GEMV (`cuda:gemvk`, every variant of
# its grid) validated and timed among all candidates on the decode shapes of shapes.csv;
# per shape the tune's line, the 6 fastest gemvk variants and the 3 fastest others (first
# successive-halving round, one sample each).
set -uo pipefail
d=docs/runs/h200/gemvk
.dev/gemmtune tune --backend cuda --shapes $d/shapes.csv --out $OUT/sweep.csv --budget-ms 250 --pdl -v > $OUT/sweep.txt 2>&1; echo "rc=$?"
awk '/^\[/{ if (h) flush(); h=$0; n=0; next } /^    cuda:/{ l[n++]=$0 } END{ flush() }
function flush(  i,cmd) { print h; cmd="sort -k2 -g | grep -v dropped"; for (i=0;i<n;i++) if (l[i] ~ /gemvk/) print l[i] | "sort -k2 -g | grep -v dropped | head -6"; close("sort -k2 -g | grep -v dropped | head -6");
  for (i=0;i<n;i++) if (l[i] !~ /gemvk/) print l[i] | "sort -k2 -g | grep -v dropped | head -3"; close("sort -k2 -g | grep -v dropped | head -3") }' $OUT/sweep.txt | cut -c1-170
grep -E "rejected|error" $OUT/sweep.txt | grep -v " 0 rejected" | head
tail -12 $OUT/sweep.txt
