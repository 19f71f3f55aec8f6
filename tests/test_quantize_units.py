"""Fast checks of quantize/'s tables and pure functions against independent references."""

from __future__ import annotations

import dataclasses
import re
import struct

import numpy as np
import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.imatrix_file import read_imatrix
from llamadesk.quantize import quality_metrics as qm
from llamadesk.quantize.evaluation import chunk_starts, chunk_tokens, scored_span
from llamadesk.quantize.memory_fit import parse_memory
from llamadesk.quantize.quant_types import QUANT_TYPES, find_quant_type, quant_type_names
from llamadesk.quantize.quantize_log import QuantizeReport, read_line
from tests.fixtures.smollm2_f16 import llama_cpp_source


def test_type_table_is_llama_quantizes_list():
    """Every type llama-quantize offers (tools/quantize/quantize.cpp), same names, same ftype numbers."""
    import llama_cpp.llama_cpp as llama

    source = (llama_cpp_source() / "tools" / "quantize" / "quantize.cpp").read_text()
    offered = re.findall(r'\{\s*"(\w+)",\s*LLAMA_FTYPE_(\w+),', source)
    offered = [(name, ftype) for name, ftype in offered if name != "COPY"]
    assert [q.name for q in QUANT_TYPES] == [name for name, _ in offered]
    for quant, (_, ftype_name) in zip(QUANT_TYPES, offered, strict=False):
        assert quant.ftype == getattr(llama, f"LLAMA_FTYPE_{ftype_name}"), quant.name


def test_types_needing_an_imatrix_match_llama_cpp():
    """The ftypes whose main tensor type llama-quant.cpp refuses without an imatrix."""
    assert {q.name for q in QUANT_TYPES if q.needs_imatrix} == {
        "IQ2_XXS",
        "IQ2_XS",
        "IQ2_S",
        "IQ2_M",
        "IQ1_S",
        "IQ1_M",
        "Q2_K_S",
        "IQ3_XXS",
    }


def test_unknown_type_lists_the_valid_ones():
    with pytest.raises(BadInputError) as err:
        find_quant_type("Q9_K")
    assert "Q9_K" in str(err.value)
    for name in ("Q4_K_M", "Q8_0", "IQ2_XS", "TQ1_0", "BF16"):
        assert name in str(err.value)
    assert find_quant_type("q4_k").name == "Q4_K_M"  # aliases and any case, as llama-quantize
    assert "Q4_K" in quant_type_names() and "Q4_K" not in quant_type_names(include_aliases=False)


def test_quantize_log_lines():
    report = QuantizeReport()
    step = read_line(
        report,
        "[  12/ 272] blk.0.attn_q.weight             - [   576,    576,      1,      1], "
        "type =    f16, converting to q5_0 .. size =     0.63 MiB ->     0.22 MiB",
    )
    assert (step.index, step.total, step.name) == (12, 272, "blk.0.attn_q.weight")
    assert read_line(report, "llama_model_quantize_impl: quant size  =    98.87 MiB (6.17 BPW)") is None
    assert report.output_mib == 98.87 and report.output_bits_per_weight == 6.17
    read_line(report, "llama_model_quantize: failed to quantize: requantizing from type q4_1 is disabled")
    assert report.failure == "requantizing from type q4_1 is disabled"
    read_line(report, "llama_model_quantize_impl: WARNING: 180 of 272 tensor(s) required fallback quantization")
    assert report.fallback_tensors == 180 and not report.needs_imatrix
    read_line(report, " ERROR: this quantization requires an importance matrix!")
    assert report.needs_imatrix


def test_metrics_match_torch():
    import torch

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(6, 50)).astype(np.float32)
    base = logits + rng.normal(0, 0.3, size=logits.shape).astype(np.float32)
    targets = rng.integers(0, 50, size=6)
    t_logits, t_base = torch.tensor(logits, dtype=torch.float64), torch.tensor(base, dtype=torch.float64)
    ref_lp = torch.log_softmax(t_logits, -1)
    np.testing.assert_allclose(qm.log_softmax(logits), ref_lp.numpy(), rtol=1e-12, atol=1e-12)
    ref_nll = torch.nn.functional.cross_entropy(t_logits, torch.tensor(targets), reduction="none").numpy()
    nll = qm.token_negative_log_likelihoods(qm.log_softmax(logits), targets)
    np.testing.assert_allclose(nll, ref_nll, rtol=1e-12)
    assert qm.perplexity(nll) == pytest.approx(float(np.exp(ref_nll.mean())), rel=1e-12)
    base_lp = torch.log_softmax(t_base, -1)
    ref_kl = torch.nn.functional.kl_div(ref_lp, base_lp, log_target=True, reduction="none").sum(-1).numpy()
    np.testing.assert_allclose(qm.kl_divergences(base_lp.numpy(), ref_lp.numpy()), ref_kl, rtol=1e-10, atol=1e-14)
    assert np.array_equal(qm.top1_matches(base, logits), base.argmax(-1) == logits.argmax(-1))
    values = rng.random(101)
    assert qm.percentile(values, 0.99) == pytest.approx(float(torch.quantile(torch.tensor(values), 0.99)))


