"""Expected greedy continuations of SmolLM2-135M-Instruct (Q4_1 GGUF) from Hugging Face
transformers on the CPU in float32: the fixture tests/data/smollm2_greedy.json that the
Rust runtime must reproduce token for token.

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch transformers gguf accelerate
    scripts/fetch-model.sh
    /tmp/refenv/bin/python scripts/reference/smollm2_greedy.py > tests/data/smollm2_greedy.json

transformers dequantizes the GGUF weights to float32 and undoes llama.cpp's q/k row
permutation; the runtime keeps the permuted rows and uses interleaved RoPE (equivalent).
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

root = os.path.join(os.path.dirname(__file__), "..", "..")
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
models = os.path.join(root, "models")
tok = AutoTokenizer.from_pretrained(models, gguf_file=gguf)
model = AutoModelForCausalLM.from_pretrained(models, gguf_file=gguf, dtype=torch.float32)
model.eval()

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
    "<|im_start|>user\nWhat is matrix multiplication?<|im_end|>\n<|im_start|>assistant\n",
    "List three prime numbers: 2, 3,",
]
NEW = 40
cases = []
for p in PROMPTS:
    ids = tok(p, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids,
            max_new_tokens=NEW,
            min_new_tokens=NEW,  # never stop early: compare all 40 tokens
            do_sample=False,
            pad_token_id=tok.eos_token_id,
        )
    cases.append({"prompt": p, "prompt_ids": ids[0].tolist(), "expected_ids": out[0, ids.shape[1]:].tolist()})
json.dump(
    {
        "model": gguf,
        "reference": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, float32, CPU, greedy",
        "cases": cases,
    },
    sys.stdout,
    indent=1,
)
print()
