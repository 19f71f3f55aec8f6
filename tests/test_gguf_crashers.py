"""Hyperparameters that load in llama.cpp and then abort the process at the first token (a
GGML_ASSERT), on the real Gemma 3 starter: llama.cpp itself dies of SIGABRT on them in a child
process, and llamadesk refuses the file with one line before llama.cpp sees it (`info`, `chat`).

Each file is the starter's header with one key changed, over a sparse tail of zeros as long as the
tensor data: llama.cpp finds every tensor, and the assert fires before any weight matters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk.app.core.gguf_requirements import ADVICE
from tests.fuzz.gguf_mutants import F32, U32, _parse

LLAMADESK = Path(sys.executable).with_name("llamadesk")
HEADER_BYTES = 16 * 1024 * 1024  # Gemma 3's 262,144-token vocabulary makes a header of about 6 MB

# (key, GGUF type, value, what llamadesk says)
CRASHERS = {
    "odd-rope-width": (
        "gemma3.rope.dimension_count",
        U32,
        255,
        "gemma3.rope.dimension_count is 255; rotary embedding turns pairs of dimensions, so it must be even",
    ),
    "negative-epsilon": (
        "gemma3.attention.layer_norm_rms_epsilon",
        F32,
        -1.0,
        "gemma3.attention.layer_norm_rms_epsilon is -1.0; it must be at least 0",
    ),
}

# Loads the model with llama.cpp alone (no llamadesk check) and decodes one token.
DECODE_ONE_TOKEN = """
import sys, llama_cpp
llama_cpp.llama_backend_init()
model = llama_cpp.llama_model_load_from_file(sys.argv[1].encode(), llama_cpp.llama_model_default_params())
assert model, "llama.cpp refused the file at load"
params = llama_cpp.llama_context_default_params()
params.n_ctx, params.n_threads, params.n_threads_batch = 64, 1, 1
context = llama_cpp.llama_init_from_model(model, params)
token = (llama_cpp.llama_token * 1)(2)
llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(token, 1))
print("decoded")
"""


def mutated_starter(gemma_path: Path, folder: Path, key: str, vtype, value) -> Path:
    size = gemma_path.stat().st_size
    with gemma_path.open("rb") as f:
        layout = _parse(f.read(HEADER_BYTES), size)
    layout.set(key, vtype, value)
    head = layout.encode()
    path = folder / f"{key}.gguf"
    with path.open("wb") as f:
        f.write(head)
        f.truncate(-(-len(head) // layout.alignment) * layout.alignment + layout.data_size)
    return path


@pytest.mark.parametrize("case", CRASHERS.values(), ids=CRASHERS.keys())
def test_llamadesk_refuses_what_aborts_llama_cpp_at_the_first_token(gemma_path, tmp_path, case):
    key, vtype, value, message = case
    path = mutated_starter(gemma_path, tmp_path, key, vtype, value)
    env = {**os.environ, "LLAMADESK_HOME": str(tmp_path / "home")}

    unguarded = subprocess.run(
        [sys.executable, "-c", DECODE_ONE_TOKEN, str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert unguarded.returncode == -signal.SIGABRT, unguarded.stdout + unguarded.stderr[-2000:]

    for command in (["info", str(path)], ["chat", "-m", str(path), "--threads", "1", "--max-tokens", "2", "hi"]):
        result = subprocess.run([LLAMADESK, *command], capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [f"llamadesk: {path}: {message}; " + ADVICE], result.stderr
