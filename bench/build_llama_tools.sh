#!/usr/bin/env bash
# Builds llama.cpp's own reference tools (llama-bench, llama-quantize, llama-perplexity,
# llama-imatrix, llama-batched-bench) from the
# llama.cpp source that the installed llama-cpp-python's sdist carries, so benchmarks and
# reference tests compare against exactly the llama.cpp that llamadesk runs.
#
# Usage: bench/build_llama_tools.sh [PYTHON]   -> prints the folder holding the tools' binaries
# The build is cached in $LLAMADESK_TOOLS_CACHE (default ~/.cache/llamadesk-dev); ~6 min on 2 cores.
set -euo pipefail
python=${1:-.venv/bin/python}
version=$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
cache=${LLAMADESK_TOOLS_CACHE:-$HOME/.cache/llamadesk-dev}/llama.cpp-$version
bin="$cache/build/bin"
if [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-quantize" ] && [ -x "$bin/llama-perplexity" ] \
  && [ -x "$bin/llama-imatrix" ] && [ -x "$bin/llama-batched-bench" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
if [ ! -d "$cache/src" ]; then
  tmp=$(mktemp -d)
  "$python" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$version" >&2
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  mv "$tmp"/llama_cpp_python-*/vendor/llama.cpp "$cache/src.tmp"
  # The sdist's convert script and gguf-py come along: tests compare against them too.
  mv "$cache/src.tmp" "$cache/src"
  rm -rf "$tmp"
fi
cmake -S "$cache/src" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DGGML_NATIVE=ON >&2
cmake --build "$cache/build" --config Release -j "$(nproc)" \
  --target llama-bench llama-quantize llama-perplexity llama-imatrix llama-batched-bench >&2
echo "$bin"
