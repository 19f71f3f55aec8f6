"""Evaluations are numbers: a model whose outputs are NaN is refused, and NaN never reaches JSON.

eval printed `"perplexity": NaN` (no JSON parser reads it) with exit 0, saved it beside the model,
and `models --json` copied it from there, also from a sidecar someone else wrote.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from llamadesk.quantize.evaluation import eval_file, saved_evaluations
from tests.conftest import assert_one_clear_line, run_cli
from tests.gguf_copy import copy_gguf


def test_saved_evaluations_with_numbers_that_are_not_finite_are_dropped(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"")
    good = {"perplexity": 12.5, "ctx": 64, "kld_mean": None}
    entries = [good, {"perplexity": float("nan"), "ctx": 64}, {"perplexity": 3.0, "kld_max": float("inf")}]
    eval_file(model).write_text(json.dumps({"results": entries}))  # Python writes NaN and Infinity
    assert saved_evaluations(model) == [good]


@pytest.mark.slow
def test_a_model_whose_outputs_are_not_numbers_is_refused_and_nothing_is_saved(smollm2_path, tmp_path):
    from pydoc_data.topics import topics  # Python Language Reference, PSF License (permissive)

    nan_model = copy_gguf(smollm2_path, tmp_path / "nan.gguf", changed={"output_norm.weight": lambda d: d * np.nan})
    text = tmp_path / "t.txt"
    text.write_text("\n\n".join(topics.values())[:3000], encoding="utf-8")
    done = run_cli("eval", str(nan_model), "--text", str(text), "--ctx", "64", "--threads", "1", "--json", "--save")
    assert_one_clear_line(done, 2, "the model's outputs are not numbers", "the file is damaged")
    assert done.stdout == "" and not eval_file(nan_model).exists()
