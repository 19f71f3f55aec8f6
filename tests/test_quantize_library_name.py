"""`quantize NAME`: a library name, as every command that takes a model resolves it.

`quantize` read its input only as a path, and its error line then told the user to give "a path
to a .gguf file or a model name", which is what had just been refused.
"""

from __future__ import annotations

import json

from llamadesk.app.core.paths import models_dir
from tests.conftest import run_cli


def test_a_library_model_is_quantized_by_name_into_the_library(smollm2_f16_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    (models_dir() / "smol-F16.gguf").symlink_to(smollm2_f16_path)
    done = run_cli("quantize", "smol-F16", "-t", "Q8_0", "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == str(models_dir() / "smol-Q8_0.gguf")
    listed = run_cli("models", "--json")
    assert "smol-Q8_0" in {entry["name"] for entry in json.loads(listed.stdout)}
    # -o still chooses the place; a name the library does not have is refused naming what it has.
    elsewhere = run_cli("quantize", "smol-F16", "-t", "Q8_0", "--threads", "1", "-o", str(tmp_path / "q.gguf"))
    assert elsewhere.returncode == 0 and (tmp_path / "q.gguf").is_file(), elsewhere.stderr
    unknown = run_cli("quantize", "no-such-model", "-t", "Q8_0")
    assert unknown.returncode == 2 and unknown.stderr.startswith("llamadesk: unknown model 'no-such-model'")
    assert "smol-F16" in unknown.stderr
