#!/usr/bin/env bash
# Is the M = 32 wg winner bound by its per-step bookkeeping or by the L2 traffic of W and X?
# The same kernel id run at M = 8, 16, 24, 32 (tokens past M are zero-filled in shared
# memory and never read from memory): X traffic scales with M, the bookkeeping does not.
# `bench --kernel`, chained (--pdl), cold and hot. One device call, .dev of scripts/gpu/build.sh.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
out=${OUT:-/tmp/out}; mkdir -p $out
for n_k in 4096,4096 4096,14336; do
  printf 'dtype,layout,m,n,k\n' >$out/s-$n_k.csv
  for m in 8 16 24 32; do echo "bf16,TN,$m,$n_k" >>$out/s-$n_k.csv; done
done
for kid in cuda:wg:n32:g1:t1:s8:k3 cuda:wg:n32:g1:t2:s8:k3; do
  for run in cold hot; do
    flag=; [ $run = hot ] && flag=--hot
    for n_k in 4096,4096 4096,14336; do
      echo "== $kid $run $n_k" >>$out/log.txt
      timeout 60 .dev/gemmtune bench --backend cuda --kernel $kid --shapes $out/s-$n_k.csv --budget-ms 200 -q --pdl $flag --json $out/$(echo $kid | tr : _)-$run-$n_k.json >>$out/log.txt 2>&1
    done
  done
done
python3 - $out <<'PY' >>$out/log.txt
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/cuda_*.json")):
    d = json.load(open(f))
    print(f.split("/")[-1], " ".join(f"M={s['m']}:{s['kernels'][0]['median_us']:.2f}us" for s in d["shapes"]))
PY
cd $out && tar czf probe.tgz *.json log.txt && rm -f *.json s-*.csv
