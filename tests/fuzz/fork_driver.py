"""Runs many hostile cases in one process: imports once, then forks a child per case.

Why a separate process that forks: a case may segfault, hang or allocate without bound, and
must not take the test session with it; a fresh interpreter per case would cost ~1 s of imports
each, and hundreds of cases are needed. This process stays single-threaded until it forks, so each
child starts from a clean state. Children run under an address-space limit and a CPU alarm.

Input (a JSON file named on the command line): {"cases": [case, ...], "preload": [module, ...]}
where a case is {"id", "argv"} (runs llamadesk's CLI main) or {"id", "call": "module:function",
"args": [...]} (calls a function; LlamadeskError becomes its exit code and message), plus
optional "env" (set before the call), "stdin" (text), "timeout" (s), "memory" (bytes) and
"enforce_permissions" (true: file modes bind the child even when it runs as root).
Output: one JSON line per case on stdout: {"id", "status": exit|signal|timeout, "code", "stdout",
"stderr", "seconds"}.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback

DEFAULT_TIMEOUT = 20.0
DEFAULT_MEMORY = 6 * 1024**3
# A function that raises something other than LlamadeskError exits with this: a test sees it as
# "not refused cleanly" and prints the traceback the child wrote.
UNCAUGHT = 99


def _child(case: dict, out_path: str, err_path: str) -> None:
    memory = int(case.get("memory", DEFAULT_MEMORY))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    timeout = float(case.get("timeout", DEFAULT_TIMEOUT))
    resource.setrlimit(resource.RLIMIT_CPU, (int(timeout) + 1, int(timeout) + 2))
    out = os.open(out_path, os.O_WRONLY)
    err = os.open(err_path, os.O_WRONLY)
    stdin = case.get("stdin")
    if stdin is None:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    else:
        r, w = os.pipe()
        os.write(w, stdin.encode())
        os.close(w)
        os.dup2(r, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child exits with os._exit
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    # As the interpreter's own stderr: text it cannot encode (argv's surrogate escapes) is escaped.
    sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
    # The CLI turns what it did not foresee into "internal error" (exit 1); here the traceback helps.
    os.environ["LLAMADESK_DEBUG"] = "1"
    os.environ.update(case.get("env", {}))
    code = UNCAUGHT
    try:
        if case.get("enforce_permissions"):
            from tests.permissions import drop_permission_overrides

            drop_permission_overrides()
        if "argv" in case:
            from llamadesk.app.cli import main

            code = main(case["argv"])
        else:
            from llamadesk.app.core.errors import LlamadeskError

            module, function = case["call"].split(":")
            try:
                getattr(importlib.import_module(module), function)(*case.get("args", []))
                code = 0
            except LlamadeskError as error:
                print(f"llamadesk: {error}", file=sys.stderr)
                code = error.exit_code
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 2
    except BaseException:
        traceback.print_exc()
        code = UNCAUGHT
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_case(case: dict) -> dict:
    with tempfile.NamedTemporaryFile(delete=False) as out, tempfile.NamedTemporaryFile(delete=False) as err:
        out_path, err_path = out.name, err.name
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(case, out_path, err_path)
    timeout = float(case.get("timeout", DEFAULT_TIMEOUT))
    status = None
    while time.monotonic() - started < timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = None  # not the (0, 0) of the last poll, which would read as "exit 0"
    seconds = time.monotonic() - started
    with open(out_path, errors="replace") as f:
        stdout = f.read(20000)
    with open(err_path, errors="replace") as f:
        stderr = f.read(20000)
    os.unlink(out_path)
    os.unlink(err_path)
    result = {"id": case["id"], "stdout": stdout, "stderr": stderr, "seconds": round(seconds, 3)}
    if status is None:
        result.update(status="timeout", code=None)
    elif os.WIFSIGNALED(status):
        result.update(status="signal", code=os.WTERMSIG(status))
    else:
        result.update(status="exit", code=os.WEXITSTATUS(status))
    return result


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    for module in spec.get("preload", []):
        importlib.import_module(module)
    for case in spec["cases"]:
        print(json.dumps(run_case(case)), flush=True)


if __name__ == "__main__":
    main()
