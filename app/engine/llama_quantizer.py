"""The one place in llamadesk that calls llama.cpp's quantizer (`llama_model_quantize`).

It runs as its own process (`python -m llamadesk.app.engine.llama_quantizer`), started by
quantize_model.py, and reads one line from stdin: a JSON object with the requests to run one after
another and the nonce for its markers.
Why a process and not a thread: llama_model_quantize is one blocking C call with no way to cancel
it. In a thread, Ctrl-C could only abandon it while it keeps burning CPU and writing for minutes,
and exiting Python under a running C thread can crash in llama.cpp's static
destructors. A process can be killed at once, so Ctrl-C stops the work, frees its memory and lets
the caller delete the partial file; a crash inside llama.cpp (abort on a bad tensor) also ends
only this process, never the app. The cost is ~0.06 s of start-up, spent while the parent checks the input.

Everything llama.cpp logs (one line per tensor, warnings, the final sizes, errors) is written to
stdout line by line; the parent reads it for progress and for the error message. After each
request a line `DONE_MARKER:NONCE STATUS SECONDS` gives llama_model_quantize's result (0 ok,
1 failed) and how long the call took; the exit status is the last one's. The nonce comes with the
requests (quantize_request.new_nonce says why the log cannot be trusted to not forge a marker).
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import signal
import sys
import time
from types import ModuleType

from llamadesk.app.engine.quantize_request import QuantizeRequest, done_marker, refused_marker


def import_bindings_alone() -> ModuleType:
    """llama-cpp-python's ctypes bindings (llama_cpp.llama_cpp) without its package __init__.

    Why: llama_cpp/__init__.py also imports the high-level Llama class and with it numpy, jinja2
    and diskcache, ~150 ms (a tenth of quantizing a 135M model) for code this process never runs;
    the bindings need only ctypes. If the package's layout ever changes, the plain import runs.
    """
    if "llama_cpp" not in sys.modules:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is not None and spec.submodule_search_locations:
            # Created from its spec but not executed: enough for Python to find its submodules.
            sys.modules["llama_cpp"] = importlib.util.module_from_spec(spec)
    try:
        return importlib.import_module("llama_cpp.llama_cpp")
    except ImportError:
        sys.modules.pop("llama_cpp", None)
        sys.modules.pop("llama_cpp.llama_cpp", None)
        return importlib.import_module("llama_cpp.llama_cpp")


llama = import_bindings_alone()

# Metadata llama-quantize records when an importance matrix was used (quantize.cpp).
IMATRIX_FILE_KEY = "quantize.imatrix.file"
IMATRIX_ENTRIES_KEY = "quantize.imatrix.entries_count"
IMATRIX_CHUNKS_KEY = "quantize.imatrix.chunks_count"
IMATRIX_DATASET_KEY = "quantize.imatrix.dataset"


class _LineLog:
    """Collects llama.cpp's log fragments (a tensor's line arrives in 3 pieces) into whole lines."""

    def __init__(self) -> None:
        self._pending = ""

    def __call__(self, _level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        self._pending += text.decode("utf-8", errors="replace")
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            sys.stdout.write(line + "\n")
        if lines:
            sys.stdout.flush()

    def flush(self) -> None:
        if self._pending:
            sys.stdout.write(self._pending + "\n")
            self._pending = ""
        sys.stdout.flush()


_LOG = _LineLog()
# llama.cpp keeps this pointer for the life of the process, so the object must live as long.
_LOG_CALLBACK = llama.llama_log_callback(_LOG)


def _kv_override(key: str, value: str | int) -> llama.llama_model_kv_override:
    override = llama.llama_model_kv_override()
    override.key = key.encode()
    if isinstance(value, int):
        override.tag = llama.LLAMA_KV_OVERRIDE_TYPE_INT
        override.value.val_i64 = value
    else:
        override.tag = llama.LLAMA_KV_OVERRIDE_TYPE_STR
        override.value.val_str = value.encode()[:127]
    return override


def _attach_imatrix(params: llama.llama_model_quantize_params, path: str) -> list[object]:
    """Point params at the importance matrix; returns the ctypes objects that must stay alive."""
    import numpy as np  # only when an imatrix is given

    from llamadesk.app.core.imatrix_file import read_imatrix

    imatrix = read_imatrix(path)
    entries = (llama.llama_model_imatrix_data * (len(imatrix.values) + 1))()
    arrays = []
    for i, (name, values) in enumerate(imatrix.values.items()):
        # Shared with numpy, not built element by element: (c_float * n)(*values) took 0.6 s and
        # ~40 bytes of Python objects per value (minutes and ~10 GB for DeepSeek V3's 247M values).
        array = np.ascontiguousarray(values, dtype=np.float32)
        arrays.append(array)
        entries[i].name = name.encode()
        entries[i].data = array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = len(values)
    # The last entry stays zeroed: llama.cpp stops at name == NULL.
    overrides = [_kv_override(IMATRIX_FILE_KEY, path), _kv_override(IMATRIX_ENTRIES_KEY, len(imatrix.values))]
    if imatrix.datasets:
        overrides.append(_kv_override(IMATRIX_DATASET_KEY, imatrix.datasets[0]))
    if imatrix.chunk_count > 0:
        overrides.append(_kv_override(IMATRIX_CHUNKS_KEY, imatrix.chunk_count))
    kv = (llama.llama_model_kv_override * (len(overrides) + 1))(*overrides)
    params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama.llama_model_imatrix_data))
    params.kv_overrides = ctypes.cast(kv, ctypes.POINTER(llama.llama_model_kv_override))
    return [entries, arrays, kv]


def run_quantize(request: QuantizeRequest) -> int:
    """Call llama_model_quantize with llama-quantize's defaults plus the request; 0 on success."""
    params = llama.llama_model_quantize_default_params()
    params.ftype = request.ftype
    params.nthread = request.threads
    params.allow_requantize = request.allow_requantize
    params.dry_run = request.dry_run
    keep_alive = _attach_imatrix(params, request.imatrix) if request.imatrix else []
    status = llama.llama_model_quantize(request.input.encode(), request.output.encode(), ctypes.byref(params))
    del keep_alive
    _LOG.flush()
    return int(status)


