"""The numbers that say what quantization cost: perplexity, KL divergence, top-1 agreement.

Plain numpy over logits, each function named after its formula, so they are tested against an
independent reference (torch) without loading a model. Sums are in float64, as llama-perplexity
accumulates them in double.
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p_i = x_i - max(x) - log(sum_j exp(x_j - max(x))), row by row, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def token_negative_log_likelihoods(log_probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) for each row: the cross-entropy of each prediction."""
    rows = np.arange(len(targets))
    return -log_probs[rows, np.asarray(targets)]


def perplexity(negative_log_likelihoods: np.ndarray) -> float:
    """exp(mean cross-entropy): the number of equally likely tokens the model is choosing among."""
    return float(np.exp(np.mean(negative_log_likelihoods)))


def kl_divergences(base_log_probs: np.ndarray, log_probs: np.ndarray) -> np.ndarray:
    """KL(base || model) = sum_i p_base_i (log p_base_i - log p_i), one value per row."""
    p_base = np.exp(base_log_probs)
    return np.sum(p_base * (base_log_probs - log_probs), axis=-1)


def top1_matches(base_log_probs: np.ndarray, log_probs: np.ndarray) -> np.ndarray:
    """Whether the model's most likely token is the base model's, per row."""
    return np.argmax(base_log_probs, axis=-1) == np.argmax(log_probs, axis=-1)


def percentile(values: np.ndarray, fraction: float) -> float:
    """Linear interpolation between sorted values at fraction*(n-1), as llama-perplexity does."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), fraction * 100.0, method="linear"))
