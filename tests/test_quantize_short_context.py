"""eval and imatrix on a model trained for a short context, and the one-line answers of eval,
imatrix, fit and quantize -t auto to inputs that are not what they ask for."""

from __future__ import annotations

import json

import pytest
from gguf import GGUFValueType

from tests.conftest import assert_one_clear_line, run_cli
from tests.gguf_copy import copy_with_key


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    from pydoc_data.topics import topics  # Python Language Reference, PSF License (permissive)

    path = tmp_path_factory.mktemp("text") / "t.txt"
    path.write_text("\n\n".join(topics.values())[:6000], encoding="utf-8")
    return path


def trained_for(smollm2_path, folder, tokens: int):
    target = folder / f"ctx{tokens}.gguf"
    return copy_with_key(smollm2_path, target, "llama.context_length", GGUFValueType.UINT32, tokens)


def test_eval_and_imatrix_default_to_the_models_context_when_it_is_shorter_than_512(smollm2_path, tmp_path, text_file):
    # A model trained for 256 tokens was refused for "--ctx 512", a flag nobody had given.
    model = trained_for(smollm2_path, tmp_path, 256)
    done = run_cli("eval", str(model), "--text", str(text_file), "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ctx"] == 256
    output = tmp_path / "m.imatrix"
    done = run_cli("imatrix", str(model), "--text", str(text_file), "--threads", "1", "-o", str(output))
    assert done.returncode == 0 and output.exists(), done.stderr


def test_a_context_too_short_to_score_is_said_of_the_model_not_of_a_range(smollm2_path, tmp_path, text_file):
    model = trained_for(smollm2_path, tmp_path, 3)  # was "chunks ... are 4 to 3"
    done = run_cli("eval", str(model), "--text", str(text_file), "--threads", "1")
    assert_one_clear_line(done, 2, "was trained for a context of 3 tokens", "at least 4")
    done = run_cli("imatrix", str(model), "--text", str(text_file), "--threads", "1", "-o", str(tmp_path / "x"))
    assert_one_clear_line(done, 2, "was trained for a context of 3 tokens", "at least 16")


def test_a_text_that_is_a_folder_is_not_called_missing(smollm2_path, tmp_path):
    for command in (["eval", str(smollm2_path)], ["imatrix", str(smollm2_path), "-o", str(tmp_path / "x")]):
        done = run_cli(*command, "--text", str(tmp_path), "--threads", "1", "--ctx", "64")
        assert_one_clear_line(done, 2, f"{tmp_path}: not a regular file")


def test_an_empty_memory_budget_is_refused_not_taken_for_the_default(smollm2_path, tmp_path):
    assert_one_clear_line(run_cli("fit", str(smollm2_path), "--memory", ""), 2, "cannot read '' as an amount")
    done = run_cli("quantize", str(smollm2_path), "-t", "auto", "--memory", "", "-o", str(tmp_path / "x.gguf"))
    assert_one_clear_line(done, 2, "cannot read '' as an amount")


def test_a_tiny_budget_is_shown_in_bytes_not_as_zero_gigabytes(smollm2_path, tmp_path):
    done = run_cli("quantize", str(smollm2_path), "-t", "auto", "--memory", "1KB", "-o", str(tmp_path / "x.gguf"))
    assert_one_clear_line(done, 2, "fits in 1000 B at this context", "MiB")
    assert "0.00" not in done.stderr
