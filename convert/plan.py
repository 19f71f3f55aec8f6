"""The conversion plan: every output tensor's GGUF name, shape, type and how to produce it.

Built from the checkpoint's descriptions alone (no weights read), so `--dry-run` can print it and
the writer can lay out the GGUF header before streaming the data one tensor at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gguf
import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.architectures import ROPE_SCALING_TYPES, SKIPPED_TENSOR_SUFFIXES
from llamadesk.convert.checkpoint import Checkpoint
from llamadesk.convert.model_config import ModelConfig
from llamadesk.convert.output_types import encode, stored_shape, tensor_type
from llamadesk.convert.rotary import llama3_rope_factors, unpermute_rotary_halves
from llamadesk.convert.tensor_source import TensorSource

T = gguf.MODEL_TENSOR
# Every LLaMA has these (per block where the name has {bid}); `output` may be tied to token_embd.
REQUIRED_TENSORS = (
    T.TOKEN_EMBD,
    T.OUTPUT_NORM,
    T.ATTN_NORM,
    T.ATTN_Q,
    T.ATTN_K,
    T.ATTN_V,
    T.ATTN_OUT,
    T.FFN_NORM,
    T.FFN_GATE,
    T.FFN_UP,
    T.FFN_DOWN,
)


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the output file."""

    name: str  # GGUF name, e.g. blk.0.attn_q.weight
    shape: tuple[int, ...]  # numpy order (rows, columns)
    qtype: gguf.GGMLQuantizationType
    source: str  # checkpoint name, or "computed"
    produce: Callable[[], np.ndarray]  # the bytes to write, in stored_shape(shape, qtype)
    release: Callable[[], None]  # called once the tensor is written

    @property
    def stored(self) -> tuple[tuple[int, ...], np.dtype]:
        return stored_shape(self.shape, self.qtype)

    @property
    def nbytes(self) -> int:
        shape, dtype = self.stored
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def expected_shapes(config: ModelConfig, n_vocab: int, n_ff: int) -> dict[T, tuple[int, ...]]:
    """The shape each LLaMA tensor kind must have, from the hyperparameters (numpy order)."""
    q_rows, kv_rows = config.n_head * config.head_dim, config.n_head_kv * config.head_dim
    return {
        T.TOKEN_EMBD: (n_vocab, config.n_embd),
        T.OUTPUT: (n_vocab, config.n_embd),
        T.OUTPUT_NORM: (config.n_embd,),
        T.ATTN_NORM: (config.n_embd,),
        T.FFN_NORM: (config.n_embd,),
        T.ATTN_Q: (q_rows, config.n_embd),
        T.ATTN_K: (kv_rows, config.n_embd),
        T.ATTN_V: (kv_rows, config.n_embd),
        T.ATTN_OUT: (config.n_embd, q_rows),
        T.FFN_GATE: (n_ff, config.n_embd),
        T.FFN_UP: (n_ff, config.n_embd),
        T.FFN_DOWN: (config.n_embd, n_ff),
    }


def _kind_of(gguf_name: str, arch: gguf.MODEL_ARCH) -> T:
    base = gguf_name.removesuffix(".weight")
    parts = base.split(".")
    template = "blk.{bid}." + ".".join(parts[2:]) if parts[0] == "blk" else base
    for kind in gguf.MODEL_TENSORS[arch]:
        if gguf.TENSOR_NAMES[kind] == template:
            return kind
    raise KeyError(gguf_name)


def _transform(kind: T, config: ModelConfig) -> Callable[[np.ndarray], np.ndarray]:
    if config.architecture.permute_qk and kind == T.ATTN_Q:
        return lambda w: unpermute_rotary_halves(w, config.n_head)
    if config.architecture.permute_qk and kind == T.ATTN_K:
        return lambda w: unpermute_rotary_halves(w, config.n_head_kv)
    return lambda w: w


