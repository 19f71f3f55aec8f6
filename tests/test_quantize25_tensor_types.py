"""One-dimensional tensors (norms, biases) must be F32: ggml's element-wise ops take nothing else.

An I32 norm passed every check (info said the model was fine) and then chat and eval died of
SIGABRT with a gdb backtrace ("binary_op: unsupported types: dst: f32, src0: f32, src1: i32").
"""

from __future__ import annotations

import numpy as np
import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import inspect_gguf
from tests.conftest import assert_one_clear_line, run_cli
from tests.gguf_samples import TinyModel

ONE_DIMENSIONAL = ("output_norm.weight", "blk.0.attn_norm.weight")
NOT_F32 = {"I32": np.int32, "I16": np.int16, "I8": np.int8, "I64": np.int64, "F64": np.float64, "F16": np.float16}


@pytest.mark.parametrize("type_name", NOT_F32)
@pytest.mark.parametrize("name", ONE_DIMENSIONAL)
def test_a_one_dimensional_tensor_that_is_not_f32_is_refused(tmp_path, name, type_name):
    model = TinyModel(tensors={name: np.zeros(8, dtype=NOT_F32[type_name])})
    with pytest.raises(BadInputError, match=f"tensor '{name}' is {type_name}; a one-dimensional tensor must be F32"):
        inspect_gguf(model.write(tmp_path / "tiny.gguf"))


def test_info_refuses_an_i32_norm_in_one_line(tmp_path):
    path = TinyModel(tensors={"output_norm.weight": np.zeros(8, dtype=np.int32)}).write(tmp_path / "tiny.gguf")
    assert_one_clear_line(run_cli("info", str(path)), 2, "output_norm.weight' is I32")
