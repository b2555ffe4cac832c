#!/usr/bin/env bash
# Per-family best candidate times on the smoke shapes (runs on the GPU machine).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/out}; mkdir -p "$out"
.dev/gemmtune tune --backend cuda --shapes "${1:-scripts/gpu/smoke.csv}" --out "$out/k.csv" --budget-ms 400 --seed 2 -v > "$out/kernels.log" 2>&1
python3 - "$out/kernels.log" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
head, rows = None, []
def flush():
    if head is None: return
    print(head.split(';')[0][:110])
    best = {}
    for t, i in sorted(rows):
        fam = i.split(':')[1]
        best.setdefault(fam, []).append((t, i))
    for fam, lst in best.items():
        print('   %-9s' % fam, '  '.join('%.2f %s' % (t, i.split(':', 2)[2][:28]) for t, i in lst[:3]))
for l in lines:
    if l.startswith('['):
        flush(); head, rows = l, []
    m = re.match(r'\s+(cuda:\S+)\s+([\d.]+) us', l)
    if m: rows.append((float(m.group(2)), m.group(1)))
flush()
PY
