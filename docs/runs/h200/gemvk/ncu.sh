#!/usr/bin/env bash
# On the GPU machine (one call): why the stream-K GEMV is slow. For each (shape, kernel):
# `bench` of a one-row table holding that kernel (row.py), chained (--pdl), then one launch
# under Nsight Compute (cold: caches flushed), speed of light, warp states, occupancy,
# launch statistics.
set -uo pipefail
d=docs/runs/h200/gemvk
sections="--section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats"
while read -r shape kernel; do
  m=${shape%%,*}; rest=${shape#*,}; n=${rest%%,*}; k=${rest#*,}
  tag=$(echo "$shape-$kernel" | tr ',:' '-_')
  python3 $d/row.py $d/out/2-sweep.csv "$shape" "$kernel" /tmp/t.csv || continue
  printf 'dtype,layout,m,n,k\nbf16,TN,%s,%s,%s\n' $m $n $k > /tmp/s.csv
  echo "== $shape $kernel"
  .dev/gemmtune bench --backend cuda --table /tmp/t.csv --shapes /tmp/s.csv --budget-ms 100 --pdl 2>&1 | grep -E "^bf16" | cut -c1-110
  family=$(cut -d: -f2 <<<"$kernel")
  timeout 100 ncu -k "${family}_kernel" --launch-skip 5 --launch-count 1 $sections \
    .dev/gemmtune bench --backend cuda --table /tmp/t.csv --shapes /tmp/s.csv --budget-ms 50 -q --pdl > /tmp/ncu-$tag.txt 2>&1
  grep -E "Duration|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Issued Ipc Active|No Eligible|Warp Cycles Per Issued|Cluster Size|Max Active Clusters|Waves Per SM|Block Limit Registers|Executed Ipc E" /tmp/ncu-$tag.txt | sed 's/^ */  /'
  grep -iE "stall|spends" /tmp/ncu-$tag.txt | head -4 | cut -c1-400
done <<'LIST'
1,1280,8192 cuda:gemv:r4:t256:u1:m1
1,1280,8192 cuda:gemvk:b792:c2:t256:u2:m1:o0
1,1280,8192 cuda:gemvk:b1056:c2:t256:u4:m1:o1
1,1280,8192 cuda:gemvk:b528:c4:t256:u8:m1:o1
1,4096,4096 cuda:gemvk:b2112:c2:t128:u2:m1:o0
LIST
tar czf $OUT/ncu.tgz -C /tmp $(cd /tmp && ls ncu-*.txt)
