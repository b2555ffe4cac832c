#!/usr/bin/env bash
# Clock probe: see probe.py. No build needed (PyTorch on the device machine).
set -uo pipefail
cd "$(dirname "$0")"
q=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active
nvidia-smi --query-gpu=$q --format=csv,noheader >/dev/null 2>&1 || q=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,clocks.max.mem --format=csv >$OUT/smi-info.txt
nvidia-smi --query-gpu=$q --format=csv,noheader -lms 20 >$OUT/smi.csv & smi=$!
python3 probe.py 2>&1 | tee $OUT/probe.txt
kill $smi
