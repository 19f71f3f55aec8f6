"""A GGUF LoRA adapter checked against the model it is about to be applied to.

llama.cpp checks an adapter only as it loads it, after the model, and some mismatches it does not
catch at all (an adapter for another fine-tune of the same shapes, another vocabulary). Here the
adapter's architecture, the base widths it records, and every lora_a/lora_b shape are compared
with the model's header first, so `chat --lora` refuses a wrong adapter in one line. Its weights'
values are read too (an adapter is small beside its model): a NaN or infinity in them, which
llama.cpp applies without a word, turns every reply into nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
from gguf.quants import dequantize

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import open_header
from llamadesk.app.core.gguf_header import GGUFHeader
from llamadesk.app.core.gguf_requirements import NOT_WEIGHT_TYPES
from llamadesk.app.core.value_ranges import shown

HALVES = (".lora_a", ".lora_b")
# peft's lora_alpha is a small number (8 to a few hundred); one past this makes alpha / rank
# overflow the weights into infinities, so it is a damaged file, not a trained adapter.
MAX_ALPHA = 1e6
# How much of a tensor is read at once when its values are checked.
_CHUNK_BYTES = 1 << 22
# Base widths a llamadesk adapter records (under the architecture's prefix), and what they mean.
RECORDED_WIDTHS = {
    "embedding_length": "embedding width",
    "block_count": "layer count",
    "feed_forward_length": "feed-forward width",
    "vocab_size": "vocabulary size",
}


@dataclass(frozen=True)
class AdapterSummary:
    """What the library and the status line show about an adapter."""

    path: Path
    name: str
    architecture: str
    base_name: str | None
    alpha: float
    n_weights: int  # adapted weights (lora_a/lora_b pairs)
    widths: dict[str, int]


def is_adapter(header: GGUFHeader) -> bool:
    return header.metadata.get("general.type") == "adapter"


def summarize_adapter(path: Path, header: GGUFHeader | None = None) -> AdapterSummary:
    """Read and check an adapter's own header: type, architecture, alpha, complete A/B pairs of matrices."""
    header = header or open_header(path)
    meta = header.metadata
    if not is_adapter(header):
        raise BadInputError(f"{path} is a model, not an adapter; give a LoRA adapter (llamadesk convert ADAPTER_DIR)")
    if meta.get("adapter.type") != "lora":
        raise BadInputError(f"{path}: a {shown(meta.get('adapter.type'))} adapter; llamadesk applies LoRA adapters")
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch.isprintable():
        raise BadInputError(f"{path}: the adapter names no architecture; convert it again")
    alpha = meta.get("adapter.lora.alpha", 0.0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha < 0:
        raise BadInputError(f"{path}: adapter.lora.alpha is {shown(alpha)}, not a number; convert it again")
    if alpha > MAX_ALPHA:
        raise BadInputError(
            f"{path}: adapter.lora.alpha is {alpha:g}, far above any trained adapter's (at most {MAX_ALPHA:g}); "
            "the adapter is damaged: convert it again"
        )
    alpha_type = header.value_types.get("adapter.lora.alpha")
    if alpha_type is not None and alpha_type.kind != GGUFValueType.FLOAT32:
        # llama.cpp reads it as a float32 only, and aborts on any other type (GGML_ASSERT)
        raise BadInputError(f"{path}: adapter.lora.alpha is {alpha_type.with_article}, not a float32; convert it again")
    pairs: dict[str, set[str]] = {}
    for tensor in header.tensors:
        half = next((h for h in HALVES if tensor.name.endswith(h)), None)
        if half is None:
            continue  # llama.cpp skips norms an adapter may carry; anything else it refuses itself
        if len(tensor.shape) != 2:
            raise BadInputError(f"{path}: {tensor.name} is not a matrix; the adapter is damaged")
        if tensor.ggml_type in NOT_WEIGHT_TYPES:  # llama.cpp's product on them crashes (a segfault)
            raise BadInputError(
                f"{path}: {tensor.name} is {tensor.ggml_type.name}, which is not a weight type; convert it again"
            )
        if 0 in tensor.shape:  # a rank of 0 aborts llama.cpp (GGML_ASSERT)
            raise BadInputError(f"{path}: {tensor.name} has no rows or columns; the adapter is damaged")
        pairs.setdefault(tensor.name[: -len(half)], set()).add(half)
    for weight, halves in pairs.items():
        if len(halves) != 2:
            raise BadInputError(f"{path}: {weight} has only {halves.pop()[1:]}; the adapter is incomplete")
    if not pairs:
        raise BadInputError(f"{path}: the adapter holds no lora_a/lora_b weights")
    widths = {}
    for key in RECORDED_WIDTHS:
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, int) and not isinstance(value, bool):
            widths[key] = value
    name, base = meta.get("general.name"), meta.get("general.base_model.0.name")
    return AdapterSummary(
        path=path,
        name=name if isinstance(name, str) and name.isprintable() else path.stem,
        architecture=arch,
        base_name=base if isinstance(base, str) and base.isprintable() else None,
        alpha=float(alpha),
        n_weights=len(pairs),
        widths=widths,
    )


