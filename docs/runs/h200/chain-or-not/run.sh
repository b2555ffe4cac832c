#!/usr/bin/env bash
# Chained (PDL) or not, per kernel: in the co-residency probe (../coresident) GEMVs whose
# grid leaves no SM slots for the next call's blocks ran up to 1.8 us slower chained than
# unchained on 1 x 1280 x 8192. The same question for the committed table's winners of
# the weakest decode rows (M = 8 and 32): `bench --kernel`, cold, with and without --pdl.
# Main's build (.dev/gemmtune-main).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/cn; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
probe() {  # kernel id, then M,N,K triples
  local kid=$1; shift
  printf 'dtype,layout,m,n,k\n' >$OUT/s.csv
  for s in "$@"; do echo "bf16,TN,$s" >>$OUT/s.csv; done
  for mode in pdl nopdl; do
    pdl=--pdl; [ $mode = nopdl ] && pdl=
    timeout 60 .dev/gemmtune-main bench --backend cuda --kernel $kid --shapes $OUT/s.csv --budget-ms 150 -q $pdl --json $OUT/$mode-$(echo $kid | tr : _).json >>$log 2>&1
  done
}
probe cuda:mma:mt1:w8:v1:n1:k8 8,1280,8192
probe cuda:wgt:n16:g1:t2:s12:k8 8,1280,8192
probe cuda:wgt:n32:g1:t1:s16:k4 32,1280,8192
probe cuda:mma:mt2:w16:v2:n1:k1 8,4096,4096 8,6144,4096
probe cuda:mma:mt2:w8:v2:n1:k1 1,8192,1024 8,8192,1024
probe cuda:wgt:n32:g1:t1:s16:k2 32,4096,4096
probe cuda:wgt:n32:g1:t1:s12:k1 32,8192,1024
probe cuda:wgt:n32:g1:t1:s16:k1 32,6144,4096
probe cuda:mma:mt1:w8:v2:n1:k1 8,6144,4096
python3 - $OUT <<'PY' >>$log
import json, glob, sys, collections
t = collections.defaultdict(dict)
for f in sorted(glob.glob(sys.argv[1] + "/*-cuda_*.json")):
    mode, kid = f.split("/")[-1][:-5].split("-cuda_")
    for s in json.load(open(f))["shapes"]:
        d = {k["role"]: k["median_us"] for k in s["kernels"]}
        t[(kid, f"{s['m']}x{s['n']}x{s['k']}")][mode] = d["tuned"]
        t[(kid, f"{s['m']}x{s['n']}x{s['k']}")]["default"] = d.get("default")
print("kernel shape chained unchained default")
for (kid, sh), v in sorted(t.items()):
    print(kid, sh, f"{v['pdl']:.2f} {v['nopdl']:.2f} {v['default']:.2f}")
PY
cd $OUT && tar czf data.tgz *.json && cp data.tgz log.txt "$final/"
