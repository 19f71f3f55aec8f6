"""`quantize NAME`: a library name, as every command that takes a model resolves it.

`quantize` read its input only as a path, and its error line then told the user to give "a path
to a .gguf file or a model name", which is what had just been refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from llamadesk.app.core.paths import models_dir
from tests.conftest import run_cli
from tests.other_app_stores import ollama_store


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


def test_an_ollama_name_with_a_slash_is_quantized_into_the_library_not_ollamas_store(smollm2_path, tmp_path):
    # Ollama's hf.co/REPO:QUANT (and a pull's REPO:QUANT) hold a '/': read as a path, the copy
    # went beside the blob, into Ollama's own blobs folder, and no listing showed it.
    store = ollama_store(tmp_path / "user", smollm2_path)
    blobs_before = sorted((store / "blobs").iterdir())
    env = {"LLAMADESK_HOME": str(tmp_path / "home"), "HOME": str(tmp_path / "user"), "OLLAMA_MODELS": ""}
    name = "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_1"
    args = ("-t", "Q8_0", "--allow-requantize", "--threads", "1", "--json")
    done = run_cli("quantize", name, *args, env=env)
    assert done.returncode == 0, done.stderr
    output = Path(json.loads(done.stdout)["output"])
    assert output.parent == tmp_path / "home" / "data" / "models" and output.is_file()
    assert sorted((store / "blobs").iterdir()) == blobs_before


def test_a_file_given_by_path_is_quantized_whatever_library_json_holds(smollm2_path, tmp_path):
    # The library is not asked about a path that names a file: a damaged record refused it.
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "library.json").write_text("{damaged")
    model = tmp_path / "model.gguf"
    model.symlink_to(smollm2_path)
    out = tmp_path / "out.gguf"
    args = ("-t", "Q8_0", "--allow-requantize", "--threads", "1", "-o", str(out))
    done = run_cli("quantize", str(model), *args, env={"LLAMADESK_HOME": str(home)})
    assert done.returncode == 0 and out.is_file(), done.stderr
