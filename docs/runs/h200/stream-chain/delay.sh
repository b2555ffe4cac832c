#!/usr/bin/env bash
# On one GPU machine (one call): the 63-shape tune from an empty kernel cache, alternately
# by a build whose compile-ahead thread starts with the tune (`gemmtune-nodelay`) and one
# whose thread waits until the first shape's own kernels are compiled (`gemmtune`). A
# one-shape tune first, so that no timed run is the node's first use of NVRTC. Run twice:
# out/6 (the order below), out/7 (ORDER="gemmtune gemmtune-nodelay gemmtune gemmtune-nodelay").
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
printf 'dtype,layout,m,n,k,batch\nbf16,TN,1,1024,1024,1\n' > /tmp/one.csv
.dev/gemmtune tune --backend cuda --shapes /tmp/one.csv --out /tmp/one-table.csv --budget-ms 50 -q 2>&1 | tail -1
for b in ${ORDER:-gemmtune-nodelay gemmtune gemmtune-nodelay gemmtune}; do
  rm -rf ~/.cache/gemmtune
  s=$(date +%s%N)
  .dev/$b tune --backend cuda --shapes shapes/llama-h100-63.csv --out /tmp/$b-$RANDOM.csv --budget-ms 250 --pdl -v > /tmp/log.txt 2>&1
  echo "$b: wall $(( ($(date +%s%N) - s) / 1000000 )) ms; $(grep 'tuned 63' /tmp/log.txt | cut -c1-60); first shape: $(grep '^\[1/63\]' /tmp/log.txt | grep -o '[0-9.]* s (list.*')"
  grep -E '^\[[0-9]+/63\]' /tmp/log.txt | grep -o 'list [0-9.]*, validate [0-9.]*, time [0-9.]*' | tr -d ',' | awk '{l+=$2; v+=$4; t+=$6} END {print "  list " l " s, validate " v " s, time " t " s"}'
done
