"""Decode speed of Hugging Face transformers on the same GPU, for comparison with
`gemmtune decode-bench` (same config shapes, bf16, random weights: decode speed does not
depend on the values). Greedy generation of a 128-token prompt, batch 1 and 16; the
decode time per step is (time for 1 + N new tokens - time for 1 new token) / N, median of
several runs. Usage: python hf_decode.py CONFIG.json [--steps 64] [--reps 3]."""
import argparse, json, statistics, time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("config")
ap.add_argument("--steps", type=int, default=64)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--batch", default="1,16")
a = ap.parse_args()

cfg = AutoConfig.from_pretrained(a.config)
torch.manual_seed(0)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16).eval()
params = sum(p.numel() for p in model.parameters())


def run(batch, new):
    ids = torch.randint(0, cfg.vocab_size, (batch, 128), device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - t


out = {"config": a.config, "params": params, "transformers": __import__("transformers").__version__,
       "torch": torch.__version__, "device": torch.cuda.get_device_name(), "rows": []}
for b in [int(x) for x in a.batch.split(",")]:
    run(b, 2)  # warm-up
    steps = []
    for _ in range(a.reps):
        t1, tn = run(b, 1), run(b, 1 + a.steps)
        steps.append((tn - t1) / a.steps * 1e3)
    ms = statistics.median(steps)
    out["rows"].append({"batch": b, "step_ms": ms, "tok_s": b * 1e3 / ms, "step_ms_all": steps})
    print(f"transformers {out['transformers']} eager, {cfg.name_or_path or a.config}, batch {b}: {ms:.3f} ms/step, {b * 1e3 / ms:.1f} tok/s")
print(json.dumps(out))
