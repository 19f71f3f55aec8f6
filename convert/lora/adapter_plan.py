"""The GGUF adapter plan: each adapted weight's lora_a / lora_b, named, typed and checked.

llama.cpp applies `scale * alpha / rank * B·A` with one alpha per file (adapter.lora.alpha) and
each pair's rank read from its shape. PEFT allows more: per-module alphas and ranks
(alpha_pattern / rank_pattern) and rsLoRA's alpha / sqrt(rank). Where a module's PEFT scaling
differs from what llama.cpp will compute, the ratio is folded into that module's B, so the file
gives PEFT's model exactly. (llama.cpp's convert_lora_to_gguf.py writes the global alpha only, so
its files differ from PEFT's model for those adapters; for all others the two files are the same.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.architectures import gguf_tensor_name
from llamadesk.convert.gguf_streaming import padded_bytes
from llamadesk.convert.lora.adapter_config import LoraConfig, read_adapter_config
from llamadesk.convert.lora.adapter_weights import LoraPair, read_adapter_pairs
from llamadesk.convert.lora.base_model import AdapterBase, resolve_base
from llamadesk.convert.model_config import ModelConfig
from llamadesk.convert.output_types import encode, resolve_outtype, tensor_type
from llamadesk.convert.plan import PlannedTensor, tensor_kind
from llamadesk.convert.tensor_source import TensorSource, to_float32
from llamadesk.convert.tensor_transforms import ARITHMETIC, TRANSFORMS

T = gguf.MODEL_TENSOR
# The weights llama.cpp applies LoRA to in the graphs of the families convert/ supports
# (build_lora_mm in LLaMA, Qwen2, Qwen3, Phi-3, Gemma 2 and Gemma 3): the linear layers, Phi-3's
# fused Q/K/V (ATTN_QKV) among them; its fused gate/up is an FFN_UP.
ADAPTABLE = (T.ATTN_Q, T.ATTN_K, T.ATTN_V, T.ATTN_QKV, T.ATTN_OUT, T.FFN_GATE, T.FFN_UP, T.FFN_DOWN, T.OUTPUT)
# The weight PEFT calls lm_head; a base with tied embeddings has none (llama.cpp reuses token_embd).
TIED_OUTPUT = gguf.TENSOR_NAMES[T.OUTPUT] + ".weight"


def weight_transform(kind: T, config: ModelConfig) -> Callable[[np.ndarray], np.ndarray]:
    """How conversion reorders the rows of a `kind` weight in this family, which its adapter's B follows.

    B·A's rows are the weight's rows, so a row reordering (LLaMA's Q/K rotary unpermute) applied to B
    gives the reordered delta. A transform that changes values (Gemma's norm offset) has no such
    counterpart; the family table puts those on norms only, which are never adapted.
    """
    name = config.architecture.transforms.get(kind)
    if name is None:
        return lambda w: w
    if name in ARITHMETIC:
        raise BadInputError(
            f"a {config.architecture_name} model's {kind.name.lower()} weights are changed on conversion ({name}); "
            "llamadesk cannot carry a LoRA adapter of them over"
        )
    change = TRANSFORMS[name]
    return lambda w: change(w, config)


@dataclass(frozen=True)
class AdapterTarget:
    """One adapted base weight: the pair, its GGUF name, its rank and PEFT's scaling for it."""

    pair: LoraPair
    weight: str  # GGUF name of the base weight, e.g. blk.0.attn_q.weight
    kind: T
    scale: float  # PEFT's alpha / rank (or / sqrt(rank)) for this module

    def delta(self, scale: float = 1.0) -> np.ndarray:
        """scale * PEFT's scaling * B·A in float32, in the checkpoint's (transformers') row order."""
        a = to_float32(self.pair.a.read(), self.pair.a.dtype)
        b = to_float32(self.pair.b.read(), self.pair.b.dtype)
        return (np.float32(scale * self.scale) * b) @ a


@dataclass
class AdapterPlan:
    """What `write_adapter` writes, computed without reading any weights."""

    folder: Path
    config: LoraConfig
    base: AdapterBase
    targets: list[AdapterTarget]
    tensors: list[PlannedTensor]
    bulk_type: gguf.GGMLQuantizationType

    @property
    def alpha(self) -> float:
        return self.config.alpha

    @property
    def tensor_bytes(self) -> int:
        return padded_bytes(self.tensors)

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(t.shape, dtype=np.int64)) for t in self.tensors)

    @property
    def default_file_name(self) -> str:
        return f"{self.folder.resolve().name or 'adapter'}-lora-{self.bulk_type.name}.gguf"


