"""Would llama.cpp load this model? Asked of llama.cpp itself, without loading any weights.

llamadesk checks everything llama.cpp could crash on before it sees a file (core/gguf_requirements),
but what llama.cpp merely refuses (an architecture, tokenizer or pre-tokenizer this build does not
know, a tensor an architecture needs that is missing) is llama.cpp's own knowledge, and changes
with every release. So `info` asks llama.cpp's loader with `no_alloc` (hyperparameters, vocabulary
and every tensor's name and shape are checked; no weight is read or allocated), and a failed real
load reports the same reason. Call this only on a file gguf_file.inspect_gguf has accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

import llama_cpp.llama_cpp as llama

from llamadesk.app.engine.llama_log import log_sent_to

# llama.cpp's one line on why a load failed (src/llama.cpp, llama_model_load).
REFUSAL = re.compile(r"error loading model: (?P<reason>[^\n]+)")


MAX_REASON = 300  # characters: a reason quotes names from the file, which may be long


def refusal_reason(log: str) -> str:
    """llama.cpp's reason for refusing a model, from its load log (its last error line otherwise)."""
    match = REFUSAL.search(log)
    if match:
        reason = match["reason"].strip().removeprefix("error loading model ").strip()
    else:
        errors = [line.strip() for line in log.splitlines() if "error" in line.lower() or "failed" in line.lower()]
        reason = errors[-1] if errors else "no reason given"
    reason = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in reason)
    return reason[:MAX_REASON] + ("..." if len(reason) > MAX_REASON else "")


def llama_cpp_refusal(path: Path | str) -> str | None:
    """Why llama.cpp would refuse to load `path` as a model, in its words; None when it would load it."""
    llama.llama_backend_init()
    params = llama.llama_model_default_params()
    params.no_alloc = True
    # Nothing is mapped either: llama.cpp asserts that a no_alloc load does not map the file.
    params.load_mode = llama.LLAMA_LOAD_MODE_NONE
    params.lazy_mode = llama.LLAMA_LAZY_MODE_OFF
    params.n_gpu_layers = 0
    pieces: list[str] = []
    with log_sent_to(pieces.append):
        model = llama.llama_model_load_from_file(str(path).encode(), params)
    if model:
        llama.llama_model_free(model)
        return None
    return refusal_reason("".join(pieces))
