#!/bin/bash
# Runtime A/B on this VM: main before this session (old) vs this build (new); each tunes its own tables here.
cd /work/main
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
P="Write a short story about a robot who learns to paint. It should be about three paragraphs long and have a happy ending."
for g in old new; do
  /tmp/gt-$g tune --shapes shapes/smollm2-135m.csv --out /tmp/ab/rt-$g-f32.csv --force -q
  /tmp/gt-$g tune --shapes shapes/smollm2-135m-q.csv --out /tmp/ab/rt-$g-q.csv --force -q
done
for run in 1 2 3; do for g in old new; do for w in f32 native; do for b in 1 8; do
  t=/tmp/ab/rt-$g-f32.csv; [ $w = native ] && t=/tmp/ab/rt-$g-q.csv
  echo "$g weights=$w batch=$b run=$run: $(/tmp/gt-$g generate --model $M --table $t --weights $w --prompt "$P" --max-tokens 40 --ignore-eos --warmup 1 --batch $b 2>&1 >/dev/null | grep -E '^(prefill|batch)')"
done; done; done; done
echo done > /tmp/ab/rt.done
