#!/usr/bin/env bash
# Deeper copy pipelines for the M = 32 wg kernel: branch `wg-pingpong` (TMA form, l1) with
# 12 and 16 stages added, binary .dev/gemmtune-wgpp (built from that branch, stripped).
# Each id alone via `bench --kernel` (checked against the f64 reference first), chained,
# cold and hot; the cp.async form at s8 (main's winner) as the reference in the same run.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
out=${OUT:-/tmp/out}; mkdir -p $out
probe() {  # shape (m,n,k), then kernel ids
  local shape=$1; shift
  printf 'dtype,layout,m,n,k\nbf16,TN,%s\n' "$shape" >/tmp/s.csv
  for kid in "$@"; do
    for run in cold hot; do
      flag=; [ $run = hot ] && flag=--hot
      if timeout 60 .dev/gemmtune-wgpp bench --backend cuda --kernel $kid --shapes /tmp/s.csv --budget-ms 150 -q --pdl $flag --json /tmp/j.json >/tmp/b.log 2>&1; then
        python3 -c "import json;s=json.load(open('/tmp/j.json'))['shapes'][0];print('$shape $kid $run', round(s['kernels'][0]['median_us'],2), 'default', round(s['kernels'][1]['median_us'],2))"
      else
        echo "$shape $kid $run FAILED: $(tail -2 /tmp/b.log)"
      fi
    done
  done
}
{
probe 32,4096,4096 cuda:wg:n32:g1:t1:s8:l0:k3 cuda:wg:n32:g1:t1:s8:l1:k3 cuda:wg:n32:g1:t1:s12:l1:k2 cuda:wg:n32:g1:t1:s16:l1:k2 cuda:wg:n32:g1:t1:s12:l1:k3
probe 32,4096,14336 cuda:wg:n32:g1:t1:s8:l0:k2 cuda:wg:n32:g1:t1:s16:l1:k2
probe 32,1280,8192 cuda:wg:n32:g1:t1:s8:l0:k8 cuda:wg:n32:g1:t1:s16:l1:k6
probe 32,6144,4096 cuda:wg:n32:g1:t1:s8:l0:k2 cuda:wg:n32:g1:t1:s16:l1:k1
probe 8,4096,4096 cuda:wg:n16:g1:t1:s8:l0:k3 cuda:wg:n16:g1:t1:s16:l1:k2
} | tee $out/deep.txt
