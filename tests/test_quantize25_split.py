"""A split model (NAME-00001-of-0000N.gguf) is the whole set to quantize, fit and bench.

quantize named its one-file output "...-00001-of-00003-Q8_0.gguf"; fit's BITS/W and -t auto's
"smaller than the present file", and bench's weights per token, counted the first part alone.
"""

from __future__ import annotations

import json

import pytest

from llamadesk.app.commands.bench import whole_model_header
from llamadesk.app.core.gguf_file import inspect_gguf, open_header
from llamadesk.app.core.memory_bandwidth import weight_bytes_per_token
from llamadesk.quantize.memory_fit import whole_model_summary
from llamadesk.quantize.quant_types import find_quant_type
from llamadesk.quantize.quantize_model import default_output
from tests.conftest import run_cli
from tests.gguf_samples import TinyModel, split_gguf


@pytest.mark.parametrize(
    "name, expected",
    [("m-f16-00001-of-00003.gguf", "m-Q8_0.gguf"), ("m-00001-of-00002.gguf", "m-Q8_0.gguf")],
)
def test_the_default_output_of_a_split_model_is_one_file_name(tmp_path, name, expected):
    assert default_output(tmp_path / name, find_quant_type("Q8_0")) == tmp_path / expected


@pytest.fixture
def whole_and_split(tmp_path):
    whole = TinyModel().write(tmp_path / "whole.gguf")
    TinyModel().write(tmp_path / "tiny.gguf", split_max_tensors=3)
    first = tmp_path / "tiny-00001-of-00003.gguf"
    assert first.exists() and len(open_header(first).tensors) < len(open_header(whole).tensors)  # part 1 holds some
    return whole, first


def test_fit_counts_every_part_of_a_split_model(whole_and_split):
    whole, first = whole_and_split
    summary, expected = whole_model_summary(first), inspect_gguf(whole)
    assert (summary.parameters, summary.tensor_bytes) == (expected.parameters, expected.tensor_bytes)


def test_bench_reads_the_weights_of_every_part(whole_and_split):
    whole, first = whole_and_split
    assert weight_bytes_per_token(whole_model_header(first)) == weight_bytes_per_token(open_header(whole))


@pytest.mark.slow
def test_quantizing_a_split_model_names_one_file_and_counts_every_part(smollm2_path, tmp_path):
    parts = split_gguf(smollm2_path, tmp_path / "smol.gguf", max_tensors=100)
    assert len(parts) == 3
    done = run_cli("quantize", str(parts[0]), "-t", "Q4_0", "--allow-requantize", "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["output"] == str(tmp_path / "smol-Q4_0.gguf")
    assert report["input_bytes"] == sum(part.stat().st_size for part in parts)


@pytest.mark.slow
def test_info_describes_a_split_model_whole(smollm2_path, tmp_path):
    parts = split_gguf(smollm2_path, tmp_path / "smol.gguf", max_tensors=100)
    whole, first = (
        json.loads(run_cli("info", str(smollm2_path), "--json").stdout),
        run_cli("info", str(parts[0]), "--json"),
    )
    assert first.returncode == 0, first.stderr
    shown = json.loads(first.stdout)
    assert (shown["parameters"], shown["tensor_types"]) == (whole["parameters"], whole["tensor_types"])
    assert shown["file_size"] == sum(part.stat().st_size for part in parts)