def test_chunks_follow_llama_perplexity():
    assert chunk_starts(1100, 512) == [0, 512]  # the remainder is dropped
    with pytest.raises(BadInputError, match="at least 1024"):
        chunk_starts(1000, 512)
    span = scored_span(512)
    assert (span.start, span.stop) == (256, 511)  # 255 scored tokens per chunk, as llama-perplexity's count
    tokens = list(range(10, 30))
    assert chunk_tokens(tokens, 8, 4, bos=1) == [1, 19, 20, 21]
    assert chunk_tokens(tokens, 8, 4, bos=None) == [18, 19, 20, 21]


def test_parse_memory():
    assert parse_memory("4GB") == 4_000_000_000
    assert parse_memory("4GiB") == 4 * 1024**3
    assert parse_memory("512 MiB") == 512 * 1024**2
    assert parse_memory("1234") == 1234
    for bad in ("lots", "4XB", "0GB", "-1GB"):
        with pytest.raises(BadInputError):
            parse_memory(bad)


def _legacy_imatrix(path, entries, chunks, dataset):
    """A file in llama-imatrix's legacy .dat layout, written from its description."""
    out = struct.pack("<i", len(entries))
    for name, (ncall, values) in entries.items():
        raw = name.encode()
        out += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, len(values))
        out += np.asarray(values, dtype="<f4").tobytes()
    out += struct.pack("<i", chunks) + struct.pack("<i", len(dataset)) + dataset.encode()
    path.write_bytes(out)


def test_legacy_imatrix_is_normalised_like_llama_quantize(tmp_path):
    path = tmp_path / "m.dat"
    _legacy_imatrix(path, {"blk.0.ffn_up.weight": (4, [4.0, 8.0, 2.0])}, chunks=7, dataset="notes.txt")
    matrix = read_imatrix(path)
    np.testing.assert_allclose(matrix.values["blk.0.ffn_up.weight"], [1.0, 2.0, 0.5])
    assert matrix.chunk_count == 7 and matrix.datasets == ["notes.txt"]
    (tmp_path / "bad.dat").write_bytes(b"\x05\x00\x00\x00abc")
    with pytest.raises(BadInputError, match="not an importance matrix"):
        read_imatrix(tmp_path / "bad.dat")


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,  # nested past any parser's recursion
        b"\xff\xfe not utf-8",
        b'{"results": "not a list"}',
        b'{"results": [1, "two", {"kept": true}, {"perplexity": 12.5, "ctx": 64, "other": [1]}]}',
        # each made `models` stop (KeyError, format errors) in the line that shows the result
        b'{"results": [{"perplexity": 12.5}, {"perplexity": "x", "ctx": 64}, {"perplexity": [1], "ctx": 64}]}',
        b'{"results": [{"perplexity": 12.5, "ctx": "x"}, {"perplexity": 1, "ctx": 8, "kld_mean": "high"}]}',
        b'{"results": [{"perplexity": true, "ctx": 64}, {"perplexity": 1, "ctx": 64, "base": 5}]}',
        b"[]",
    ],
)
def test_a_damaged_eval_sidecar_hides_its_results_never_the_model(tmp_path, content):
    from llamadesk.quantize.evaluation import eval_file, saved_evaluations, summary_line

    model = tmp_path / "m.gguf"
    eval_file(model).write_bytes(content)
    expected = [{"perplexity": 12.5, "ctx": 64}] if b"kept" in content else []
    assert saved_evaluations(model) == expected
    for result in saved_evaluations(model):
        assert summary_line(result) == "PPL 12.50 @64"


def test_every_field_of_an_evaluation_is_checked_when_read_back():
    from llamadesk.quantize.evaluation import _FIELD_TYPES, EvalResult

    assert set(_FIELD_TYPES) == {f.name for f in dataclasses.fields(EvalResult)}


def test_a_huge_eval_sidecar_is_not_read(tmp_path):
    from llamadesk.quantize.evaluation import eval_file, saved_evaluations

    model = tmp_path / "m.gguf"
    with eval_file(model).open("wb") as f:
        f.truncate(64 * 1024**2)  # sparse: 64 MiB of zeros
    assert saved_evaluations(model) == []
