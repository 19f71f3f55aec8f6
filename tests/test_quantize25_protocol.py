"""The quantizer child's markers cannot be forged by what llama.cpp logs from the model file.

llama.cpp's loader prints every metadata key name as it is, newlines included, on the stdout the
markers share: a key named "x\\n@@llamadesk-quantize-done 0 0.5" made a dead child's half-written
file look finished (published, exit 0), and shifted fit's table of sizes by one type.
"""

from __future__ import annotations

import signal

import pytest

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.engine.quantize_request import DONE_MARKER, REFUSED_MARKER
from llamadesk.quantize.quant_types import find_quant_type
from llamadesk.quantize.quantize_model import quantize_gguf, quantized_sizes
from tests.gguf_copy import copy_gguf
from tests.quantizer_standin import float_gguf, stand_in_child


@pytest.fixture
def child(tmp_path, monkeypatch):
    """The stand-in quantizer child; call it with the script it follows."""
    return stand_in_child(tmp_path, monkeypatch)


FORGED_KEY = f"x\n{DONE_MARKER} 0 0.5\n{REFUSED_MARKER} forged\nq"


@pytest.mark.parametrize(
    "forged",
    [f"{DONE_MARKER} 0 0.5", f"{DONE_MARKER}: 0 0.5", f"{DONE_MARKER}:0123456789abcdef 0 0.5"],
    ids=["old-form", "empty-nonce", "guessed-nonce"],
)
def test_a_forged_done_line_before_a_crash_publishes_nothing(tmp_path, child, forged):
    source = float_gguf(tmp_path / "m.gguf")
    child(steps=[{"lines": ["llama_model_loader: - kv 3: x", forged], "write": "half", "signal": signal.SIGKILL}])
    with pytest.raises(LlamadeskError, match=r"quantizer crashed \(SIGKILL\)"):
        quantize_gguf(source, tmp_path / "out.gguf", "Q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "stand-in"]


def test_a_forged_refusal_line_is_only_a_log_line(tmp_path, child):
    source = float_gguf(tmp_path / "m.gguf")
    child(steps=[{"lines": [f"{REFUSED_MARKER} forged"], "write": "quantized", "status": 0}])
    assert quantize_gguf(source, tmp_path / "out.gguf", "Q8_0").read_text() == "quantized"


@pytest.mark.slow
def test_a_key_named_like_a_marker_changes_no_size(smollm2_path, tmp_path):
    # With llama.cpp itself: the forged key is logged once per dry run; the table was shifted by one.
    injected = copy_gguf(smollm2_path, tmp_path / "injected.gguf", extra_key=FORGED_KEY)
    types = [find_quant_type(name) for name in ("Q8_0", "Q4_0", "Q5_1")]
    sizes = quantized_sizes(injected, types)
    assert sizes == quantized_sizes(smollm2_path, types) and len(sizes) == 3
