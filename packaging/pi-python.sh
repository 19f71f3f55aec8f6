#!/usr/bin/env bash
# An arm64 Python with llamadesk and an aarch64 llama-cpp-python, run under qemu as a Pi 5 would
# run them: Debian's own python3.11 for arm64 (fetched with apt-get into a private folder, nothing
# installed on this machine), numpy and psutil as aarch64 wheels, llama-cpp-python's Python code
# over the libllama that pi-check.sh cross-built with install.sh's pi5 flags, and llamadesk and
# its pure-Python dependencies from this checkout and its venv.
#
# Usage: packaging/pi-python.sh [PYTHON]   -> prints a launcher: LAUNCHER -c 'import llamadesk ...'
#   PYTHON  the llamadesk venv's python (default .venv/bin/python), a 3.11 like Debian 12's.
# Cached in $LLAMADESK_TOOLS_CACHE (default ~/.cache/llamadesk-dev)/pi5-python; exits 3 with one
# line when it cannot be set up (see pi-check.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python=${1:-$repo/.venv/bin/python}
cache=${LLAMADESK_TOOLS_CACHE:-$HOME/.cache/llamadesk-dev}/pi5-python
launcher=$cache/python

skip() {
  echo "pi-python.sh: skipped: $*" >&2
  exit 3
}

builds=$(bash "$here/pi-check.sh" --build-only "$python")
[ "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = 3.11 ] \
  || skip "the venv's Python must be 3.11, the version of Debian 12's arm64 python3.11"
if [ ! -x "$launcher" ]; then
  command -v apt-get > /dev/null || skip "no apt-get to fetch Debian's arm64 python3.11"
  rm -rf "$cache" && mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/debs" "$cache/root"
  touch "$cache/apt/status"
  # apt-get on a private state folder and arm64 only: the machine's own package lists and
  # installed packages are left alone.
  apt=(apt-get -q -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt"
    -o "Dir::State::status=$cache/apt/status" -o APT::Architecture=arm64 -o APT::Architectures::=arm64)
  packages=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libssl3
    libffi8 libsqlite3-0 libbz2-1.0 liblzma5 libncursesw6 libtinfo6 libreadline8 libuuid1 libdb5.3 libgdbm6
    libcrypt1 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0
    libkeyutils1 libstdc++6 libgcc-s1 libgomp1)
  { "${apt[@]}" update && (cd "$cache/debs" && "${apt[@]}" download "${packages[@]}"); } > /dev/null 2>&1 \
    || skip "apt-get could not fetch Debian's arm64 python3.11 (offline, or not Debian 12?)"
  for deb in "$cache"/debs/*.deb; do
    dpkg-deb -x "$deb" "$cache/root"
  done
  # The two compiled dependencies, as aarch64 wheels of the venv's own versions.
  mapfile -t pins < <("$python" -c 'import importlib.metadata as m
for name in ("numpy", "psutil"):
    print(f"{name}=={m.version(name)}")')
  "$python" -m pip install -q --disable-pip-version-check --target "$cache/site" --only-binary :all: --no-deps \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp "${pins[@]}" >&2
  # llama-cpp-python's Python code over the aarch64 libraries (its loader looks in llama_cpp/lib).
  bindings=$("$python" -c 'import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))')
  cp -r "$bindings" "$cache/site/llama_cpp"
  rm -rf "$cache/site/llama_cpp/lib" "$cache/site/llama_cpp/__pycache__"
  ln -s "$builds/build/bin" "$cache/site/llama_cpp/lib"
  mkdir -p "$cache/checkout"
  ln -sfn "$repo" "$cache/checkout/llamadesk"
  # The venv's site-packages (and any it borrows through .pth files, which PYTHONPATH does not
  # read) come last: their x86 numpy, psutil and llama_cpp are shadowed by the ones above.
  venv_site=$("$python" -c 'import sys; print(":".join(p for p in sys.path if p.endswith("site-packages")))')
  cat > "$launcher" << EOF
#!/usr/bin/env bash
export PYTHONPATH="$cache/site:$cache/checkout:$venv_site" PYTHONNOUSERSITE=1
exec qemu-aarch64 -cpu cortex-a76 -L "$cache/root" "$cache/root/usr/bin/python3.11" "\$@"
EOF
  chmod +x "$launcher"
fi
echo "$launcher"
