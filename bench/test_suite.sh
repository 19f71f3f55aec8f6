#!/bin/bash
# The test suite before and after issue #14's restructuring, side by side in one run: wall and CPU
# time, and line coverage of app/, convert/ and quantize/ measured with coverage.py.
#
#   bench/test_suite.sh [BEFORE_COMMIT] [time|coverage] [SIDES]
#
# BEFORE_COMMIT (default 5c2b6d4, the last commit before #14) is checked out in a temporary
# worktree whose venv borrows this checkout's packages. "time" runs the test files the old suite
# had, old code serially as `make test` ran them then, today's code as `make test` runs them now
# (pytest-xdist, one worker per core). "coverage" runs each whole suite under coverage.py,
# subprocesses and xdist workers included (coverage's patch = subprocess), and prints both totals.
# Timing and coverage are separate runs: coverage slows the code it measures. SIDES (default
# "before after") picks which suites the coverage mode runs, e.g. "after" alone.
set -euo pipefail
BEFORE=${1:-5c2b6d4}
MODE=${2:-time}
SIDES=${3:-before after}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/llamadesk-suite-XXXX)
OLD=$WORK/before
trap 'git -C "$HERE" worktree remove --force "$OLD" 2> /dev/null || true; rm -rf "$WORK"; [ -z "${RPC_PTH:-}" ] || rm -f "$RPC_PTH"' EXIT

git -C "$HERE" worktree add --detach "$OLD" "$BEFORE" > /dev/null
python3 -m venv "$OLD/.venv"
SITE=$("$HERE/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
OLD_SITE=$("$OLD/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$SITE" > "$OLD_SITE/borrowed.pth"
# coverage measures child processes through a .pth of its own, which a borrowed folder does not
# run: copy it, named to run after borrowed.pth has made coverage importable.
cp "$SITE"/a1_coverage.pth "$OLD_SITE/zz_coverage.pth" 2> /dev/null || true
"$OLD/.venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$OLD"
# ruff is borrowed; llamadesk must stay the console script pip just wrote, which runs the old code
# (a link to this checkout's would run today's code in every CLI test of the old suite).
ln -sf "$HERE/.venv/bin/ruff" "$OLD/.venv/bin/ruff"
[ "$(head -n 1 "$OLD/.venv/bin/llamadesk")" = "#!$OLD/.venv/bin/python" ] || {
    echo "test_suite.sh: $OLD/.venv/bin/llamadesk is not the old checkout's console script" >&2
    exit 1
}
OLD_FILES=$(cd "$OLD" && ls tests/test_*.py tests/*/test_*.py)

coverage_rc() {  # $1: checkout, $2: data file
    # sigterm: servers the tests stop with SIGTERM (serve, rpc-server) still write their data.
    printf '[run]\nsource =\n    %s/app\n    %s/convert\n    %s/quantize\nparallel = true\npatch = subprocess\nsigterm = true\ndata_file = %s\n[report]\nskip_empty = true\n' \
        "$1" "$1" "$1" "$2"
}

# tests/test_rpc.py runs llamadesk with the RPC build's own cached venv (packaging/rpc-build.sh),
# for both suites. Give that venv coverage.py and its startup .pth too, or the code those tests
# run (app/engine/rpc.py, the rpc-server command) counts as never run. The .pth is removed at exit;
# it does nothing without coverage's environment variables anyway.
RPC_PTH=
measure_rpc_venv() {
    local rpc_python rpc_site version
    rpc_python=$(bash "$HERE/packaging/rpc-build.sh" "$HERE/.venv/bin/python" | tail -n 1)
    rpc_site=$("$rpc_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    version=$("$HERE/.venv/bin/python" -c 'import coverage; print(coverage.__version__)')
    "$rpc_python" -m pip install -q --disable-pip-version-check "coverage==$version"
    RPC_PTH=$rpc_site/zz_coverage.pth
    cp "$SITE/a1_coverage.pth" "$RPC_PTH"
}

if [ "$MODE" = time ]; then
    # A failing test is listed in the counts, and does not stop the other side's run.
    # shellcheck disable=SC2086  # the file lists are meant to split
    (cd "$OLD" && /usr/bin/time -f "before: wall %e s, CPU %U+%S s" .venv/bin/python -m pytest -q -p no:cacheprovider $OLD_FILES | tail -n 1) || true
    # shellcheck disable=SC2086
    (cd "$HERE" && /usr/bin/time -f "after:  wall %e s, CPU %U+%S s" .venv/bin/python -m pytest -q -p no:cacheprovider -n auto --dist loadfile $OLD_FILES | tail -n 1) || true
else
    measure_rpc_venv
    # shellcheck disable=SC2086  # SIDES is a list of words
    for side in $SIDES; do
        dir=$OLD; [ "$side" = after ] && dir=$HERE
        coverage_rc "$dir" "$WORK/$side.coverage" > "$WORK/$side.rc"
        workers=(); [ "$side" = after ] && workers=(-n auto --dist loadfile)
        # The failures are listed (-rf): a test that times something can fail under coverage's tracer.
        (cd "$dir" && .venv/bin/python -m pytest -q -rf -p no:cacheprovider "${workers[@]}" --cov --cov-config="$WORK/$side.rc" --cov-report= | grep -E '^(FAILED|ERROR)|[0-9]+ (passed|failed)') || true
        "$HERE/.venv/bin/python" -m coverage combine --append --rcfile="$WORK/$side.rc" > /dev/null 2>&1 || true
        # Per file, least covered first, kept after the run (the work folder is removed at exit).
        report=${TMPDIR:-/tmp}/llamadesk-coverage-$side.txt
        "$HERE/.venv/bin/python" -m coverage report --rcfile="$WORK/$side.rc" --precision=1 --sort=cover > "$report"
        echo "$side: $(grep -E '^(Name|TOTAL)' "$report" | tr -s ' ' | paste -sd ';') (per file: $report)"
    done
fi
