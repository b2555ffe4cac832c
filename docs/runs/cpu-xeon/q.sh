#!/bin/bash
cd /work/main
for r in 1 2; do for g in new qpf; do for id in avx512:m4:n2:t2 avx512:m1:n2:t2; do
  /tmp/gt-$g bench --kernel cpu:qdot:$id --shapes /tmp/qdec.csv --budget-ms 200 --json /tmp/ab/q-$g-$id-$r.json -q > /dev/null 2>&1
done; done; done
echo done > /tmp/ab/q.done
