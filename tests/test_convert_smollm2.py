"""A real trained checkpoint: SmolLM2-135M-Instruct as an HF folder, converted and run by llama.cpp.

The reference is transformers in fp32 on the same folder: greedy top-1 identical at every
position, max |logit diff| < 1e-3 for f32 and < 0.1 for f16, and token ids identical to the HF
tokenizer's on English, French, Chinese, code and emoji text.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from llamadesk.convert import convert_checkpoint
from tests.fixtures.logits_reference import llama_cpp_logits, llama_cpp_tokenize
from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Il était une fois un petit lama qui vivait dans les montagnes.",
]
TOKENIZER_TEXTS = {
    "english": "Hello world! It's 3:45 pm and we've got 1,234 llamas.",
    "french": "Où est la bibliothèque ? L'été dernier, nous étions à Besançon.",
    "chinese": "我们今天去北京天安门广场参观。",
    "code": "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "emoji": "Great job 🎉🙂👩‍💻 see you soon 🚀",
}


@pytest.fixture(scope="session")
def smollm2_folder(smollm2_path) -> Path:
    return smollm2_hf_checkpoint(smollm2_path)


@pytest.fixture(scope="session")
def reference(smollm2_folder):
    """transformers' model and tokenizer (fp32), loaded once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)

    @cache  # the f32 and f16 conversions are compared with the same reference logits
    def logits(ids: tuple[int, ...]) -> np.ndarray:
        with torch.no_grad():
            return model(torch.tensor([list(ids)])).logits[0].numpy()

    return logits, tokenizer


@pytest.fixture(scope="session")
def converted(smollm2_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("smollm2-gguf")
    return {t: convert_checkpoint(smollm2_folder, folder / f"smollm2-{t}.gguf", outtype=t) for t in ("f32", "f16")}


@pytest.mark.slow
@pytest.mark.parametrize("outtype, tolerance", [("f32", 1e-3), ("f16", 0.1)])
def test_logits_match_transformers(outtype, tolerance, converted, reference):
    logits, tokenizer = reference
    sequences = [tokenizer(prompt)["input_ids"] for prompt in PROMPTS]
    for prompt, ids, got in zip(PROMPTS, sequences, llama_cpp_logits(converted[outtype], sequences), strict=False):
        expected = logits(tuple(ids))
        assert (got.argmax(-1) == expected.argmax(-1)).all(), prompt
        assert np.abs(got - expected).max() < tolerance, prompt


@pytest.mark.slow
@pytest.mark.parametrize("language", list(TOKENIZER_TEXTS))
def test_token_ids_match_the_hf_tokenizer(language, converted, reference):
    _, tokenizer = reference
    text = TOKENIZER_TEXTS[language]
    assert llama_cpp_tokenize(converted["f32"], text) == tokenizer(text)["input_ids"]


@pytest.mark.slow
def test_chat_template_and_special_tokens_carried_over(converted, smollm2_folder):
    from llamadesk.app.core.gguf_file import inspect_gguf

    fields = inspect_gguf(converted["f16"]).metadata
    assert fields["tokenizer.chat_template"] == (smollm2_folder / "chat_template.jinja").read_text()
    assert fields["tokenizer.ggml.bos_token_id"] == 1 and fields["tokenizer.ggml.eos_token_id"] == 2
    assert fields["general.architecture"] == "llama" and fields["general.size_label"] == "135M"
    assert fields["general.file_type"] == 1  # mostly f16


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_name", "code", "said"),
    [
        ("SIGINT", 130, "llamadesk: interrupted"),
        # `timeout`, a service manager, a closed terminal: these once left the .part file behind
        ("SIGTERM", 143, "llamadesk: stopped by SIGTERM"),
        ("SIGHUP", 129, "llamadesk: stopped by SIGHUP"),
    ],
)
def test_ctrl_c_or_a_termination_during_conversion_leaves_no_file(smollm2_folder, tmp_path, signal_name, code, said):
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import LLAMADESK

    out = tmp_path / "smollm2.gguf"
    process = subprocess.Popen(
        [str(LLAMADESK), "convert", str(smollm2_folder), "-o", str(out), "--outtype", "f32"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".smollm2.gguf.*.part")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)  # wait until it is writing
    process.send_signal(getattr(signal, signal_name))
    _, err = process.communicate(timeout=120)
    assert process.returncode == code and err.strip().splitlines() == [said]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_verify_checks_each_added_token_and_catches_one_typed_as_text(smollm2_folder, converted, tmp_path):
    """convert --verify puts each of tokenizer.json's added tokens (SmolLM2's chat markers) between
    two words and asks the GGUF to split it out as the source does: a file whose <|im_start|> is
    typed as ordinary text comes out in pieces there and is caught."""
    import gguf

    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings
    from llamadesk.convert.converter import plan_conversion, write_gguf
    from llamadesk.convert.verify import VERIFY_CONTEXT, added_token_texts, token_mismatches

    texts = added_token_texts(smollm2_folder, "gpt2")
    assert "Hello<|im_start|>world" in texts and "Hello<|im_end|>world" in texts

    def mismatched(path: Path) -> list[str]:
        with Engine.load(path, LoadSettings(n_ctx=VERIFY_CONTEXT)) as engine:
            found = token_mismatches(smollm2_folder, "gpt2", lambda t: engine.tokenize(t, special=True), texts)
        return [mismatch.text for mismatch in found]

    assert mismatched(converted["f16"]) == []
    plan = plan_conversion(smollm2_folder, "f16")
    plan.vocabulary.types[plan.vocabulary.tokens.index("<|im_start|>")] = gguf.TokenType.NORMAL
    assert mismatched(write_gguf(plan, tmp_path / "typed-as-text.gguf")) == ["Hello<|im_start|>world"]
