#!/usr/bin/env bash
# Does the weights' row pitch matter? Every decode shape's K makes W's rows a power-of-two
# number of bytes apart (2-28 KB), so blocks that read the same K window of their rows at
# the same time may meet the same DRAM channels. The winners of the weakest decode rows
# (`bench --kernel`, chained, cold) on K and on K plus one 64-element step (the floor grows
# 0.4-6 %, so a faster padded shape means the pitch costs time). Main's build (.dev/gemmtune-main).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/pitch; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
run() {  # kernel id, M, then N,K pairs
  local kid=$1 m=$2; shift 2
  printf 'dtype,layout,m,n,k\n' >$OUT/s.csv
  for nk in "$@"; do echo "bf16,TN,$m,$nk" >>$OUT/s.csv; done
  echo "== $kid" >>$log
  timeout 60 .dev/gemmtune-main bench --backend cuda --kernel $kid --shapes $OUT/s.csv --budget-ms 150 -q --pdl --json $OUT/$(echo $kid | tr : _)-m$m.json >>$log 2>&1
}
run cuda:gemv:r4:t256:u1:m1 1 1280,8192 1280,8256 4096,4096 4096,4160 8192,1024 8192,1088 6144,4096 6144,4160
run cuda:gemv:r2:t256:u1:m1 1 1280,8192 1280,8256 4096,4096 4096,4160
run cuda:mma:mt1:w8:v1:n1:k8 8 1280,8192 1280,8256
run cuda:mma:mt2:w8:v2:n1:k1 8 8192,1024 8192,1088 4096,4096 4096,4160
run cuda:mma:mt2:w16:v2:n1:k1 8 4096,4096 4096,4160 6144,4096 6144,4160
run cuda:wgt:n32:g1:t1:s16:k4 32 1280,8192 1280,8256
run cuda:wgt:n32:g1:t1:s16:k2 32 4096,4096 4096,4160
run cuda:wgt:n32:g1:t1:s12:k1 32 8192,1024 8192,1088
python3 - $OUT <<'PY' >>$log
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/cuda_*.json")):
    d = json.load(open(f))
    print(f.split("/")[-1][:-5])
    for s in d["shapes"]:
        k = {x["role"]: x for x in s["kernels"]}
        t = s["kernels"][0]
        print(f"  {s['m']}x{s['n']}x{s['k']}: {t['median_us']:.2f} us ({s['roofline_pct']:.1f} % of roofline)" + "".join(f", {r} {x['median_us']:.2f}" for r, x in k.items() if r != t["role"]))
PY
cd $OUT && tar czf data.tgz *.json && cp data.tgz log.txt "$final/"
