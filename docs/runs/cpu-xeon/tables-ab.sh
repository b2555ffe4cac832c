#!/bin/bash
# A/B on this VM: main's binary (gt-old) vs this build (gt-new), each tunes then benches its table; alternated twice.
cd /work/main
for r in 1 2; do for g in old new; do
  s=$(date +%s)
  /tmp/gt-$g tune --shapes shapes/smollm2-135m.csv --out /tmp/ab/$g-$r.csv --force -q
  t=$(date +%s)
  /tmp/gt-$g bench --table /tmp/ab/$g-$r.csv --shapes shapes/smollm2-135m.csv --json /tmp/ab/$g-$r.json -q > /tmp/ab/$g-$r.txt 2>&1
  echo "$g run $r: tune $((t-s)) s" >> /tmp/ab/times.txt
done; done
