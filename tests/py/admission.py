"""Admission and chunked prefill of a running `gemmtune serve --max-batch 2 --queue 0`
(tests/serve.rs): a request joins a running batch while a slot is free, one past the
batch and queue gets 429 with Retry-After, and a long prompt prefilled in chunks while
another sequence decodes continues exactly as when it is prefilled alone.

usage: python admission.py HOST PORT MODEL
"""
import http.client
import json
import sys

host, port, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def post(body):
    c = http.client.HTTPConnection(host, port, timeout=300)
    c.request("POST", "/v1/completions", json.dumps(dict(model=model, temperature=0, **body)), {"Content-Type": "application/json"})
    return c.getresponse()


def events(resp):
    """The JSON payloads of a server-sent event stream, one at a time."""
    for line in resp:
        line = line.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


def stream_text(it):
    text, finish = "", None
    for ev in it:
        text += ev["choices"][0]["text"]
        finish = ev["choices"][0]["finish_reason"] or finish
    return text, finish


# A decodes; B (a prompt of several prefill chunks) joins the running batch: the queue
# is 0, so it can only be admitted into a free batch slot.
a = post({"prompt": "Write a long story about a dragon:", "max_tokens": 96, "stream": True})
check(a.status == 200, f"A: {a.status}")
a_events = events(a)
first_a = next(a_events)
long_prompt = "The quick brown fox jumps over the lazy dog. " * 60
b = post({"prompt": long_prompt, "max_tokens": 48, "stream": True})
check(b.status == 200, f"B joins the batch of A with a slot free, got {b.status}")
b_events = events(b)
first_b = next(b_events)

# Both slots taken and no queue: C is turned away at once, OpenAI-style, with Retry-After.
c = post({"prompt": "C", "max_tokens": 1})
body = json.loads(c.read())
check(c.status == 429 and c.getheader("Retry-After") and "message" in body["error"], f"C: {c.status} {c.getheaders()} {body}")

b_text, b_finish = stream_text([first_b, *b_events])
a_text, a_finish = stream_text([first_a, *a_events])
check(a_finish == "length" or a_finish == "stop", f"A finished: {a_finish}")
check(b_finish in ("length", "stop") and b_text, f"B finished: {b_finish} {b_text!r}")

# B alone (prefilled in one pass): the same greedy text as prefilled in chunks beside A.
alone = json.loads(post({"prompt": long_prompt, "max_tokens": 6}).read())
check(alone["usage"]["prompt_tokens"] > 2 * 128, f"B's prompt spans several chunks: {alone['usage']}")
# B ran 48 tokens (so it was surely still decoding when C came); its first 6 are compared.
check(alone["choices"][0]["text"] != "" and b_text.startswith(alone["choices"][0]["text"]), f"chunked {b_text!r} starts with alone {alone['choices'][0]['text']!r}")
print("admission: all checks passed")
