"""Validating GGUF files before llama.cpp sees them, and summarising what they hold.

llama.cpp trusts the header and tensor table of a GGUF and can crash on a malformed one, so every
file is read here first (gguf_header checks every length and offset against the file size). The
summary (architecture, size, quantization, context length) feeds the model list, `llamadesk
info` and the memory estimates.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import LlamaFileType

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_header import GGUF_MAGIC, GGUFFormatError, GGUFHeader, StringArray, read_gguf_header
from llamadesk.app.core.gguf_naming import split_parts
from llamadesk.app.core.gguf_requirements import (
    ADVICE,
    ARCH_KEYS,
    INTEGER_TYPES,
    KeyRule,
    ModelRequirementError,
    check_loadable,
    check_split,
    describe_range,
)
from llamadesk.app.core.printable import printable

# Arrays longer than this are summarised instead of kept (the vocabulary has 50k+ entries).
SHOWN_ARRAY_ITEMS = 8
# general.name as shown: real names are a few words; a file may hold megabytes there.
NAME_CHARS = 120


def one_line(text: str, limit: int | None = None) -> str:
    """Text from a file, or a file's name, fit for one line of a terminal: control characters as
    ^X stand-ins (an ESC in general.name retitled the terminal and cleared the screen; a newline in
    a file name forged a second message line), cut at `limit` characters."""
    cut = text if limit is None or len(text) <= limit else text[:limit] + "..."
    return printable(cut).replace("\n", "^J").replace("\t", "^I")


def _shown(path: Path) -> str:
    return one_line(str(path))


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
    # Tokens in the vocabulary (the width of the logits llama.cpp allocates); 0 when not listed.
    n_vocab: int = 0

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
        return (
            [plain_value(v) for v in value.tolist()] if len(value) <= SHOWN_ARRAY_ITEMS else f"[{len(value)} numbers]"
        )
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity; `info --json` must stay valid JSON
    return value


def open_header(path: Path | str) -> GGUFHeader:
    """Read a GGUF header, turning every way it can be wrong into one clear BadInputError."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{_shown(path)}: no such file; give a path to a .gguf file or a model name")
    if path.is_dir():
        raise BadInputError(f"{_shown(path)} is a folder, not a GGUF file")
    if not path.is_file():  # opening a FIFO waits for a writer forever; a device never ends
        raise BadInputError(f"{_shown(path)} is not a regular file (a FIFO, socket or device), not a GGUF file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise BadInputError(f"{_shown(path)}: cannot read it ({err.strerror})") from err
    if magic != GGUF_MAGIC:
        raise BadInputError(
            f"{_shown(path)} is not a GGUF file (it does not start with 'GGUF'); "
            "convert checkpoints with `llamadesk convert`"
        )
    try:
        return read_gguf_header(path)
    except GGUFFormatError as err:
        raise BadInputError(f"{_shown(path)} is a damaged GGUF file: {err}; download or convert it again") from err


def _model_problem(path: Path, err: ModelRequirementError) -> BadInputError:
    return BadInputError(f"{_shown(path)}: {err}; {ADVICE}")


def _count(header: GGUFHeader, key: str, rule: KeyRule, default: int, layer0: bool = False) -> int:
    """An integer hyperparameter, type and range checked: when the file gives one per layer, the
    largest (what memory is sized by), or layer 0's with `layer0` (what llama.cpp derives sizes from)."""
    if key not in header.metadata:
        return default
    value, vtype = header.metadata[key], header.value_types[key]
    if vtype.kind in INTEGER_TYPES:
        values = [int(value)]
    elif vtype.item in INTEGER_TYPES and isinstance(value, np.ndarray) and rule.per_layer:
        values = [int(v) for v in value] or [default]
    else:
        raise ModelRequirementError(f"{key} is {vtype.with_article}, not a whole number")
    for v in values:
        if not (rule.low or 0) <= v <= (rule.high or v):
            raise ModelRequirementError(f"{key} is {v}; it must be {describe_range(rule)}")
    return values[0] if layer0 else max(values)


def _dominant_quantization(header: GGUFHeader) -> str:
    """The file type when the file says it, else the most common type among 2-D weights."""
    file_type = header.metadata.get("general.file_type")
    if header.value_types.get("general.file_type") is not None and header.value_types["general.file_type"].item is None:
        try:
            return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
        except (ValueError, TypeError):
            pass
    counts: Counter[str] = Counter()
    for tensor in header.tensors:
        if len(tensor.shape) >= 2:
            counts[tensor.ggml_type.name] += tensor.n_elements
    return counts.most_common(1)[0][0] if counts else "unknown"


def summarize(path: Path, header: GGUFHeader) -> GGUFSummary:
    """The summary of an already-read header; every value it uses is type and range checked.

    A split model is summarized whole: its parameters, tensor bytes and file size count every part
    (model_parts). Part 1 alone sized a 61 GiB model as 8 GiB, so chat loaded it on a 22 GiB machine
    that refused the same model in one file, and bench showed half its size."""
    try:
        summary = _summarize(path, header)
    except ModelRequirementError as err:
        raise _model_problem(path, err) from err
    parts = model_parts(path, summary.metadata)
    if len(parts) == 1:
        return summary
    others = [t for part in parts[1:] for t in open_header(part).tensors]
    return dataclasses.replace(
        summary,
        parameters=summary.parameters + sum(t.n_elements for t in others),
        tensor_bytes=summary.tensor_bytes + sum(t.n_bytes for t in others),
        repeating_tensor_bytes=summary.repeating_tensor_bytes
        + sum(t.n_bytes for t in others if t.name.startswith("blk.")),
        file_size=sum(part.stat().st_size for part in parts),
    )


def _summarize(path: Path, header: GGUFHeader) -> GGUFSummary:
    meta = header.metadata
    if not header.tensors:
        raise BadInputError(f"{_shown(path)} holds no tensors; it is not a model")
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        vtype = header.value_types.get("general.architecture")
        what = f"is {vtype.with_article}, not a string" if vtype else "is missing"
        raise BadInputError(f"{_shown(path)}: general.architecture {what}; it is not a model llamadesk can run")

    def arch_int(suffix: str, default: int = 0, layer0: bool = False) -> int:
        return _count(header, f"{arch}.{suffix}", ARCH_KEYS[suffix], default, layer0)

    n_embd = arch_int("embedding_length")
    n_head = arch_int("attention.head_count", 1) or 1
    n_head_kv = arch_int("attention.head_count_kv", n_head) or n_head
    # Without key_length, llama.cpp takes the head size from layer 0's head count (n_embd / n_head()).
    n_head_layer0 = arch_int("attention.head_count", 1, layer0=True) or 1
    head_dim_k = arch_int("attention.key_length", n_embd // n_head_layer0)
    name, template = meta.get("general.name"), meta.get("tokenizer.chat_template")
    return GGUFSummary(
        path=path,
        file_size=header.file_size,
        architecture=arch,
        name=one_line(name if isinstance(name, str) and name else path.stem, NAME_CHARS),
        parameters=sum(t.n_elements for t in header.tensors),
        quantization=_dominant_quantization(header),
        context_length=arch_int("context_length"),
        n_layers=arch_int("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=arch_int("attention.value_length", head_dim_k),
        has_chat_template=isinstance(template, str),
        tensor_bytes=sum(t.n_bytes for t in header.tensors),
        metadata={k: plain_value(v) for k, v in meta.items()},
        repeating_tensor_bytes=sum(t.n_bytes for t in header.tensors if t.name.startswith("blk.")),
        n_vocab=_vocabulary_size(meta.get("tokenizer.ggml.tokens")),
    )


def _vocabulary_size(tokens: Any) -> int:
    """The vocabulary's length, whether the header kept it as a lazy StringArray or a list."""
    if isinstance(tokens, StringArray):
        return tokens.count
    return len(tokens) if isinstance(tokens, list) else 0


def model_parts(path: Path, metadata: dict[str, Any]) -> list[Path]:
    """The files of the model whose first file is `path` and whose metadata is `metadata`: the
    split parts when the file itself says it is split (split.count) and they are named as such,
    else the file alone. A name like `notes-00001-of-00002.gguf` does not make a split model: a
    single file so named listed a stranger's `notes-00002-of-00002.gguf` as its second part, and
    `models rm` deleted it."""
    count = metadata.get("split.count", 1)
    if not isinstance(count, int) or count < 2:
        return [path]
    parts = split_parts(path)
    return parts if len(parts) == count else [path]


# What a GGUF that is not a model says it is (general.type): said as such, not as the model keys
# it lacks ("imatrix.context_length is missing; the file is damaged").
NOT_A_MODEL = {
    "imatrix": "an importance matrix, not a model; give it to quantize with --imatrix",
    "adapter": "a LoRA adapter, not a model; give the model it was trained on (chat and serve apply it with --lora)",
}


def refuse_what_is_not_a_model(path: Path, header: GGUFHeader) -> None:
    kind = header.metadata.get("general.type")
    if kind in NOT_A_MODEL:
        raise BadInputError(f"{_shown(path)} is {NOT_A_MODEL[kind]}")


def check_model(path: Path, header: GGUFHeader, architecture: str) -> None:
    """Refuse, with one line naming the key, a model llama.cpp would abort on or cannot load.

    A split model's other parts are read too (their tensors are part of the model).
    """
    refuse_what_is_not_a_model(path, header)
    try:
        count = check_split(header)
        parts = split_parts(path) if count > 1 else [path]
        if len(parts) != count:
            raise ModelRequirementError(
                f"split.count says {count} parts but the file is not named as the first of them "
                f"(NAME-00001-of-{count:05d}.gguf)"
            )
        check_loadable(header, architecture, [open_header(part) for part in parts[1:]])
    except ModelRequirementError as err:
        raise _model_problem(path, err) from err


def inspect_gguf(path: Path | str, loadable: bool = True) -> GGUFSummary:
    """Validate a GGUF file and summarise it; raises BadInputError with a clear line otherwise.

    `loadable`: also check everything llama.cpp needs to load it as a model (done before every
    load); without it, only what the summary needs (listing a folder of files).
    """
    path = Path(path)
    header = open_header(path)
    if loadable:
        refuse_what_is_not_a_model(path, header)
    summary = summarize(path, header)
    if loadable:
        check_model(path, header, summary.architecture)
    return summary
