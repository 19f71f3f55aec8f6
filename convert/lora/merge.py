"""Fold LoRA adapters into a checkpoint's weights: W + scale * PEFT's scaling * B·A, tensor by tensor.

The merged tensors replace the checkpoint's own `TensorSource`s, so the rest of the conversion
(Q/K reordering, --outtype, --quantize) treats them like any weight. Each is computed in float32
only when the writer asks for it, so memory stays at about two copies of the largest adapted weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.value_ranges import shown
from llamadesk.convert.architectures import gguf_tensor_name
from llamadesk.convert.checkpoint import Checkpoint
from llamadesk.convert.lora.adapter_plan import AdapterPlan, AdapterTarget, plan_adapter
from llamadesk.convert.lora.base_model import hf_architecture_of
from llamadesk.convert.tensor_source import TensorSource, to_float32

MAX_SCALE = 1000.0


@dataclass(frozen=True)
class AdapterChoice:
    """An adapter and how strongly it is applied (1 is as trained, 0 is the base)."""

    path: Path
    scale: float = 1.0


def parse_adapter_choice(text: str) -> AdapterChoice:
    """PATH or PATH:SCALE (a path may itself contain ':', so only a number after the last one is a scale)."""
    if not text.strip():  # Path("") is ".": it said the current folder "is a folder"
        raise BadInputError("--lora is empty; give an adapter's .gguf file (or its folder to convert)")
    path, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
            path = head
        except ValueError:
            pass  # "C:\\..." or a name with a colon: the whole text is the path
    if not math.isfinite(scale) or abs(scale) > MAX_SCALE:
        raise BadInputError(
            f"--lora {path}: the adapter scale {shown(tail)} must be a number from -{MAX_SCALE:g} to {MAX_SCALE:g}"
        )
    return AdapterChoice(Path(path).expanduser(), scale)


def _merged(source: TensorSource, parts: list[tuple[AdapterTarget, float]]) -> TensorSource:
    def read() -> np.ndarray:
        weight = to_float32(source.read(), source.dtype) + sum(t.delta(s) for t, s in parts)
        return weight.astype(np.float32, copy=False)

    def release(fraction: float = 1.0) -> None:
        source.release(fraction)
        for target, _ in parts:
            target.pair.a.release(1.0)
            target.pair.b.release(1.0)

    return TensorSource(source.name, source.shape, "F32", read, release)


def merged_tensors(checkpoint: Checkpoint, adapters: list[tuple[AdapterPlan, float]]) -> list[TensorSource]:
    """The checkpoint's tensors with each adapter's deltas added to the weights it targets."""
    config = checkpoint.config
    hf_architecture = hf_architecture_of(config)
    by_weight: dict[str, list[tuple[AdapterTarget, float]]] = {}
    for plan, scale in adapters:
        for target in plan.targets:
            by_weight.setdefault(target.weight, []).append((target, scale))
    merged, used = [], set()
    for source in checkpoint.tensors:
        weight = gguf_tensor_name(hf_architecture, config.n_layer, source.name)
        parts = by_weight.get(weight or "")
        if parts:
            used.add(weight)
            merged.append(_merged(source, parts))
        else:
            merged.append(source)
    missing = set(by_weight) - used
    if missing:
        raise BadInputError(
            f"{checkpoint.folder}: has no {sorted(missing)[0]} for the adapter to merge into; "
            "it is not the adapter's base"
        )
    return merged


def adapter_overlay(choices: list[AdapterChoice]) -> Callable[[Checkpoint], list[TensorSource]]:
    """For plan_conversion: each adapter planned against the checkpoint itself, then merged into it."""

    def overlay(checkpoint: Checkpoint) -> list[TensorSource]:
        if not (checkpoint.folder / "config.json").is_file():
            raise BadInputError(
                f"{checkpoint.folder}: adapters merge into Hugging Face checkpoints (config.json); "
                "this is another layout"
            )
        plans = [(plan_adapter(c.path, str(checkpoint.folder)), c.scale) for c in choices]
        return merged_tensors(checkpoint, plans)

    return overlay
