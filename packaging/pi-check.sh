#!/usr/bin/env bash
# The Raspberry Pi 5 build, checked in emulation: cross-compiles llama.cpp for aarch64 with
# exactly the flags `install.sh pi5` gives (both read packaging/cmake-targets.sh), from the same
# source as the x86 reference tools (the llama-cpp-python sdist's, via bench/build_llama_tools.sh),
# then runs it under `qemu-aarch64 -cpu cortex-a76` (the Pi 5's core) beside the x86 build:
# greedy text, logits and SIMD features on both starters, and the settings fitted for 4 and 8 GB
# Pis (bench/pi.py --no-record --no-python does the comparing; bench/pi.py adds llamadesk on an
# arm64 Python and records the figures).
#
# Usage: packaging/pi-check.sh [--build-only] [PYTHON]
#   --build-only  build (or find cached) and print the folder holding the builds, nothing else
#   PYTHON        the llamadesk venv's python (default .venv/bin/python): whose llama-cpp-python
#                 version to build, and what runs the comparison
#
# The folder printed holds pi-probe (aarch64, run it with qemu-aarch64 -cpu cortex-a76 -L
# /usr/aarch64-linux-gnu), pi-probe-x86 (native), build/bin (the aarch64 libllama/libggml) and
# cmake-args (the flags used). Cached in $LLAMADESK_TOOLS_CACHE (default ~/.cache/llamadesk-dev)
# and rebuilt when the pi5 flags or pi-probe.c change. Needs gcc-aarch64-linux-gnu,
# g++-aarch64-linux-gnu and qemu-user, installed with apt-get when missing; where that cannot be
# done it prints one line saying why and exits 3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=packaging/cmake-targets.sh
. "$here/cmake-targets.sh"

build_only=0
if [ "${1:-}" = --build-only ]; then
  build_only=1
  shift
fi
python=${1:-$repo/.venv/bin/python}
packages="gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user"
sysroot=/usr/aarch64-linux-gnu

skip() {
  echo "pi-check.sh: skipped: $*" >&2
  exit 3
}

have() { command -v "$1" > /dev/null 2>&1; }

ensure_toolchain() {
  have aarch64-linux-gnu-gcc && have aarch64-linux-gnu-g++ && have qemu-aarch64 && return 0
  have apt-get || skip "no apt-get to install $packages (install an aarch64 cross compiler and qemu-user by hand)"
  [ "$(id -u)" = 0 ] || skip "installing $packages needs root (sudo apt-get install $packages)"
  echo "pi-check.sh: installing $packages" >&2
  # shellcheck disable=SC2086  # the package list is meant to split
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages; } \
    > /dev/null 2>&1 || skip "apt-get could not install $packages (offline, or not Debian/Ubuntu?)"
  have qemu-aarch64 || skip "qemu-user installed no qemu-aarch64"
}

ensure_toolchain
version=$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
# The x86 reference build, and the llama.cpp source it was built from.
native_bin=$(bash "$repo/bench/build_llama_tools.sh" "$python")
src=$(dirname "$(dirname "$native_bin")")/src
cache=${LLAMADESK_TOOLS_CACHE:-$HOME/.cache/llamadesk-dev}/pi5-llama.cpp-$version
flags=$(cmake_args_for pi5)
stamp="$flags $(sha256sum < "$here/pi-probe.c" | cut -d' ' -f1)"

if [ ! -f "$cache/.ready" ] || [ "$(cat "$cache/.ready")" != "$stamp" ]; then
  # New flags start the build afresh; a new probe only needs compiling.
  if [ "$(cat "$cache/cmake-args" 2> /dev/null)" != "$flags" ]; then
    rm -rf "$cache/build" "$cache/cmake-args"
  fi
  rm -f "$cache/.ready"
  mkdir -p "$cache"
  # A plain cross build (shared libraries, as llama-cpp-python's wheel has) of libllama only: the
  # probe needs nothing else, and leaving out the tools keeps the build to a few minutes.
  # shellcheck disable=SC2086  # $flags is a list of CMake arguments
  nice cmake -S "$src" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
    -DCMAKE_FIND_ROOT_PATH="$sysroot" -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER \
    -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    $flags >&2
  nice cmake --build "$cache/build" --config Release -j "$(nproc)" --target llama >&2
  echo "$flags" > "$cache/cmake-args"
  include=(-I "$src/include" -I "$src/ggml/include")
  nice aarch64-linux-gnu-gcc -O2 -std=c11 "${include[@]}" "$here/pi-probe.c" -o "$cache/pi-probe" \
    -L "$cache/build/bin" -Wl,-rpath,"$cache/build/bin" -lllama
  nice gcc -O2 -std=c11 "${include[@]}" "$here/pi-probe.c" -o "$cache/pi-probe-x86" \
    -L "$native_bin" -Wl,-rpath,"$native_bin" -lllama
  echo "$stamp" > "$cache/.ready"
fi

if [ "$build_only" = 1 ]; then
  echo "$cache"
  exit 0
fi
exec "$python" "$repo/bench/pi.py" --builds "$cache" --no-record --no-python
