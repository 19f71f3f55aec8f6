"""Which quantization type fits: the memory each type needs for a model and a context length.

The formula is core.memory_budget's (weights + KV cache + compute + output); the weights of each
type come from llama.cpp's own dry run (quantize_model), so no type has to be made to be judged.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import GGUFSummary, inspect_gguf
from llamadesk.app.core.machine import machine_facts
from llamadesk.app.core.memory_budget import estimate_memory, ram_budget
from llamadesk.quantize.quant_types import QUANT_TYPES, QuantType, find_quant_type
from llamadesk.quantize.quantize_model import quantized_sizes

# `-t auto` walks this list from best to smallest and takes the first type that fits. Types that
# need an importance matrix are left out (auto has none), as are formats for special models
# (ternary TQ*, MXFP4 for MoE) and the float types (not a quantization).
AUTO_LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K")

_MEMORY_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "KIB": 1024,
    "M": 1000**2,
    "MB": 1000**2,
    "MIB": 1024**2,
    "G": 1000**3,
    "GB": 1000**3,
    "GIB": 1024**3,
    "T": 1000**4,
    "TB": 1000**4,
    "TIB": 1024**4,
}


@dataclass(frozen=True)
class TypeFit:
    """One row of `llamadesk fit`."""

    qtype: str
    bits_per_weight: float | None  # measured on this model (file's tensors), None if not possible
    weights_bytes: int | None
    memory_bytes: int | None
    fits: bool
    needs_imatrix: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_memory(text: str) -> int:
    """'4GB' -> 4e9, '4GiB' -> 4*2^30, '512M' -> 512e6, '1234' -> 1234 bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    unit = match[2].upper() if match else None
    if not match or unit not in _MEMORY_UNITS:
        raise BadInputError(f"cannot read '{text}' as an amount of memory; write it like 4GB, 4GiB or 512MB")
    try:
        amount = float(match[1]) * _MEMORY_UNITS[unit]
    except ValueError as err:
        raise BadInputError(f"cannot read '{text}' as an amount of memory; write it like 4GB") from err
    if amount < 1:  # checked before rounding down: '0.1B' was a budget of 0 bytes
        raise BadInputError(f"--memory must be at least one byte, not '{text}'")
    return int(amount)


def default_budget() -> tuple[int, str]:
    """Memory a model may use here, and where the figure comes from: free VRAM on a GPU build,
    otherwise available RAM less the reserve llamadesk keeps for the OS and itself."""
    from llamadesk.app.engine.build_info import build_info
    from llamadesk.app.engine.devices import backend_devices

    gpus = [d for d in backend_devices() if d.is_gpu] if build_info().gpu_offload else []
    if gpus:
        best = max(gpus, key=lambda d: d.free_memory)
        return best.free_memory, f"free memory of {best.description or best.name}"
    machine = machine_facts()
    return ram_budget(machine), "available RAM less a reserve for the system"


def whole_model_summary(model: Path) -> GGUFSummary:
    """inspect_gguf, with the parameters and tensor bytes of a split model's other parts added in:
    the first part alone gave BITS/W and -t auto's "smaller than the present file" a third of them."""
    return inspect_gguf(model)  # summarize counts a split model's every part


def fit_table(
    model: Path, n_ctx: int | None, budget: int, qtypes: tuple[QuantType, ...] | None = None
) -> list[TypeFit]:
    """Every type (or `qtypes`) with its size on this model, memory at `n_ctx` and whether it fits."""
    summary = whole_model_summary(model)
    # None is "the model's"; 0 is a mistake to refuse, as -5 is, not a request for the default.
    ctx = n_ctx if n_ctx is not None else summary.context_length or 4096
    if ctx < 1:
        raise BadInputError(f"--ctx must be a positive number of tokens, not {ctx}")
    chosen = qtypes or tuple(q for q in QUANT_TYPES if q.alias_of is None)
    sizes = quantized_sizes(model, list(chosen))
    rows = []
    for quant in chosen:
        weights = sizes.get(quant.name)
        if weights is None:
            rows.append(
                TypeFit(
                    quant.name,
                    None,
                    None,
                    None,
                    False,
                    quant.needs_imatrix,
                    "llama.cpp cannot make this type for this model",
                )
            )
            continue
        memory = estimate_memory(summary, summary.n_vocab, weights, ctx).total
        rows.append(
            TypeFit(
                quant.name,
                round(8 * weights / summary.parameters, 2),
                weights,
                memory,
                memory <= budget,
                quant.needs_imatrix,
            )
        )
    return rows


# llama.cpp prints each type's size in MiB with two decimals (quantize_log), so a size is known to
# +-0.005 MiB: a type is "smaller" only by more than that (Q8_0 of a Q8_0 file came out 358 bytes
# smaller on SmolLM2 and was chosen again, an identical file).
SIZE_RESOLUTION = 1024 * 1024 // 100


def auto_choice(rows: list[TypeFit], present_bytes: int) -> str | None:
    """The best AUTO_LADDER type that fits and makes the model's weights smaller than `present_bytes`.

    An already-quantized model (--allow-requantize) made no smaller gains nothing: from a Q4_1
    file, Q8_0 "fitted" and was chosen, a larger file that rounds the rounded weights again.
    """
    by_name = {row.qtype: row for row in rows}
    for name in AUTO_LADDER:
        row = by_name.get(name)
        smaller = row is not None and (row.weights_bytes is None or row.weights_bytes + SIZE_RESOLUTION < present_bytes)
        if row is not None and row.fits and smaller:
            return name
    return None


def choose_fitting_type(model: Path, n_ctx: int | None, budget: int) -> QuantType:
    """The best type of AUTO_LADDER whose estimated memory fits `budget`; refuses if none does."""
    ladder = tuple(find_quant_type(name) for name in AUTO_LADDER)
    rows = fit_table(model, n_ctx, budget, ladder)
    chosen = auto_choice(rows, whole_model_summary(model).tensor_bytes)
    if chosen is not None:
        return find_quant_type(chosen)
    smallest = min((r for r in rows if r.memory_bytes is not None), key=lambda r: r.memory_bytes, default=None)
    need = f"; the smallest, {smallest.qtype}, needs {format_bytes(smallest.memory_bytes)}" if smallest else ""
    raise BadInputError(
        f"no quantization of {model.name} fits in {format_bytes(budget)} at this context{need}; "
        "use a smaller --ctx, a larger --memory, or a smaller model"
    )
