"""Load and abuse test of a running `gemmtune serve` (loopback only, bounded in count and
time): 64 concurrent streaming clients, plus malformed requests, oversized bodies, slow
readers and mid-stream disconnects; then how long one stream stalls while a 3000-token
prompt is prefilled beside it. Prints a JSON summary; exits 1 if a well-formed
request got anything but a completed answer or a clear 429/503, or the server died.

usage: python load_test.py HOST PORT MODEL SERVER_PID
"""
import http.client
import json
import socket
import statistics
import sys
import threading
import time

host, port, model, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
lock = threading.Lock()
results = []  # (kind, status, latency_s, detail)


def record(kind, status, latency, detail=""):
    with lock:
        results.append((kind, status, latency, detail))


def stream_client(i, slow=False, disconnect=False):
    t0 = time.time()
    body = json.dumps({"model": model, "prompt": f"Story number {i}:", "max_tokens": 16, "temperature": 0.7, "seed": i, "stream": True})
    try:
        c = http.client.HTTPConnection(host, port, timeout=120)
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            r.read()
            record("stream" if not (slow or disconnect) else ("slow" if slow else "disconnect"), r.status, time.time() - t0)
            return
        events, done = 0, False
        while True:
            line = r.fp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                events += 1
                if line.strip() == b"data: [DONE]":
                    done = True
                    break
                if disconnect and events == 2:
                    c.sock.close()  # walk away mid-stream
                    record("disconnect", 200, time.time() - t0, "closed after 2 events")
                    return
                if slow:
                    time.sleep(0.3)
        kind = "slow" if slow else "stream"
        record(kind, 200 if done else -1, time.time() - t0, f"{events} events")
    except Exception as e:  # noqa: BLE001
        record("disconnect" if disconnect else "stream", -2, time.time() - t0, repr(e))


def bad_request(kind, payload, headers=None):
    t0 = time.time()
    try:
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request("POST", "/v1/completions", payload, headers or {"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        ok = r.status in (400, 413, 422) and (r.status == 413 or b"error" in body)
        record(kind, r.status if ok else -3, time.time() - t0, body[:80].decode(errors="replace"))
    except Exception as e:  # noqa: BLE001
        record(kind, -2, time.time() - t0, repr(e))


def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return -1


start = time.time()
# Slow readers and clients that disconnect mid-stream go first so they hold batch slots,
# then the abuse requests, then the 64 streaming clients all at once.
first = [threading.Thread(target=stream_client, args=(100 + i, True)) for i in range(4)]
first += [threading.Thread(target=stream_client, args=(200 + i, False, True)) for i in range(8)]
first += [threading.Thread(target=bad_request, args=("malformed", b'{"model": "x", "prompt": ')) for _ in range(8)]
first += [threading.Thread(target=bad_request, args=("oversized", json.dumps({"model": model, "prompt": "x" * (2 << 20)}).encode())) for _ in range(4)]
streams = [threading.Thread(target=stream_client, args=(i,)) for i in range(64)]
threads = first + streams
for t in first:
    t.start()
time.sleep(0.5)
for t in streams:
    t.start()
for t in threads:
    t.join(timeout=180)
elapsed = time.time() - start

# The server is still up and answers.
c = http.client.HTTPConnection(host, port, timeout=60)
c.request("GET", "/health")
h = c.getresponse()
health = h.status
h.read()
c.request("POST", "/v1/completions", json.dumps({"model": model, "prompt": "After the storm,", "max_tokens": 4}), {"Content-Type": "application/json"})
after = c.getresponse()
after_status = after.status
after.read()

# A long prompt arriving while another request streams: how long the stream stalls.
def prefill_stall():
    c = http.client.HTTPConnection(host, port, timeout=300)
    c.request("POST", "/v1/completions", json.dumps({"model": model, "prompt": "Tell me a story:", "max_tokens": 120, "temperature": 0, "stream": True}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    stamps, long_req = [], {}

    def long_prompt():
        t0 = time.time()
        c2 = http.client.HTTPConnection(host, port, timeout=300)
        c2.request("POST", "/v1/completions", json.dumps({"model": model, "prompt": "hello " * 3000, "max_tokens": 1}), {"Content-Type": "application/json"})
        r2 = c2.getresponse()
        long_req.update(status=r2.status, s=time.time() - t0, prompt_tokens=json.loads(r2.read()).get("usage", {}).get("prompt_tokens"))

    t = None
    for line in r:
        if line.startswith(b"data: "):
            stamps.append(time.time())
            if len(stamps) == 10:
                t = threading.Thread(target=long_prompt)
                t.start()
    if t:
        t.join()
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return {"stream_events": len(stamps), "max_gap_s": round(gaps[-1], 3), "median_gap_s": round(statistics.median(gaps), 3),
            "long_prompt": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in long_req.items()}}


stall = prefill_stall()

by = {}
for kind, status, _, _ in results:
    by.setdefault(kind, {}).setdefault(str(status), 0)
    by[kind][str(status)] += 1
lat = sorted(r[2] for r in results if r[0] == "stream" and r[1] == 200)
summary = {
    "requests": len(results),
    "wall_s": round(elapsed, 2),
    "by_kind_and_status": by,
    "stream_latency_p50_s": round(statistics.median(lat), 3) if lat else None,
    "stream_latency_p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3) if lat else None,
    "server_peak_rss_mb": round(rss_kb() / 1024, 1),
    "health_after": health,
    "request_after": after_status,
    "stream_during_3000_token_prefill": stall,
}
print(json.dumps(summary, indent=1))
bad = [r for r in results if r[1] < 0 or (r[0] in ("stream", "slow") and r[1] not in (200, 429, 503))]
if bad or health != 200 or after_status != 200 or len(results) != len(threads) or stall["long_prompt"].get("status") != 200:
    print("FAILED:", bad[:5])
    sys.exit(1)
print("load test: passed")
