#!/usr/bin/env bash
# Second call (grid.txt): one M = 32 shape, the wg variants that trade prefetch depth
# (stages) against blocks per SM (K split), each alone via `bench --kernel`, cold and hot.
printf 'dtype,layout,m,n,k\nbf16,TN,32,4096,4096\n' > /tmp/s.csv
for kid in cuda:wg:n32:g1:t1:s8:k3 cuda:wg:n32:g1:t1:s4:k6 cuda:wg:n32:g1:t1:s6:k4 cuda:wg:n32:g1:t1:s4:k4 cuda:wg:n32:g2:t1:s4:k6 cuda:wg:n32:g1:t1:s6:k6 cuda:wg:n32:g1:t1:s4:k8 cuda:wg:n32:g1:t1:s4:k12; do
  for run in cold hot; do
    flag=; [ $run = hot ] && flag=--hot
    .dev/gemmtune bench --backend cuda --kernel $kid --shapes /tmp/s.csv --budget-ms 150 -q --pdl $flag --json /tmp/j.json >/dev/null 2>&1
    python3 -c "import json;d=json.load(open('/tmp/j.json'));s=d['shapes'][0];print('$kid','$run',round(s['kernels'][0]['median_us'],2),'default',round(s['kernels'][1]['median_us'],2))"
  done
done | tee ${OUT:-/tmp/out}/grid.txt
