"""`llamadesk imatrix` against llama.cpp's llama-imatrix, and `quantize --imatrix` against llama-quantize."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from llamadesk.app.core.gguf_file import open_header
from llamadesk.app.core.imatrix_file import read_imatrix
from tests.conftest import run_cli
from tests.fixtures.smollm2_f16 import llama_tools_bin, smollm2_quantized, tensor_data

pytestmark = pytest.mark.slow

CTX = 128
TEXT_CHARS = 1300  # ~2 chunks of 128 tokens, the least llama-imatrix accepts


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    from pydoc_data.topics import topics  # Python Language Reference, PSF License (permissive)

    path = tmp_path_factory.mktemp("imatrix") / "python-reference.txt"
    path.write_text((topics["assignment"] + "\n\n" + topics["execmodel"])[:TEXT_CHARS], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ours(smollm2_f16_path, text):
    output = text.with_name("ours.imatrix")
    done = run_cli(
        "imatrix", str(smollm2_f16_path), "--text", str(text), "--ctx", str(CTX), "--threads", "2", "-o", str(output)
    )
    assert done.returncode == 0, done.stderr
    return output


def test_matches_llama_imatrix(smollm2_f16_path, text, ours):
    reference = text.with_name("reference.imatrix")
    subprocess.run(
        [
            str(llama_tools_bin() / "llama-imatrix"),
            "-m",
            str(smollm2_f16_path),
            "-f",
            str(text),
            "-c",
            str(CTX),
            "-t",
            "2",
            "-o",
            str(reference),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    mine, theirs = read_imatrix(ours), read_imatrix(reference)
    assert sorted(mine.values) == sorted(theirs.values)
    assert len(mine.values) == 30 * 7  # every matrix of the 30 layers
    assert mine.chunk_count == theirs.chunk_count == 2
    for name, values in theirs.values.items():
        np.testing.assert_allclose(mine.values[name], values, rtol=2e-3, atol=1e-6, err_msg=name)


def test_quantize_with_it_matches_llama_quantize(smollm2_f16_path, ours, tmp_path):
    # Q4_K_M weighs its rounding by the matrix too, and quantizes in seconds (IQ2_XS takes minutes
    # on 2 cores); the matrix reaches llama.cpp the same way for every type.
    output = tmp_path / "q4.gguf"
    done = run_cli(
        "quantize", str(smollm2_f16_path), "-t", "Q4_K_M", "--imatrix", str(ours), "--threads", "2", "-o", str(output)
    )
    assert done.returncode == 0, done.stderr
    reference = tmp_path / "q4-llama-quantize.gguf"
    subprocess.run(
        [
            str(llama_tools_bin() / "llama-quantize"),
            "--imatrix",
            str(ours),
            str(smollm2_f16_path),
            str(reference),
            "Q4_K_M",
            "2",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert tensor_data(output) == tensor_data(reference)
    assert tensor_data(output) != tensor_data(smollm2_quantized(smollm2_f16_path, "Q4_K_M"))  # it was used
    assert open_header(output).metadata["quantize.imatrix.entries_count"] == 30 * 7
