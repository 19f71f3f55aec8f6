#!/usr/bin/env bash
# Builds llama-cpp-python with llama.cpp's RPC backend (-DGGML_RPC=on) into a cached virtual
# environment that holds llamadesk's runtime dependencies, and prints that venv's python.
# Tests run llamadesk from the checkout with it (PYTHONPATH), so the project's own .venv keeps
# the plain build. ~10 min on 2 cores the first time; cached in $LLAMADESK_TOOLS_CACHE
# (default ~/.cache/llamadesk-dev).
#
# Usage: packaging/rpc-build.sh [PYTHON]     (PYTHON: whose llama-cpp-python version to match)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
version=$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
cache=${LLAMADESK_TOOLS_CACHE:-$HOME/.cache/llamadesk-dev}/rpc-$version
venv=$cache/venv
if [ -f "$venv/.ready" ]; then
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p "$cache/wheels"
if ! ls "$cache"/wheels/llama_cpp_python-*.whl > /dev/null 2>&1; then
  # --no-cache-dir: pip's cache would hand back the plain build under the same name.
  CMAKE_ARGS="-DGGML_RPC=on -DGGML_NATIVE=on" "$python" -m pip wheel --no-cache-dir --no-deps \
    --no-binary llama-cpp-python -w "$cache/wheels" "llama-cpp-python==$version" >&2
fi
rm -rf "$venv"
python3 -m venv "$venv"
wheels=("$cache"/wheels/llama_cpp_python-*.whl)
# llamadesk's own dependencies, as pyproject.toml lists them (llama-cpp-python is the wheel above).
mapfile -t deps < <("$python" -c 'import tomllib
for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if not d.startswith("llama-cpp-python"):
        print(d)')
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${wheels[0]}" "${deps[@]}" >&2
"$venv/bin/python" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_rpc() else 1)' \
  || { echo "rpc-build.sh: the build has no RPC backend" >&2; exit 1; }
touch "$venv/.ready"
echo "$venv/bin/python"
