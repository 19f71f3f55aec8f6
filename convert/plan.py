"""The conversion plan: every output tensor's GGUF name, shape, type and how to produce it.

Built from the checkpoint's descriptions alone (no weights read), so `--dry-run` can print it and
the writer can lay out the GGUF header before streaming the data one tensor at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import gguf
import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.architectures import ROPE_SCALING_TYPES, SKIPPED_TENSOR_SUFFIXES
from llamadesk.convert.checkpoint import Checkpoint
from llamadesk.convert.model_config import ModelConfig
from llamadesk.convert.output_types import encode_blocks, stored_shape, tensor_type
from llamadesk.convert.rotary import llama3_rope_factors
from llamadesk.convert.tensor_source import TensorSource, to_float32
from llamadesk.convert.tensor_transforms import ARITHMETIC, TRANSFORMS

T = gguf.MODEL_TENSOR
Blocks = np.ndarray | Iterable[np.ndarray]


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the output file."""

    name: str  # GGUF name, e.g. blk.0.attn_q.weight
    shape: tuple[int, ...]  # numpy order (rows, columns)
    qtype: gguf.GGMLQuantizationType
    source: str  # checkpoint name, or "computed"
    produce: Callable[[], Blocks]  # the bytes to write, in stored_shape(shape, qtype), whole or in row blocks
    release: Callable[[], None]  # called once the tensor is written

    @property
    def stored(self) -> tuple[tuple[int, ...], np.dtype]:
        return stored_shape(self.shape, self.qtype)

    @property
    def nbytes(self) -> int:
        shape, dtype = self.stored
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def expected_shapes(config: ModelConfig, n_vocab: int, n_ff: int) -> dict[T, tuple[int, ...]]:
    """The shape each tensor kind's weight must have, from the hyperparameters (numpy order)."""
    q_rows, kv_rows = config.n_head * config.head_dim, config.n_head_kv * config.head_dim
    return {
        T.TOKEN_EMBD: (n_vocab, config.n_embd),
        T.OUTPUT: (n_vocab, config.n_embd),
        T.OUTPUT_NORM: (config.n_embd,),
        T.ATTN_NORM: (config.n_embd,),
        T.FFN_NORM: (config.n_embd,),
        T.FFN_PRE_NORM: (config.n_embd,),
        T.ATTN_POST_NORM: (config.n_embd,),
        T.FFN_POST_NORM: (config.n_embd,),
        T.ATTN_Q: (q_rows, config.n_embd),
        T.ATTN_K: (kv_rows, config.n_embd),
        T.ATTN_V: (kv_rows, config.n_embd),
        T.ATTN_OUT: (config.n_embd, q_rows),
        T.ATTN_Q_NORM: (config.head_dim,),
        T.ATTN_K_NORM: (config.head_dim,),
        T.FFN_GATE: (n_ff, config.n_embd),
        T.FFN_UP: (2 * n_ff if config.architecture.fused_gate_up else n_ff, config.n_embd),
        T.ATTN_QKV: (q_rows + 2 * kv_rows, config.n_embd),
        T.FFN_DOWN: (config.n_embd, n_ff),
    }


def expected_shape(shapes: dict[T, tuple[int, ...]], kind: T, is_bias: bool) -> tuple[int, ...]:
    """A weight's shape from the table; a bias has one value per output row of its weight."""
    return shapes[kind][:1] if is_bias else shapes[kind]


def tensor_kind(gguf_name: str, arch: gguf.MODEL_ARCH) -> T:
    """The MODEL_TENSOR kind of a GGUF tensor name ("blk.3.attn_q.bias" -> ATTN_Q) in `arch`."""
    base = gguf_name.removesuffix(".weight").removesuffix(".bias")
    parts = base.split(".")
    template = "blk.{bid}." + ".".join(parts[2:]) if parts[0] == "blk" else base
    for kind in gguf.MODEL_TENSORS[arch]:
        if gguf.TENSOR_NAMES[kind] == template:
            return kind
    raise KeyError(gguf_name)


def _producer(source: TensorSource, transform: str | None, config: ModelConfig, qtype) -> Callable[[], Blocks]:
    """The function that reads, transforms and encodes one tensor (block by block) when the writer reaches it."""
    if transform is None:
        return lambda: encode_blocks(source.read(), source.dtype, qtype, source.release)
    change = TRANSFORMS[transform]
    if transform in ARITHMETIC:  # widened first: arithmetic on raw bf16 bits would be wrong

        def widened_blocks() -> Blocks:
            return encode_blocks(change(to_float32(source.read(), source.dtype), config), "F32", qtype, source.release)

        return widened_blocks
    return lambda: encode_blocks(change(source.read(), config), source.dtype, qtype, source.release)


