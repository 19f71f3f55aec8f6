"""An importance matrix given where a model is expected is named as one, by every command.

info, eval, fit, bench and imatrix said "imatrix.context_length is missing; the file is damaged or
not a model", about a file llamadesk itself wrote; quantize already named it.
"""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFWriter

from tests.conftest import assert_one_clear_line, run_cli


@pytest.fixture
def imatrix_file(tmp_path):
    path = tmp_path / "m.imatrix"
    writer = GGUFWriter(path, arch="imatrix")  # as quantize/importance_matrix.py writes one
    writer.add_type("imatrix")
    writer.add_tensor("blk.0.attn_q.weight.in_sum2", np.ones((1, 8), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.counts", np.ones((1, 1), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (tmp_path / "t.txt").write_text("some text " * 50, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["info", "{m}"],
        ["eval", "{m}", "--text", "{t}", "--threads", "1"],
        ["fit", "{m}", "--memory", "1GB"],
        ["bench", "-m", "{m}", "--threads", "1", "-r", "1", "-p", "8", "-n", "1", "--batched", "0"],
        ["imatrix", "{m}", "--text", "{t}", "--threads", "1", "-o", "{m}.out"],
    ],
    ids=lambda command: command[0],
)
def test_an_importance_matrix_is_not_called_a_damaged_model(imatrix_file, command):
    args = [a.format(m=imatrix_file, t=imatrix_file.with_name("t.txt")) for a in command]
    assert_one_clear_line(run_cli(*args), 2, "is an importance matrix, not a model", "--imatrix")
