#!/usr/bin/env bash
# Nsight Compute on the decode winners that stream below the GEMV's rate (docs/PERFORMANCE.md,
# "What a decode call costs"): each shape's tuned row of a table re-timed by `bench` under
# ncu, cold (ncu flushes the caches before every replay pass, the default) and hot
# (`bench --hot`, one operand set, and `--cache-control none`: W stays in L2), with the
# speed-of-light, memory-workload, warp-state, scheduler, occupancy and launch sections, then
# a cold pass of sector counts (L2 sectors the SMs read against DRAM bytes).
# Binary of scripts/gpu/build.sh in .dev/ ($GEMMTUNE overrides it). Usage (one device call):
#   scripts/gpu/ncu-decode.sh [table] [M,N,K ...]     (default: tables/h200-llama-63.csv, below)
# Writes $OUT/ncu-<M>x<N>x<K>-<cold|hot>[-$TAG].txt and the one-row tables and shape files it used.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/out}; mkdir -p "$out"
bin=${GEMMTUNE:-.dev/gemmtune}; tag=${TAG:+-$TAG}
table=${1:-tables/h200-llama-63.csv}; shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(8,4096,4096 8,1280,8192 32,4096,4096 32,6144,4096 1,4096,4096)
sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats"
for s in "${shapes[@]}"; do
  IFS=, read -r m n k <<<"$s"
  name=$m"x"$n"x"$k
  # The table's header lines and this shape's row (bf16, TN, batch 1), as a table of one row.
  grep -E "^#|^dtype,|^bf16,TN,$m,$n,$k,1," "$table" >"$out/table-$name.csv"
  printf 'dtype,layout,m,n,k\nbf16,TN,%s,%s,%s\n' "$m" "$n" "$k" >"$out/shape-$name.csv"
  kernel=$(grep -E "^bf16,TN,$m,$n,$k,1," "$table" | cut -d, -f7)
  echo "== $name: $kernel"
  # Our kernels only (cuda:<family>:... launches <family>_kernel); a library winner's
  # kernel names are not known in advance.
  family=$(cut -d: -f2 <<<"$kernel")
  case $family in gemv|mma|wg) ;; *) echo "  skipped: not one of our kernels"; continue ;; esac
  bench=("$bin" bench --backend cuda --table "$out/table-$name.csv" --shapes "$out/shape-$name.csv" --budget-ms 50 -q --pdl)
  for run in cold hot; do
    flags=(); cache=all
    [ $run = hot ] && flags=(--hot) && cache=none
    # Skip the warm-up and calibration launches of the tuned kernel, profile one.
    timeout 150 ncu --cache-control $cache -k "${family}_kernel" --launch-skip 5 --launch-count 1 $sections \
      "${bench[@]}" "${flags[@]}" >"$out/ncu-$name-$run$tag.txt" 2>&1
    grep -E "Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Hit|Mem Busy|Achieved Occupancy|Issued Ipc|No Eligible|Registers Per" "$out/ncu-$name-$run$tag.txt" | sed "s/^/  $run /"
  done
  # Sector accounting, cold (a separate pass, so a metric name this ncu lacks loses only
  # this): L2 sectors read by the SMs against DRAM bytes, and sectors per load request.
  timeout 100 ncu -k "${family}_kernel" --launch-skip 5 --launch-count 1 \
    --metrics dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum \
    "${bench[@]}" >"$out/ncu-$name-sectors$tag.txt" 2>&1
  grep -E "dram__|lts__|l1tex__|ERR" "$out/ncu-$name-sectors$tag.txt" | sed "s/^/  /"
done