def _planned(
    source: TensorSource, name: str, kind: T, config: ModelConfig, bulk: gguf.GGMLQuantizationType
) -> PlannedTensor:
    qtype = tensor_type(bulk, source.shape)
    transform = _transform(kind, config)
    return PlannedTensor(
        name,
        source.shape,
        qtype,
        source.name,
        lambda: encode(transform(source.read()), source.dtype, qtype, source.release),
        source.release,
    )


def plan_tensors(checkpoint: Checkpoint, bulk: gguf.GGMLQuantizationType, n_vocab: int) -> list[PlannedTensor]:
    """Map, check and type every tensor; raises BadInputError on unknown, missing or misshapen ones."""
    config = checkpoint.config
    arch = config.architecture.gguf_arch
    name_map = gguf.get_tensor_name_map(arch, config.n_layer)
    mapped: list[tuple[TensorSource, str, T]] = []
    seen: set[str] = set()
    for source in checkpoint.tensors:
        if source.name.removesuffix(".weight").endswith(SKIPPED_TENSOR_SUFFIXES):
            continue
        name = name_map.get_name(source.name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise BadInputError(
                f"{checkpoint.folder}: tensor {source.name} is not part of a {config.architecture_name} model; "
                "the checkpoint has layers llamadesk does not convert"
            )
        if name.endswith(".bias"):
            raise BadInputError(
                f"{checkpoint.folder}: tensor {source.name} is a bias; llamadesk converts LLaMA models without "
                "biases (attention_bias/mlp_bias false)"
            )
        if name in seen:
            raise BadInputError(
                f"{checkpoint.folder}: two tensors map to {name} (one is {source.name}); the checkpoint is inconsistent"
            )
        seen.add(name)
        mapped.append((source, name, _kind_of(name, arch)))
    n_ff = config.n_ff or next((s.shape[0] for s, _, k in mapped if k == T.FFN_GATE and s.shape), 0)
    if n_ff < 1 and T.FFN_GATE in {k for _, _, k in mapped}:
        raise BadInputError(f"{checkpoint.folder}: the feed-forward weights have no rows; the checkpoint is damaged")
    shapes = expected_shapes(config, n_vocab, n_ff)
    for source, _name, kind in mapped:
        if source.shape != shapes[kind]:
            raise BadInputError(
                f"{checkpoint.folder}: tensor {source.name} has shape {list(source.shape)} but the config says "
                f"{list(shapes[kind])}; the config does not match the weights"
            )
    present = {name for _, name, _ in mapped}
    for kind in REQUIRED_TENSORS:
        blocks = range(config.n_layer) if "{bid}" in gguf.TENSOR_NAMES[kind] else [None]
        for bid in blocks:
            name = gguf.TENSOR_NAMES[kind].format(bid=bid) + ".weight"
            if name not in present:
                raise BadInputError(f"{checkpoint.folder}: the weights have no {name}; the checkpoint is incomplete")
    if "output.weight" not in present and not config.tie_embeddings:
        raise BadInputError(f"{checkpoint.folder}: the weights have no lm_head and the config does not tie embeddings")
    planned = [_planned(s, name, kind, config, bulk) for s, name, kind in mapped]
    if ROPE_SCALING_TYPES[config.rope_type] == "rope_freqs":
        factors = llama3_rope_factors(config.head_dim, config.rope_theta, config.rope_scaling)
        planned.append(
            PlannedTensor(
                gguf.TENSOR_NAMES[T.ROPE_FREQS] + ".weight",
                factors.shape,
                gguf.GGMLQuantizationType.F32,
                "computed",
                lambda: factors,
                lambda fraction=1.0: None,
            )
        )
    return planned


def tensor_kind(gguf_name: str, arch: gguf.MODEL_ARCH) -> T:
    """Which kind of tensor a GGUF name is (blk.3.attn_q.weight -> ATTN_Q); KeyError when none."""
    return _kind_of(gguf_name, arch)


def weight_transform(kind: T, config: ModelConfig) -> Callable[[np.ndarray], np.ndarray]:
    """How conversion reorders a weight of `kind` (rows only), which LoRA's B matrices follow too."""
    return _transform(kind, config)