def _planned(
    source: TensorSource, name: str, kind: T, config: ModelConfig, bulk: gguf.GGMLQuantizationType
) -> PlannedTensor:
    qtype = tensor_type(bulk, source.shape)
    transform = None if name.endswith(".bias") else config.architecture.transforms.get(kind)
    return PlannedTensor(
        name, source.shape, qtype, source.name, _producer(source, transform, config, qtype), source.release
    )


def plan_tensors(checkpoint: Checkpoint, bulk: gguf.GGMLQuantizationType, n_vocab: int) -> list[PlannedTensor]:
    """Map, check and type every tensor; raises BadInputError on unknown, missing or misshapen ones."""
    config = checkpoint.config
    arch = config.architecture.gguf_arch
    name_map = gguf.get_tensor_name_map(arch, config.n_layer)
    allowed = {*config.architecture.required, T.OUTPUT}
    mapped: list[tuple[TensorSource, str, T]] = []
    seen: set[str] = set()
    for source in checkpoint.tensors:
        own_name = config.architecture.language_model_name(source.name)
        if own_name is None or own_name.removesuffix(".weight").endswith(SKIPPED_TENSOR_SUFFIXES):
            continue
        name = name_map.get_name(own_name, try_suffixes=(".weight", ".bias"))
        if name is not None and tensor_kind(name, arch) not in allowed:
            name = None  # a tensor llama.cpp knows for this architecture, but not one this family has
        if name is None:
            raise BadInputError(
                f"{checkpoint.folder}: tensor {source.name} is not part of a {config.architecture_name} model; "
                "the checkpoint has layers llamadesk does not convert"
            )
        kind = tensor_kind(name, arch)
        if name.endswith(".bias") and kind not in config.architecture.biases:
            raise BadInputError(
                f"{checkpoint.folder}: tensor {source.name} is a bias, which {config.architecture_name} models do "
                "not have (attention_bias/mlp_bias must be false); the checkpoint is not of this architecture"
            )
        if name in seen:
            raise BadInputError(
                f"{checkpoint.folder}: two tensors map to {name} (one is {source.name}); the checkpoint is inconsistent"
            )
        seen.add(name)
        mapped.append((source, name, kind))
    n_ff = config.n_ff or next((s.shape[0] for s, _, k in mapped if k == T.FFN_GATE and s.shape), 0)
    if n_ff < 1 and T.FFN_GATE in {k for _, _, k in mapped}:
        raise BadInputError(f"{checkpoint.folder}: the feed-forward weights have no rows; the checkpoint is damaged")
    shapes = expected_shapes(config, n_vocab, n_ff)
    for source, name, kind in mapped:
        expected = expected_shape(shapes, kind, name.endswith(".bias"))
        if source.shape != expected:
            raise BadInputError(
                f"{checkpoint.folder}: tensor {source.name} has shape {list(source.shape)} but the config says "
                f"{list(expected)}; the config does not match the weights"
            )
    present = {name for _, name, _ in mapped}
    for kind in config.architecture.required:
        blocks = range(config.n_layer) if "{bid}" in gguf.TENSOR_NAMES[kind] else [None]
        for bid in blocks:
            name = gguf.TENSOR_NAMES[kind].format(bid=bid) + ".weight"
            if name not in present:
                raise BadInputError(f"{checkpoint.folder}: the weights have no {name}; the checkpoint is incomplete")
    if "output.weight" not in present and not config.tie_embeddings:
        raise BadInputError(f"{checkpoint.folder}: the weights have no lm_head and the config does not tie embeddings")
    planned = [_planned(s, name, kind, config, bulk) for s, name, kind in mapped]
    if ROPE_SCALING_TYPES[config.rope_type] == "rope_freqs":
        planned.append(
            _computed(T.ROPE_FREQS, llama3_rope_factors(config.head_dim, config.rope_theta, config.rope_scaling))
        )
    if ROPE_SCALING_TYPES[config.rope_type] == "rope_factors":  # LongRoPE's, as the config lists them
        for kind, key in ((T.ROPE_FACTORS_LONG, "long_factor"), (T.ROPE_FACTORS_SHORT, "short_factor")):
            planned.append(_computed(kind, np.asarray(config.rope_scaling[key], dtype=np.float32)))
    return planned


def _computed(kind: T, values: np.ndarray) -> PlannedTensor:
    """A float32 tensor conversion makes from the hyperparameters (rope factors), not read from the checkpoint."""
    return PlannedTensor(
        gguf.TENSOR_NAMES[kind] + ".weight",
        values.shape,
        gguf.GGMLQuantizationType.F32,
        "computed",
        lambda: values,
        lambda fraction=1.0: None,
    )
