"""engine/batch_numerics.py: the measurement behind bench/batch_numerics.py, on the real SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest

from llamadesk.app.engine.batch_numerics import kl_divergence, logits_alone_and_beside
from llamadesk.app.engine.llama_engine import ggml_type_id

PROMPT = "The capital of France is"


def test_kl_divergence_is_zero_for_the_same_logits_and_grows_with_a_change():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 50)).astype(np.float32)
    assert np.allclose(kl_divergence(logits, logits), 0.0)
    assert np.allclose(kl_divergence(logits, logits + 7.0), 0.0), "a shift of every logit is the same distribution"
    moved = logits.copy()
    moved[:, 0] += 2.0
    small, large = kl_divergence(logits, logits + 0.1 * (moved - logits)), kl_divergence(logits, moved)
    assert np.all(small > 0) and np.all(large > small)
    p = np.exp(logits[0].astype(np.float64)) / np.exp(logits[0].astype(np.float64)).sum()
    q = np.exp(moved[0].astype(np.float64)) / np.exp(moved[0].astype(np.float64)).sum()
    assert kl_divergence(logits, moved)[0] == pytest.approx(float((p * np.log(p / q)).sum()), rel=1e-6)


def test_alone_is_repeatable_and_matches_the_engine(smollm2_path, smollm2_engine):
    first = logits_alone_and_beside(smollm2_path, PROMPT, flash_attn=True, kv_type=ggml_type_id("f16"), n_follow=2)
    again = logits_alone_and_beside(smollm2_path, PROMPT, flash_attn=True, kv_type=ggml_type_id("f16"), n_follow=2)
    tokens = smollm2_engine.tokenize(PROMPT, add_bos=True)
    engine_rows = smollm2_engine.position_logits(tokens)  # token by token, flash attention, f16 (PINNED_LOAD)
    assert first.alone.shape == first.beside.shape == (3, engine_rows.shape[1])
    assert np.array_equal(first.alone, again.alone) and np.array_equal(first.beside, again.beside)
    assert int(first.alone[0].argmax()) == int(engine_rows[-1].argmax())
    assert float(np.abs(first.alone[0] - engine_rows[-1]).max()) < 2.0  # same model, other kernel paths
