"""Drives a running `gemmtune serve` with the real `openai` client (tests/serve.rs).

usage: python openai_client.py BASE_URL MODEL
"""
import sys
import threading

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


# Models.
check(model in [m.id for m in client.models.list()], "the model is listed")

# Completion.
c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
check(c.choices[0].text.strip() != "", "completion text")
check(c.usage.prompt_tokens == 5 and c.usage.completion_tokens >= 1, f"completion usage {c.usage}")
check(c.choices[0].finish_reason in ("stop", "length"), "finish reason")

# Chat, plain and streamed: greedy, so the streamed deltas add up to the same text.
msgs = [{"role": "user", "content": "Name a fruit."}]
plain = client.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0)
text = plain.choices[0].message.content
check(plain.choices[0].message.role == "assistant" and text, "chat message")
parts, finish = [], None
for chunk in client.chat.completions.create(model=model, messages=msgs, max_tokens=24, temperature=0, stream=True):
    d = chunk.choices[0].delta
    if d.content:
        parts.append(d.content)
    finish = chunk.choices[0].finish_reason or finish
check("".join(parts) == text, f"streamed {''.join(parts)!r} == plain {text!r}")
check(finish == plain.choices[0].finish_reason, "stream finish reason")

# Errors: OpenAI-style bodies, the right status classes, and the server keeps serving.
for call, exc, what in [
    (lambda: client.completions.create(model="no-such-model", prompt="x"), openai.NotFoundError, "unknown model"),
    (lambda: client.completions.create(model=model, prompt="x", max_tokens=10**7), openai.BadRequestError, "absurd max_tokens"),
    (lambda: client.chat.completions.create(model=model, messages=[]), openai.BadRequestError, "empty messages"),
    (lambda: client.completions.create(model=model, prompt="x " * 9000, max_tokens=1), openai.BadRequestError, "prompt longer than the context"),
    (lambda: client.completions.create(model=model, prompt="x", temperature=5), openai.BadRequestError, "temperature out of range"),
]:
    try:
        call()
        raise SystemExit(f"FAILED: {what} was accepted")
    except exc as e:
        check(isinstance(e.body, dict) and "message" in e.body, f"{what}: error body {e.body}")

# 16 concurrent requests, batched by the engine. Each sequence is prefilled on its own, so
# its first greedy token equals the one a solo request gets.
prompts = [f"Write the number {i} in words:" for i in range(16)]
first = [client.completions.create(model=model, prompt=p, max_tokens=1, temperature=0).choices[0].text for p in prompts]
results = [None] * 16


def run(i):
    results[i] = client.completions.create(model=model, prompt=prompts[i], max_tokens=12, temperature=0)


threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, r in enumerate(results):
    check(r is not None, f"request {i} answered")
    check(r.choices[0].text.startswith(first[i]), f"request {i}: {r.choices[0].text!r} starts with {first[i]!r}")
    check(1 <= r.usage.completion_tokens <= 12, f"request {i} usage")

print("openai client: all checks passed")