def _targets(folder: Path, config: LoraConfig, base: AdapterBase, pairs: list[LoraPair]) -> list[AdapterTarget]:
    arch = base.config.architecture.gguf_arch
    targets, seen = [], set()
    for pair in pairs:
        weight = gguf_tensor_name(base.hf_architecture, base.config.n_layer, pair.module + ".weight")
        kind = None
        if weight is not None:
            try:
                kind = tensor_kind(weight, arch)
            except KeyError:
                kind = None
        if weight is None or not weight.endswith(".weight") or kind not in ADAPTABLE:
            raise BadInputError(
                f"{folder}: the adapter targets {pair.module}, which is not a linear layer of a "
                f"{base.config.architecture_name} model; it was trained for another architecture"
            )
        if weight == TIED_OUTPUT and base.config.tie_embeddings:
            # The adapter may well be this model's: PEFT adapts lm_head even where it is the
            # embedding. llama.cpp has no output.weight to apply it to, and merging would need an
            # untied output weight, which llamadesk does not write.
            raise BadInputError(
                f"{folder}: the adapter changes {pair.module}, which {base.name} ties to its embeddings; "
                "llama.cpp cannot apply that and llamadesk cannot convert or merge it yet; retrain the "
                "adapter without lm_head in target_modules"
            )
        if weight not in base.shapes:
            raise BadInputError(
                f"{folder}: the adapter targets {pair.module} ({weight}), which {base.name} does not have "
                "(fewer layers, or tied embeddings); it was trained for another model"
            )
        if weight in seen:
            raise BadInputError(f"{folder}: two adapter pairs target {weight}; the adapter is inconsistent")
        seen.add(weight)
        rows, columns = base.shapes[weight]
        if pair.b.shape[0] != rows or pair.a.shape[1] != columns:
            raise BadInputError(
                f"{folder}: {pair.module} is {pair.b.shape[0]}x{pair.a.shape[1]} in the adapter but "
                f"{rows}x{columns} in {base.name}; the adapter was trained for a model of another width"
            )
        expected = config.module_rank(pair.module)
        if pair.rank != expected:
            raise BadInputError(
                f"{folder}: rank mismatch in {pair.module}: its weights have rank {pair.rank} but the config says "
                f"{expected} (r / rank_pattern); the adapter files do not belong together"
            )
        targets.append(AdapterTarget(pair, weight, kind, config.module_scale(pair.module)))
    return targets


def _b_producer(target: AdapterTarget, factor: float, base: AdapterBase, qtype) -> Callable[[], np.ndarray]:
    b: TensorSource = target.pair.b
    reorder = weight_transform(target.kind, base.config)
    if math.isclose(factor, 1.0, rel_tol=1e-9):  # alpha/rank * rank/alpha need not round to 1.0 exactly
        return lambda: encode(reorder(b.read()), b.dtype, qtype, b.release)
    return lambda: encode(reorder(to_float32(b.read(), b.dtype) * np.float32(factor)), "F32", qtype)


def plan_adapter(folder: Path, base: str | None = None, outtype: str = "auto") -> AdapterPlan:
    """Read and check the PEFT adapter in `folder` against its base; raises BadInputError on any mismatch."""
    if not folder.is_dir():
        raise BadInputError(f"{folder}: not a folder; give the folder with adapter_config.json")
    config = read_adapter_config(folder)
    pairs = read_adapter_pairs(folder)
    resolved = resolve_base(base, config.base_model, folder)
    targets = _targets(folder, config, resolved, pairs)
    bulk = resolve_outtype(outtype, {t.pair.a.dtype for t in targets} | {t.pair.b.dtype for t in targets})
    tensors = []
    for target in targets:
        a, b = target.pair.a, target.pair.b
        # llama.cpp will compute alpha / rank: whatever PEFT does beyond that goes into B.
        factor = target.scale * target.pair.rank / config.alpha
        a_type, b_type = tensor_type(bulk, a.shape), tensor_type(bulk, b.shape)
        tensors.append(
            PlannedTensor(
                target.weight + ".lora_a",
                a.shape,
                a_type,
                a.name,
                lambda a=a, q=a_type: encode(a.read(), a.dtype, q, a.release),
                a.release,
            )
        )
        tensors.append(
            PlannedTensor(
                target.weight + ".lora_b",
                b.shape,
                b_type,
                b.name,
                _b_producer(target, factor, resolved, b_type),
                b.release,
            )
        )
    return AdapterPlan(folder, config, resolved, targets, tensors, bulk)
