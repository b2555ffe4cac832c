#!/usr/bin/env bash
# Does a chained GEMV gain when the next call's blocks fit on the SMs beside it? In the
# tune log of 1 x 1280 x 8192 the GEMVs whose grid fits twice in the SMs' slots (r4:t256:u1,
# 46 registers: 5 blocks a SM, the grid needs 2.4) ran 6.6 us, those that fit once
# (r4:t256:u2, 54 registers: 4 a SM; r2:t256:u1, 4.85 a SM) 8.5-8.7. Probe: these GEMVs
# on the M = 1 decode shapes, chained and unchained, with main's build and with one whose
# GEMV caps its registers at 48 (__launch_bounds__ minimum 5 blocks of 256 threads).
# Build (scripts/gpu/build.sh, carry [".dev"]): main -> .dev/gemmtune-main, capped (gemv-cap.patch here, not merged) -> .dev/gemmtune.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/cr; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
printf 'dtype,layout,m,n,k\n' >$OUT/s.csv
for nk in 1280,8192 4096,4096 6144,4096 8192,3584 7168,8192 4096,14336; do echo "bf16,TN,1,$nk" >>$OUT/s.csv; done
for kid in cuda:gemv:r4:t256:u1:m1 cuda:gemv:r4:t256:u2:m1 cuda:gemv:r2:t256:u1:m1 cuda:gemv:r2:t256:u2:m1 cuda:gemv:r2:t128:u4:m1; do
  for b in main-pdl capped-pdl main-nopdl; do
    bin=.dev/gemmtune; [ ${b%-*} = main ] && bin=.dev/gemmtune-main
    pdl=--pdl; [ ${b#*-} = nopdl ] && pdl=
    echo "== $b $kid" >>$log
    timeout 60 $bin bench --backend cuda --kernel $kid --shapes $OUT/s.csv --budget-ms 150 -q $pdl --json $OUT/$b-$(echo $kid | tr : _).json >>$log 2>&1
  done
done
python3 - $OUT <<'PY' >>$log
import json, glob, sys, collections
t = collections.defaultdict(dict)
for f in sorted(glob.glob(sys.argv[1] + "/*-cuda_*.json")):
    name = f.split("/")[-1][:-5]
    b, kid = name.split("-cuda_")
    for s in json.load(open(f))["shapes"]:
        t[(kid, f"{s['n']}x{s['k']}")][b] = s["kernels"][0]["median_us"]
cols = ["main-pdl", "capped-pdl", "main-nopdl"]
print("kernel shape " + " ".join(cols))
for (kid, sh), v in sorted(t.items()):
    print(kid, sh, " ".join(f"{v.get(c, float('nan')):.2f}" for c in cols))
PY
cd $OUT && tar czf data.tgz *.json && cp data.tgz log.txt "$final/"
