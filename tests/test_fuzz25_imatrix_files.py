"""Damaged importance-matrix files (`quantize --imatrix FILE`): one line each, in bounded time and memory.

Each of these ended in an internal error (exit 1) or, for a sparse file claiming 500 million values,
in 7.85 GB of memory: gguf's GGUFReader trusted the file, and the legacy reader unpacked a length
before checking it.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_header import read_gguf_header
from llamadesk.app.core.imatrix_file import entry_tensors, read_imatrix
from tests.conftest import run_cli

WEIGHT = "blk.0.attn_q.weight"


def gguf_matrix(path: Path, metadata=(), sums: np.ndarray | None = None) -> Path:
    """A GGUF importance matrix as llama-imatrix writes one: NAME.in_sum2 and NAME.counts."""
    sums = np.ones((1, 576), dtype=np.float32) if sums is None else sums
    writer = gguf.GGUFWriter(str(path), "imatrix")
    for add in metadata:
        add(writer)
    writer.add_tensor(WEIGHT + ".in_sum2", sums)
    writer.add_tensor(WEIGHT + ".counts", np.full((1, 1), 2, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def legacy(path: Path, entries: list[tuple[int, bytes, int, int, bytes]]) -> Path:
    """A legacy .dat matrix: a count, then per entry name length, name, calls, values, data."""
    data = struct.pack("<i", len(entries))
    for name_len, name, ncall, nval, values in entries:
        data += struct.pack("<i", name_len) + name + struct.pack("<ii", ncall, nval) + values
    path.write_bytes(data)
    return path


def cut(path: Path, n_bytes: int) -> Path:
    path.write_bytes(path.read_bytes()[:-n_bytes])
    return path


def patched(path: Path, at: int, value: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[at : at + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def huge_sparse_matrix(path: Path, n_values: int) -> Path:
    """A GGUF matrix whose in_sum2 claims `n_values` floats, all of them a hole in a sparse file."""
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, 0)
    head += gguf_text(WEIGHT + ".in_sum2") + struct.pack("<IQQIQ", 2, n_values, 1, 0, 0)
    counts_at = -(-4 * n_values // 32) * 32
    head += gguf_text(WEIGHT + ".counts") + struct.pack("<IQQIQ", 2, 1, 1, 0, counts_at)
    head += bytes(-len(head) % 32)
    path.write_bytes(head)
    with path.open("r+b") as handle:
        handle.truncate(len(head) + counts_at + 32)
    return path


def gguf_text(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


CASES = {
    "gguf cut short": (
        lambda p: cut(gguf_matrix(p), 100),
        "is not a valid importance matrix file: tensor 'blk.0.attn_q.weight.in_sum2' ends at byte",
    ),
    "gguf first key 2^62 bytes": (
        lambda p: patched(gguf_matrix(p), 24, struct.pack("<Q", 2**62)),
        "claims a string of 4611686018427387904 bytes",
    ),
    "gguf 2^40 tensors": (
        lambda p: patched(gguf_matrix(p), 8, struct.pack("<Q", 2**40)),
        "its header claims 1,099,511,627,776 tensors",
    ),
    "gguf chunk count as text": (
        lambda p: gguf_matrix(p, [lambda w: w.add_string("imatrix.chunk_count", "many")]),
        "imatrix.chunk_count is a string, not a whole number",
    ),
    "gguf datasets as numbers": (
        lambda p: gguf_matrix(p, [lambda w: w.add_array("imatrix.datasets", [1, 2])]),
        "imatrix.datasets is an array of",
    ),
    "gguf f16 values": (
        lambda p: gguf_matrix(p, sums=np.ones((1, 576), dtype=np.float16)),
        "tensor 'blk.0.attn_q.weight.in_sum2' is F16, not F32",
    ),
    "gguf 500 million values in a sparse file": (
        lambda p: huge_sparse_matrix(p, 500_000_000),
        "entry 'blk.0.attn_q.weight.in_sum2' claims 500,000,000 values",
    ),
    "legacy negative name length": (
        lambda p: legacy(p, [(-5, b"", 1, 1, bytes(4))]),
        "entry #0's name has a length of -5",
    ),
    "legacy values past the end": (
        lambda p: legacy(p, [(len(WEIGHT), WEIGHT.encode(), 1, 1_000_000, bytes(4))]),
        "is not an importance matrix file (it ends too early)",
    ),
    "legacy 2^31-1 values": (
        lambda p: legacy(p, [(3, b"abc", 1, 2**31 - 1, bytes(4))]),
        "entry 'abc' claims 2,147,483,647 values",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_matrix_is_one_line_naming_the_file(tmp_path, case):
    make, says = CASES[case]
    path = make(tmp_path / "bad.imatrix")
    started = time.monotonic()
    with pytest.raises(BadInputError) as caught:
        read_imatrix(path)
    line = str(caught.value)
    assert line.startswith(str(path)) and says in line and "\n" not in line, line
    assert time.monotonic() - started < 1


def test_a_dataset_name_that_is_not_utf8_is_read_with_stand_ins(tmp_path):
    path = gguf_matrix(tmp_path / "m.imatrix", [lambda w: w.add_array("imatrix.datasets", [b"\xff\xfe"])])
    matrix = read_imatrix(path)
    assert matrix.datasets == ["\ufffd\ufffd"]
    assert np.allclose(matrix.values[WEIGHT], 0.5)  # sums of 1 over 2 calls


def test_quantize_refuses_a_damaged_matrix_before_writing_anything(smollm2_path, tmp_path):
    bad = legacy(tmp_path / "bad.dat", [(-5, b"", 1, 1, bytes(4))])
    out = tmp_path / "out.gguf"
    done = run_cli(
        "quantize", str(smollm2_path), "-t", "Q4_K_M", "--allow-requantize", "--imatrix", str(bad), "-o", str(out)
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"llamadesk: {bad} is not a valid importance matrix file: entry #0's name has a length of -5; "
        "compute one with `llamadesk imatrix`\n"
    )
    assert not list(tmp_path.glob("out*"))


def moe_entries(layers: int, dense: int, width: int, experts: int, expert_ff: int, dense_ff: int) -> dict[str, tuple]:
    """The entries llama-imatrix writes for a DeepSeek-style MoE model: (columns, experts) each."""
    attention = {"attn_q_a": width, "attn_q_b": 1536, "attn_kv_a_mqa": width, "attn_kv_b": 512, "attn_output": 16384}
    entries = {"output.weight": (width, 1)}
    for layer in range(layers):
        blk = f"blk.{layer}."
        entries.update({f"{blk}{name}.weight": (columns, 1) for name, columns in attention.items()})
        if layer < dense:
            ffn = {"ffn_gate": (width, 1), "ffn_up": (width, 1), "ffn_down": (dense_ff, 1)}
        else:
            ffn = {
                "ffn_gate_inp": (width, 1),
                "ffn_gate_exps": (width, experts),
                "ffn_up_exps": (width, experts),
                "ffn_down_exps": (expert_ff, experts),
                "ffn_gate_shexp": (width, 1),
                "ffn_up_shexp": (width, 1),
                "ffn_down_shexp": (expert_ff, 1),
            }
        entries.update({f"{blk}{name}.weight": shape for name, shape in ffn.items()})
    return entries


def sparse_matrix(path: Path, entries: dict[str, tuple]) -> Path:
    """A GGUF importance matrix with these entries' shapes, its values a hole in a sparse file."""
    writer = gguf.GGUFWriter(str(path), "imatrix")
    writer.add_type("imatrix")
    data_bytes = 0
    for name, (columns, experts) in sorted(entries.items()):
        for suffix, shape in ((".in_sum2", (experts, columns)), (".counts", (experts, 1))):
            n_bytes = 4 * shape[0] * shape[1]
            writer.add_tensor_info(name + suffix, shape, np.dtype(np.float32), n_bytes)
            data_bytes += -(-n_bytes // 32) * 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with path.open("r+b") as handle:
        handle.truncate(-(-path.stat().st_size // 32) * 32 + data_bytes)
    return path


# The published matrices of the largest open models: DeepSeek V3/R1 (247 million values, 987 MB)
# and Kimi K2 (384 experts, about 380 million values).
LARGEST_MODELS = {
    "DeepSeek V3": moe_entries(layers=61, dense=3, width=7168, experts=256, expert_ff=2048, dense_ff=18432),
    "Kimi K2": moe_entries(layers=61, dense=1, width=7168, experts=384, expert_ff=2048, dense_ff=18432),
}


@pytest.mark.parametrize("model", LARGEST_MODELS)
def test_the_largest_models_matrices_are_not_called_damaged(tmp_path, model):
    # The header alone is checked here (reading a gigabyte of values is what quantize then does).
    path = sparse_matrix(tmp_path / "big.imatrix", LARGEST_MODELS[model])
    tensors = entry_tensors(path, read_gguf_header(path))
    assert len(tensors) == 2 * len(LARGEST_MODELS[model])
    assert sum(t.n_elements for t in tensors.values()) > 200_000_000  # past the old limit of 134 million
