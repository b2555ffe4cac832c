#!/bin/bash
cd /work/main
for r in 1 2; do for g in old new; do for id in avx512:m1:t2 avx512:m4:t2; do
  /tmp/gt-$g bench --kernel cpu:skinny:$id --shapes /tmp/sdec.csv --budget-ms 200 --json /tmp/ab/k-$g-$id-$r.json -q > /dev/null 2>&1
done; done; done
echo done > /tmp/ab/k.done
