#!/usr/bin/env python3
"""Splits decode GEMM times of a bench report into a fixed cost and a memory stream.

usage: scripts/dev/decode-fit.py REPORT.json [--hot HOT.json] [--chain CHAIN.csv]
                                 [--m-min M] [--m-max M] [--stream TB/s] [--target PCT]

For the shapes of a `gemmtune bench --json` report with M in [--m-min, --m-max] (default
1-32, the decode shapes), fits (least squares, per M and
over all) time = t0 + bytes / BW for the tuned kernel and the default: t0 is what a call
costs beyond streaming its bytes, BW the rate its bytes stream at. Prints how much time
every call would have to lose for their geomean to reach --target (default 90) % of the roofline.
--hot: a report of the same table timed `bench --hot` (weights cache-resident); each
shape's cold and hot times side by side.
--chain: a table tuned from scripts/gpu/chain-cost.csv (calls with nearly no work); each
shape's time is set against a model, the chained-call cost of its M (the widest such
row) plus the longer of its bytes at the M = 1 fit's stream rate (or --stream, for a
selection without M = 1) and its flops at the report's peak; the model's geomean is printed.
Standard library only (the GPU machine has no numpy).
"""
import argparse
import csv
import json
import math


def load(path, m_min=1, m_max=32):
    with open(path) as f:
        r = json.load(f)
    return r, [s for s in r["shapes"] if m_min <= s["m"] <= m_max]


def nbytes(s):
    return 2 * (s["n"] * s["k"] + s["m"] * s["k"] + s["m"] * s["n"])


def fit(points):
    n = len(points)
    sx = sum(x for x, _ in points)
    sy = sum(y for _, y in points)
    sxx = sum(x * x for x, _ in points)
    sxy = sum(x * y for x, y in points)
    den = n * sxx - sx * sx
    if n < 2 or den == 0:
        return None
    b = (n * sxy - sx * sy) / den
    return (sy - b * sx) / n, b


def geomean(v):
    return math.exp(sum(math.log(x) for x in v) / len(v))


def tuned_us(s):
    return s["kernels"][0]["median_us"]


def floor_us(s):
    return tuned_us(s) * s["roofline_pct"] / 100


def chain_costs(path):
    """M -> time of the widest (largest N) near-empty call of that M in a tuned table."""
    with open(path) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    best = {}
    for r in rows:
        m, n = int(r["m"]), int(r["n"])
        if m not in best or n > best[m][0]:
            best[m] = (n, float(r["time_us"]))
    return {m: t for m, (_, t) in best.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--hot")
    ap.add_argument("--chain")
    ap.add_argument("--m-min", type=int, default=1)
    ap.add_argument("--m-max", type=int, default=32)
    ap.add_argument("--stream", type=float, help="TB/s for the model when the selection has no M = 1 shapes")
    ap.add_argument("--target", type=float, default=90.0)
    a = ap.parse_args()
    report, rows = load(a.report, a.m_min, a.m_max)
    if not rows:
        raise SystemExit(f"no shapes with {a.m_min} <= M <= {a.m_max} in {a.report}")
    peak = report["limits"]["peak_flops"]
    print(f"{a.report}: {len(rows)} shapes, copy bandwidth {report['limits']['bandwidth'] / 1e12:.3f} TB/s, hot={report.get('hot', False)}")
    print(f"  tuned geomean {100 * geomean([s['roofline_pct'] / 100 for s in rows]):.1f} % of roofline")
    rate = {}
    for m in sorted({s["m"] for s in rows}) + [None]:
        sel = [s for s in rows if m is None or s["m"] == m]
        for i, role in enumerate(("tuned", "default")):
            f = fit([(nbytes(s) / 1e6, s["kernels"][min(i, len(s["kernels"]) - 1)]["median_us"]) for s in sel])
            if f:
                rate[(m, role)] = 1 / f[1]
                print(f"  M={'all' if m is None else m:>3} {role:<7}: t0 {f[0]:5.2f} us, stream {1 / f[1]:5.2f} TB/s ({len(sel)} shapes)")
    def shorter(cut):
        return geomean([floor_us(s) / max(tuned_us(s) - cut, 1e-3) for s in rows])

    for cut in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
        print(f"  every tuned call {cut:.2f} us shorter: geomean {100 * shorter(cut):.1f} % of roofline")
    lo, hi = 0.0, min(tuned_us(s) for s in rows)
    for _ in range(50):  # bisection: the geomean grows with the cut
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if shorter(mid) < a.target / 100 else (lo, mid)
    print(f"  {a.target:.0f} % needs every tuned call {hi:.2f} us shorter")
    hot = {}
    if a.hot:
        _, h = load(a.hot, a.m_min, a.m_max)
        hot = {s["problem"]: tuned_us(s) for s in h}
    chain = chain_costs(a.chain) if a.chain else {}
    stream = a.stream or rate.get((1, "tuned"))
    if chain and not stream:
        raise SystemExit("--chain needs M = 1 shapes in the selection (their fit gives the stream rate) or --stream")
    if hot or chain:
        print(f"  {'shape':<30} {'MB':>7} {'floor':>6} {'cold':>7} {'hot':>7} {'model':>7} {'excess':>7}  us; tuned kernel")
        model = []
        for s in rows:
            work = max(nbytes(s) / 1e6 / stream, 2 * s["m"] * s["n"] * s["k"] / peak * 1e6)
            t_model = chain[s["m"]] + work if s["m"] in chain else None
            if t_model:
                model.append(min(floor_us(s) / t_model, 1.0))
            cells = [f"{x:7.2f}" if x else f"{'-':>7}" for x in (hot.get(s["problem"]), t_model, t_model and tuned_us(s) - t_model)]
            print(f"  {s['problem']:<30} {nbytes(s) / 1e6:7.1f} {floor_us(s):6.2f} {tuned_us(s):7.2f} {' '.join(cells)}  {s['kernels'][0]['kernel'][:36]}")
        if chain:
            print(f"  chained-call cost (us) by M: {', '.join(f'{m}: {t:.2f}' for m, t in sorted(chain.items()))}; stream {stream:.2f} TB/s")
            if len(model) == len(rows):
                print(f"  model geomean (capped at 100 % a shape): {100 * geomean(model):.1f} % of roofline")


if __name__ == "__main__":
    main()
