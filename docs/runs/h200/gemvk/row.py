#!/usr/bin/env python3
"""A one-row table from a tuned table: the row of shape M,N,K with its kernel replaced by
KERNEL and its checksum recomputed (src/table.rs: crc32 of the fields, each followed by
0x1f), so `bench` re-times exactly that kernel (e.g. under ncu).
Usage: row.py TABLE M,N,K KERNEL OUT"""
import sys, zlib

table, shape, kernel, out = sys.argv[1:5]
m, n, k = shape.split(",")
lines = open(table).read().splitlines()
keep = [l for l in lines if l.startswith("#") or l.startswith("dtype,")]
for l in lines:
    f = l.split(",")
    if len(f) == 20 and f[2:5] == [m, n, k]:
        f[6] = kernel
        f[19] = "%08x" % zlib.crc32(b"".join(x.encode() + b"\x1f" for x in f[:19]))
        keep.append(",".join(f))
        break
else:
    sys.exit(f"no row {shape} in {table}")
open(out, "w").write("\n".join(keep) + "\n")