def check_adapter_fits(adapter_path: Path, model_path: Path, model: GGUFHeader) -> AdapterSummary:
    """The adapter's summary, once it is known to fit `model`; BadInputError naming the mismatch otherwise."""
    header = open_header(adapter_path)
    adapter = summarize_adapter(adapter_path, header)
    model_arch = model.metadata.get("general.architecture")
    made_for = f" (it was made for {adapter.base_name})" if adapter.base_name else ""
    if adapter.architecture != model_arch:
        raise BadInputError(
            f"{adapter_path}: an adapter for a {adapter.architecture} model, but {model_path.name} is "
            f"{shown(model_arch)}{made_for}; give the model it was trained on"
        )
    for key, what in RECORDED_WIDTHS.items():
        theirs = model.metadata.get(f"{model_arch}.{key}")
        if key == "vocab_size" and theirs is None:
            tokens = model.metadata.get("tokenizer.ggml.tokens")
            theirs = len(tokens) if tokens is not None else None
        if key in adapter.widths and isinstance(theirs, int) and theirs != adapter.widths[key]:
            raise BadInputError(
                f"{adapter_path}: made for a model with {what} {adapter.widths[key]}, but {model_path.name} has "
                f"{theirs}{made_for}; give the model it was trained on"
            )
    if int(model.metadata.get("split.count", 1) or 1) > 1:
        return adapter  # the model's tensors are spread over files; llama.cpp checks the shapes as it loads
    shapes = {t.name: t.shape for t in model.tensors}  # ggml order: (in, out)
    tensors = {t.name: t.shape for t in header.tensors}
    for name, a_shape in tensors.items():
        if not name.endswith(".lora_a"):
            continue
        weight = name[: -len(".lora_a")]
        b_shape = tensors[weight + ".lora_b"]
        if weight not in shapes:
            raise BadInputError(
                f"{adapter_path}: adapts {weight}, which {model_path.name} does not have{made_for}; "
                "give the model it was trained on"
            )
        if len(shapes[weight]) != 2:  # a norm or a bias: llama.cpp adapts matrices only
            raise BadInputError(
                f"{adapter_path}: adapts {weight}, which is not a matrix in {model_path.name}; the adapter is "
                "damaged or not for this model"
            )
        if a_shape[1] != b_shape[0]:
            raise BadInputError(
                f"{adapter_path}: {weight}'s lora_a has rank {a_shape[1]} but its lora_b {b_shape[0]}; "
                "the adapter is damaged"
            )
        n_in, n_out = shapes[weight][0], shapes[weight][1]
        if a_shape[0] != n_in or b_shape[1] != n_out:
            raise BadInputError(
                f"{adapter_path}: {weight} is {b_shape[1]}x{a_shape[0]} in the adapter but {n_out}x{n_in} in "
                f"{model_path.name}{made_for}; give the model it was trained on"
            )
    check_adapter_values(adapter_path, header)
    return adapter


def check_adapter_values(path: Path, header: GGUFHeader) -> None:
    """BadInputError naming the first lora_a/lora_b tensor that holds a NaN or an infinity."""
    for tensor in header.tensors:
        if not tensor.name.endswith(HALVES) or not isinstance(tensor.ggml_type, GGMLQuantizationType):
            continue
        qtype = tensor.ggml_type
        block_bytes = GGML_QUANT_SIZES[qtype][1]
        chunk = max(block_bytes, _CHUNK_BYTES // block_bytes * block_bytes)
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=tensor.data_offset, shape=(tensor.n_bytes,))
        for start in range(0, tensor.n_bytes, chunk):
            try:
                values = dequantize(np.asarray(data[start : start + chunk]), qtype)
            except NotImplementedError:
                break  # a type gguf cannot read back; llama.cpp's own checks are what is left
            if not np.isfinite(values).all():
                raise BadInputError(
                    f"{path}: {tensor.name} holds NaN or infinite values, which would make every reply empty; "
                    "the adapter is damaged: convert it again"
                )
