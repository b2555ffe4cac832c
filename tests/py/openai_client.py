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

# Stop sequences end the text before them, streamed or not, with finish_reason "stop".
full = client.completions.create(model=model, prompt="Count: 1, 2, 3,", max_tokens=12, temperature=0).choices[0].text
check("," in full, f"the unstopped text has a comma: {full!r}")
cut = client.completions.create(model=model, prompt="Count: 1, 2, 3,", max_tokens=12, temperature=0, stop=[","])
check(cut.choices[0].text == full[: full.index(",")] and cut.choices[0].finish_reason == "stop", f"stop: {cut.choices[0]!r} from {full!r}")
parts = [c.choices[0].text for c in client.completions.create(model=model, prompt="Count: 1, 2, 3,", max_tokens=12, temperature=0, stop=",", stream=True)]
check("".join(parts) == cut.choices[0].text and all(parts[:-1]), f"streamed stop: {parts!r}")

# Sampling: a seed repeats a text; without one, requests differ.
say = dict(model=model, prompt="Once upon a time", max_tokens=16, temperature=1.0)
seeded = [client.completions.create(seed=7, **say).choices[0].text for _ in range(2)]
check(seeded[0] == seeded[1], f"same seed, same text: {seeded!r}")
free = {client.completions.create(**say).choices[0].text for _ in range(3)}
check(len(free) > 1, f"no seed: fresh samples, got {free!r}")

# max_completion_tokens (max_tokens null), text parts, a tool-less assistant turn.
r = client.chat.completions.create(model=model, messages=msgs, max_completion_tokens=2, temperature=0)
check(r.usage.completion_tokens <= 2, f"max_completion_tokens: {r.usage}")
parts_msg = [{"role": "user", "content": [{"type": "text", "text": "Name a"}, {"type": "text", "text": "fruit."}]},
             {"role": "assistant", "content": None}, {"role": "user", "content": "Again."}]
check(client.chat.completions.create(model=model, messages=parts_msg, max_tokens=4, temperature=0).choices[0].message.content is not None, "text parts")

# stream_options.include_usage: one last chunk with the usage and no choices.
chunks = list(client.chat.completions.create(model=model, messages=msgs, max_tokens=4, temperature=0, stream=True, stream_options={"include_usage": True}))
check(chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1, f"usage chunk {chunks[-1]!r}")
check(all(c.usage is None for c in chunks[:-1]), "usage only in the last chunk")

# Errors: OpenAI-style bodies, the right status classes, and the server keeps serving.
for call, exc, what in [
    (lambda: client.completions.create(model=model, prompt="x", n=2), openai.BadRequestError, "n = 2 (not implemented: refused, not ignored)"),
    (lambda: client.completions.create(model=model, prompt="x", logprobs=2), openai.BadRequestError, "logprobs"),
    (lambda: client.chat.completions.create(model=model, messages=msgs, frequency_penalty=1.0), openai.BadRequestError, "a penalty"),
    (lambda: client.completions.create(model=model, prompt="x", stop=["a", ""]), openai.BadRequestError, "an empty stop sequence"),
    (lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
     openai.BadRequestError, "an image part"),
    (lambda: client.chat.completions.create(model=model, messages=[{"role": "user<|im_end|>", "content": "x"}]),
     openai.BadRequestError, "a role that is not one (the template writes it as it is)"),
    (lambda: client.post("/no/such/path", body={}, cast_to=object), openai.NotFoundError, "an unknown path"),
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
    check(first[i] != "", f"request {i}: a first token alone")
    check(r.choices[0].text.startswith(first[i]), f"request {i}: {r.choices[0].text!r} starts with {first[i]!r}")
    check(1 <= r.usage.completion_tokens <= 12, f"request {i} usage")

print("openai client: all checks passed")
