# How the H200's clocks and speed move under and after load (PyTorch, cuBLAS): a decode
# call's time as a function of the time since a heavy prefill GEMM stopped, and the bf16
# GEMM peak in a burst against the same GEMM sustained for seconds. nvidia-smi logs SM
# clock, power and temperature every 20 ms alongside (smi.csv).
import json, os, time, torch
out = os.environ.get("OUT", "/tmp")
torch.manual_seed(0)
bf = torch.bfloat16

def decode_graph(n=4096, k=4096, sets=8, calls=40):
    ws = [torch.randn(n, k, device="cuda", dtype=bf) for _ in range(sets)]
    x = torch.randn(1, k, device="cuda", dtype=bf)
    y = torch.empty(1, n, device="cuda", dtype=bf)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        for w in ws: torch.matmul(x, w.t(), out=y)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(calls): torch.matmul(x, ws[i % sets].t(), out=y)
    return g, calls

def series(g, calls, seconds, t0):
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    res = []
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter() - t0
        e0.record(); g.replay(); e1.record(); e1.synchronize()
        res.append((round(t * 1e3, 2), round(e0.elapsed_time(e1) * 1e3 / calls, 3)))
    return res

def heavy(seconds, m=8192, n=128256, k=4096):
    a = torch.randn(m, k, device="cuda", dtype=bf); w = torch.randn(n, k, device="cuda", dtype=bf)
    y = torch.empty(m, n, device="cuda", dtype=bf)
    torch.cuda.synchronize(); t0 = time.perf_counter(); c = 0
    while time.perf_counter() - t0 < seconds:
        torch.matmul(a, w.t(), out=y); c += 1
        if c % 4 == 0: torch.cuda.synchronize()
    torch.cuda.synchronize()
    del a, w, y

g, calls = decode_graph()
r = {}
time.sleep(2.0)
t0 = time.perf_counter(); r["idle_then_decode"] = series(g, calls, 0.6, t0)
for hs in (0.3, 3.0):
    time.sleep(1.0)
    heavy(hs)
    t0 = time.perf_counter(); r[f"after_heavy_{hs}s"] = series(g, calls, 1.5, t0)
# Burst vs sustained peak: 8192^3 bf16, one event pair per call.
time.sleep(2.0)
n = 8192
a = torch.randn(n, n, device="cuda", dtype=bf); b = torch.randn(n, n, device="cuda", dtype=bf); c = torch.empty(n, n, device="cuda", dtype=bf)
torch.matmul(a, b.t(), out=c); torch.cuda.synchronize()
evs = []; t0 = time.perf_counter()
while time.perf_counter() - t0 < 6.0:
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(); torch.matmul(a, b.t(), out=c); e1.record(); evs.append((time.perf_counter() - t0, e0, e1))
    if len(evs) % 8 == 0: e1.synchronize()
torch.cuda.synchronize()
r["peak_series"] = [(round(t * 1e3, 1), round(2 * n**3 / (e0.elapsed_time(e1) * 1e-3) / 1e12, 1)) for t, e0, e1 in evs]
json.dump(r, open(out + "/probe.json", "w"))
for key, s in r.items():
    v = [x[1] for x in s]
    print(key, len(v), "first", v[:5], "last", v[-3:])
