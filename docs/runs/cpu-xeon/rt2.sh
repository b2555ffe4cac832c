#!/bin/bash
# This build with the pool-installed CPU timing ("pool") against the build before it ("new"): each tunes its own tables, then generate.
cd /work/main
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
P="Write a short story about a robot who learns to paint. It should be about three paragraphs long and have a happy ending."
/tmp/gt-pool tune --shapes shapes/smollm2-135m.csv --out /tmp/ab/rt-pool-f32.csv --force -q
/tmp/gt-pool tune --shapes shapes/smollm2-135m-q.csv --out /tmp/ab/rt-pool-q.csv --force -q
for run in 1 2 3; do for g in new pool; do for w in f32 native; do
  t=/tmp/ab/rt-$g-f32.csv; [ $w = native ] && t=/tmp/ab/rt-$g-q.csv
  echo "$g weights=$w batch=1 run=$run: $(/tmp/gt-pool generate --model $M --table $t --weights $w --prompt "$P" --max-tokens 40 --ignore-eos --warmup 1 2>&1 >/dev/null | grep -E '^(prefill|batch)')"
  echo "$g weights=$w batch=8 run=$run: $(/tmp/gt-pool generate --model $M --table $t --weights $w --prompt "$P" --max-tokens 40 --ignore-eos --batch 8 2>&1 >/dev/null | grep -E '^(prefill|batch)')"
done; done; done
echo done > /tmp/ab/rt2.done
