#!/usr/bin/env bash
# For the first GPU call after the twentieth session (no GPU was lent in it), one call on
# the GPU machine after `scripts/gpu/build.sh` (carry .dev; main's build of 4151702 as
# .dev/gemmtune-main, see the README of docs/runs): does the entry-by-entry validation check
# and the 16-bit output path of 547b119 reject any correct GPU candidate? 1) the GPU tests;
# 2) the 63 shapes tuned by both builds (same seed and budget): candidates and rejections
# per shape side by side, every new rejection's reason listed; 3) the new table benched
# with the committed one, alternately, as the gate of every session does.
set -uo pipefail
exec > >(tee "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
echo "== GPU tests"
.dev/cuda-tests --ignored --test-threads 1 --skip runtime:: > /tmp/tests.txt 2>&1; echo "rc=$?"
grep -E "^test |test result" /tmp/tests.txt | grep -vE " ok$"; grep -E "test result" /tmp/tests.txt
for build in gemmtune gemmtune-main; do
  echo "== tune 63 with .dev/$build (kernel cache cleared first)"
  rm -rf ~/.cache/gemmtune
  .dev/$build tune --backend cuda --shapes shapes/llama-h100-63.csv --out /tmp/t-$build.csv \
    --budget-ms 250 --pdl --seed 7 -v > /tmp/tune-$build.txt 2>&1; echo "rc=$?"
  tail -1 /tmp/tune-$build.txt
done
echo "== rejected per shape (new / main), where they differ"
python3 - <<'PY'
import csv
def rows(p):
    return {tuple(r[k] for k in ("dtype","layout","m","n","k","batch")): r
            for r in csv.DictReader(l for l in open(p) if not l.startswith("#"))}
new, old = rows("/tmp/t-gemmtune.csv"), rows("/tmp/t-gemmtune-main.csv")
for key in sorted(new, key=lambda k: (int(k[2]), int(k[3]), int(k[4]))):
    a, b = new[key], old.get(key)
    if b and a["rejected"] != b["rejected"]:
        print(" ".join(key), "rejected", a["rejected"], "vs", b["rejected"], "| winners", a["kernel"][:40], b["kernel"][:40])
PY
echo "== reasons of the new build's rejections"
grep -E "rejected " /tmp/tune-gemmtune.txt | sed -E 's/^ +//' | cut -c1-200 | sort | uniq -c | sort -rn | head -40
cp /tmp/tune-gemmtune.txt /tmp/tune-gemmtune-main.txt /tmp/t-gemmtune.csv "$OUT/" 2>/dev/null
echo "== bench: committed table vs new, alternately"
for r in 1 2; do
  for t in tables/h200-llama-63.csv /tmp/t-gemmtune.csv; do
    echo "-- $t round $r"
    .dev/gemmtune bench --backend cuda --table $t --shapes shapes/llama-h100-63.csv --budget-ms 200 -q --pdl 2>&1 | grep -E "^M|^32 <|gate"
  done
done
