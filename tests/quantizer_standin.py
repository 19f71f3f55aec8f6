"""A stand-in for the quantizer child that follows the real one's protocol, from a script.

The real child (app/engine/llama_quantizer.py) reads one JSON line with its requests and a nonce
and, for each request, logs what llama.cpp says and then a `DONE_MARKER:NONCE STATUS SECONDS`
line. The stand-in does the same from a script of what to say, write and do (exit, or kill itself
as a crash would).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType

import llamadesk.quantize.quantize_model as quantize_model
from llamadesk.app.engine.quantize_request import DONE_MARKER
from tests.gguf_samples import TinyModel

STAND_IN = f'''
import json, os, signal, sys

script = json.loads(os.environ["STAND_IN_SCRIPT"])
if script.get("exit_at_once") is not None:
    os._exit(script["exit_at_once"])  # before reading its requests, as a child that fails to start
job = json.loads(sys.stdin.readline() or "{{}}")
for request, step in zip(job.get("requests", []), script["steps"]):
    for line in step.get("lines", []):
        print(line, flush=True)
    if "write" in step:
        with open(request["output"], "w") as out:
            out.write(step["write"])
    if "signal" in step:
        os.kill(os.getpid(), step["signal"])
    if "exit" in step:
        sys.exit(step["exit"])
    print("{DONE_MARKER}:" + job["nonce"], step["status"], "0.25", flush=True)
'''


def stand_in_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Makes quantize_model start the stand-in; returns the function that sets the script it
    follows: `child(steps=[...])` or `child(exit_at_once=N)`. (A test module's `child` fixture.)"""
    folder = tmp_path / "stand-in"
    folder.mkdir()
    (folder / "stand_in_quantizer.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setattr(quantize_model, "WORKER_MODULE", "stand_in_quantizer")

    def script(**what) -> None:
        monkeypatch.setenv("STAND_IN_SCRIPT", json.dumps(what))

    return script


def float_gguf(path: Path, quantized: bool = False) -> Path:
    """A tiny model every load check accepts (quantize_gguf runs them), f32 or with one Q8_0 matrix."""
    if not quantized:
        return TinyModel().write(path)
    # two rows of one Q8_0 block each (32 values in 34 bytes)
    extra = {"blk.0.extra.weight": np.zeros((2, 34), np.uint8)}
    return TinyModel(tensors=extra, raw_types={"blk.0.extra.weight": GGMLQuantizationType.Q8_0}).write(path)
