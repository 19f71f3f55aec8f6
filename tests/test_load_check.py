"""Asking llama.cpp whether it would load a model, without loading weights, and its reason when not."""

from __future__ import annotations

import pytest

from llamadesk.app.engine.load_check import MAX_REASON, llama_cpp_refusal, refusal_reason
from tests.gguf_samples import TinyModel


def test_llama_cpp_loads_the_starter_model(smollm2_path):
    assert llama_cpp_refusal(smollm2_path) is None


def test_llama_cpp_names_what_it_refuses(tmp_path):
    # TinyModel passes llamadesk's checks but lacks tensors llama.cpp's llama graph needs.
    reason = llama_cpp_refusal(TinyModel().write(tmp_path / "tiny.gguf"))
    assert reason is not None and reason.endswith("tensor 'blk.0.attn_v.weight' not found")

    bogus = TinyModel("bogus").write(tmp_path / "bogus.gguf")
    assert llama_cpp_refusal(bogus) == "unknown model architecture: 'bogus'"


@pytest.mark.parametrize(
    "log, reason",
    [
        (
            "llama_model_loader: loaded meta data\n"
            "llama_model_load: error loading model: unknown model architecture: 'x'\n"
            "llama_model_load_from_file_impl: failed to load model\n",
            "unknown model architecture: 'x'",
        ),
        (  # llama.cpp repeats itself for hyperparameters and vocabulary
            "llama_model_load: error loading model: error loading model hyperparameters: "
            "key not found in model: llama.context_length\n",
            "hyperparameters: key not found in model: llama.context_length",
        ),
        (  # no "error loading model" line: the last line that says what failed
            "gguf_init_from_file_impl: failed to read key-value pairs\n"
            "llama_model_load: something else\n"
            "llama_model_load_from_file_impl: failed to load model\n",
            "llama_model_load_from_file_impl: failed to load model",
        ),
        ("llama_model_loader: loaded meta data\n", "no reason given"),
        ("", "no reason given"),
        ("error loading model: tensor 'a\tb\x1b' is odd\n", "tensor 'a\\x09b\\x1b' is odd"),
    ],
    ids=["error-loading-model", "repeated-prefix", "last-failed-line", "none", "empty", "control-characters"],
)
def test_the_refusal_reason_in_a_load_log(log, reason):
    assert refusal_reason(log) == reason


def test_a_long_reason_is_cut_short():
    reason = refusal_reason("error loading model: " + "x" * 1000)
    assert reason == "x" * MAX_REASON + "..."
    assert refusal_reason("error loading model: " + "x" * MAX_REASON) == "x" * MAX_REASON
