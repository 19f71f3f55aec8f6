#!/usr/bin/env bash
# Builds llama.cpp's own llama-server from the same llama.cpp source as bench/build_llama_tools.sh
# (the installed llama-cpp-python's sdist), so bench/serve.py compares `llamadesk serve` with the
# reference server on exactly the llama.cpp llamadesk runs.
#
# Usage: bench/build_llama_server.sh [PYTHON]   -> prints the path of the llama-server binary
# It builds in its own folder (build-server) beside the tools' build, so building it never
# reconfigures the tools other benchmarks and tests use. ~10 min on 2 cores the first time.
set -euo pipefail
python=${1:-.venv/bin/python}
tools_bin=$(bench/build_llama_tools.sh "$python")  # fetches the source if needed
cache=$(dirname "$(dirname "$tools_bin")")
server="$cache/build-server/bin/llama-server"
if [ -x "$server" ]; then
  echo "$server"
  exit 0
fi
# The tools' options plus the server: the same compile flags, so objects the tools' build already
# compiled (llama, common) could be reused by hand on a slow machine.
cmake -S "$cache/src" -B "$cache/build-server" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON >&2
cmake --build "$cache/build-server" --config Release -j "$(nproc)" --target llama-server >&2
echo "$server"
