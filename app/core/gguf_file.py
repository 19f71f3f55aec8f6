"""Validating GGUF files before llama.cpp sees them, and summarising what they hold.

llama.cpp trusts the header and tensor table of a GGUF and can crash on a malformed one, so every
file is read here first (gguf_header checks every length and offset against the file size). The
summary (architecture, size, quantization, context length) feeds the model list, `llamadesk
info` and the memory estimates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import LlamaFileType

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_header import GGUF_MAGIC, GGUFFormatError, GGUFHeader, StringArray, read_gguf_header

# Arrays longer than this are summarised instead of kept (the vocabulary has 50k+ entries).
SHOWN_ARRAY_ITEMS = 8


@dataclass(frozen=True)
class GGUFSummary:
    """What llamadesk needs to know about a GGUF without loading it."""

    path: Path
    file_size: int
    architecture: str
    name: str
    parameters: int
    quantization: str
    context_length: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    has_chat_template: bool
    tensor_bytes: int
    metadata: dict[str, Any] = field(repr=False, compare=False)
    # Bytes of the per-layer ("blk.N.") tensors: what offloading one layer moves to a GPU.
    repeating_tensor_bytes: int = 0

    @property
    def layer_bytes(self) -> int:
        """Average bytes of one transformer layer's weights."""
        repeating = self.repeating_tensor_bytes or self.tensor_bytes
        return repeating // max(1, self.n_layers)

    @property
    def size_label(self) -> str:
        """Parameters as people say them: 135M, 7B."""
        return format_parameter_count(self.parameters)


def format_parameter_count(n: int) -> str:
    """135_000_000 -> '135M', 6_740_000_000 -> '6.7B'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)


def plain_value(value: Any) -> Any:
    """A metadata value as plain JSON types; long arrays become a short description."""
    if isinstance(value, StringArray):
        return value.decode() if len(value) <= SHOWN_ARRAY_ITEMS else f"[{len(value)} strings]"
    if isinstance(value, np.ndarray):
        return value.tolist() if len(value) <= SHOWN_ARRAY_ITEMS else f"[{len(value)} numbers]"
    if isinstance(value, list):
        return [plain_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_header(path: Path | str) -> GGUFHeader:
    """Read a GGUF header, turning every way it can be wrong into one clear BadInputError."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: no such file; give a path to a .gguf file or a model name")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not a GGUF file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise BadInputError(f"{path}: cannot read it ({err.strerror})") from err
    if magic != GGUF_MAGIC:
        raise BadInputError(
            f"{path} is not a GGUF file (it does not start with 'GGUF'); convert checkpoints with `llamadesk convert`"
        )
    try:
        return read_gguf_header(path)
    except GGUFFormatError as err:
        raise BadInputError(f"{path} is a damaged GGUF file: {err}; download or convert it again") from err


def _dominant_quantization(header: GGUFHeader) -> str:
    """The file type when the file says it, else the most common type among 2-D weights."""
    file_type = header.metadata.get("general.file_type")
    if file_type is not None:
        try:
            return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    counts: Counter[str] = Counter()
    for tensor in header.tensors:
        if len(tensor.shape) >= 2:
            counts[tensor.ggml_type.name] += tensor.n_elements
    return counts.most_common(1)[0][0] if counts else "unknown"


def summarize(path: Path, header: GGUFHeader) -> GGUFSummary:
    """The summary of an already-read header."""
    meta = header.metadata
    if not header.tensors:
        raise BadInputError(f"{path} holds no tensors; it is not a model")
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise BadInputError(f"{path} has no general.architecture; it is not a model llamadesk can run")

    def arch_int(key: str, default: int = 0) -> int:
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, np.ndarray):  # per-layer values (some archs): the largest bounds memory
            value = int(value.max()) if value.size else default
        return int(value) if value is not None else default

    n_embd = arch_int("embedding_length")
    n_head = arch_int("attention.head_count", 1) or 1
    n_head_kv = arch_int("attention.head_count_kv", n_head) or n_head
    head_dim_k = arch_int("attention.key_length", n_embd // n_head)
    return GGUFSummary(
        path=path,
        file_size=header.file_size,
        architecture=arch,
        name=str(meta.get("general.name") or path.stem),
        parameters=sum(t.n_elements for t in header.tensors),
        quantization=_dominant_quantization(header),
        context_length=arch_int("context_length"),
        n_layers=arch_int("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=arch_int("attention.value_length", head_dim_k),
        has_chat_template="tokenizer.chat_template" in meta,
        tensor_bytes=sum(t.n_bytes for t in header.tensors),
        metadata={k: plain_value(v) for k, v in meta.items()},
        repeating_tensor_bytes=sum(t.n_bytes for t in header.tensors if t.name.startswith("blk.")),
    )


def inspect_gguf(path: Path | str) -> GGUFSummary:
    """Validate a GGUF file and summarise it; raises BadInputError with a clear line otherwise."""
    path = Path(path)
    return summarize(path, open_header(path))


def tensor_types(path: Path | str) -> dict[str, int]:
    """How many tensors of each ggml type a GGUF holds (for `info`)."""
    counts: Counter[str] = Counter(t.ggml_type.name for t in open_header(path).tensors)
    return dict(counts)