def _loader_refusal(path: str) -> str | None:
    """Why llama.cpp's loader refuses `path` (load_check.py), None if it loads; our log stays ours."""
    from llamadesk.app.engine.load_check import llama_cpp_refusal

    try:
        return llama_cpp_refusal(path)
    finally:
        llama.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def main() -> int:
    # Ctrl-C reaches this process too (same process group): die at once instead of waiting for
    # the C call to return, as Python's KeyboardInterrupt would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Past a file-size limit, fail the write (EFBIG, reported like a full disk) instead of dying
    # from SIGXFSZ with nothing said.
    if hasattr(signal, "SIGXFSZ"):  # not on Windows
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    llama.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    llama.llama_backend_init()
    status = 0
    # Empty when the parent's checks failed and it closed our stdin without asking for anything.
    job = json.loads(sys.stdin.readline() or "{}")
    nonce = job.get("nonce", "")
    for item in job.get("requests", []):
        started = time.perf_counter()
        request = QuantizeRequest(**item)
        # What llama.cpp's loader refuses (a tensor missing or of the wrong shape) its quantizer
        # takes: it wrote a file that no one could load, or died of SIGFPE on a zero dimension.
        refusal = None if request.dry_run else _loader_refusal(request.input)
        if refusal is not None:
            print(f"{refused_marker(nonce)}{refusal}", flush=True)
            status = 1
        else:
            status = run_quantize(request)
        print(f"{done_marker(nonce)}{status} {time.perf_counter() - started:.6f}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
