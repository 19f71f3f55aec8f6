"""Checkpoint to (quantized) GGUF in one step: convert/ writes the GGUF, quantize/ shrinks it.

`llamadesk convert SRC --quantize TYPE` and `llamadesk pull REPO --convert TYPE` both come here.
Types convert/ writes itself (F32, F16, BF16, Q8_0) need no second step; every other type goes
through an f16/bf16 intermediate, which is deleted afterwards unless the caller keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llamadesk.app.core.atomic_file import check_writable_target, hidden_name
from llamadesk.app.core.errors import BadInputError
from llamadesk.convert import ConversionPlan, plan_conversion, resolve_source, write_gguf
from llamadesk.convert import default_output as default_conversion_output
from llamadesk.convert.source_files import check_output_is_not_a_source
from llamadesk.convert.source_location import looks_like_repo_id
from llamadesk.quantize.quant_types import QuantType, find_quant_type
from llamadesk.quantize.quantize_model import ProgressCallback, quantize_gguf
from llamadesk.quantize.quantize_model import default_output as default_quantized_output

# What convert/ writes directly (its --outtype values), by quantize/'s type names.
DIRECT_TYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q8_0": "q8_0"}


def check_convert_type(quant_type: str, imatrix_advice: Callable[[QuantType], str] | None = None) -> QuantType:
    """The quantization type for a conversion; BadInputError (listing the valid ones) otherwise.

    A type that needs an importance matrix is refused here, before anything is read or written:
    a conversion has no matrix to give it, and the quantizer refused it only after the whole
    checkpoint had been converted (minutes, and gigabytes written). `imatrix_advice` gives the
    caller's own line saying what to do instead.
    """
    quant = find_quant_type(quant_type, auto_offered=False)
    if quant.needs_imatrix:
        raise BadInputError(
            imatrix_advice(quant)
            if imatrix_advice is not None
            else (
                f"{quant.name} needs an importance matrix, which a conversion cannot make; convert with "
                f"--quantize F16, then run `llamadesk imatrix MODEL-F16.gguf --text FILE -o MODEL.imatrix` and "
                f"`llamadesk quantize MODEL-F16.gguf -t {quant.name} --imatrix MODEL.imatrix`"
            )
        )
    return quant


def _checking(
    plan: ConversionPlan, check: Callable[[ConversionPlan, Path], None] | None
) -> Callable[[Path], None] | None:
    """write_gguf's check of the written file, given the plan it was written from."""
    return None if check is None else lambda written: check(plan, written)


def conversion_output(plan: ConversionPlan, merged: Sequence[str] = ()) -> Path:
    """Where a conversion goes without -o: the library's models folder, under the model's name
    with the names of the adapters merged into it (model+my-lora-F16.gguf). A merged fine-tune
    took the plain base's name, so a --force replaced the base with it."""
    path = default_conversion_output(plan)
    if not merged:
        return path
    type_suffix = f"-{plan.bulk_type.name}.gguf"
    return path.with_name(path.name.removesuffix(type_suffix) + "".join(f"+{name}" for name in merged) + type_suffix)


@dataclass(frozen=True)
class ConversionSteps:
    """What converting a checkpoint to a type will write, before anything is written."""

    plan: ConversionPlan
    quant_type: QuantType
    target: Path  # the file asked for
    unquantized: Path | None  # where --keep leaves the f16/bf16 file; None: convert/ writes the type itself


def plan_steps(
    source: str | Path,
    output: Path | None,
    quant_type: str | QuantType,
    *,
    pre_tokenizer: str | None = None,
    name: str | None = None,
    tensor_overlay: Callable | None = None,
    merged: Sequence[str] = (),
) -> ConversionSteps:
    """The plan and file names of a conversion to `quant_type` (what --dry-run shows, and what runs).

    `merged`: the names of the adapters `tensor_overlay` merges, for the default file name.
    """
    qtype = quant_type if isinstance(quant_type, QuantType) else check_convert_type(quant_type)
    name = name or (str(source) if looks_like_repo_id(str(source)) else None)
    folder = resolve_source(str(source))
    if qtype.name in DIRECT_TYPES:
        plan = plan_conversion(folder, DIRECT_TYPES[qtype.name], pre_tokenizer, name, tensor_overlay)
        return ConversionSteps(plan, qtype, output or conversion_output(plan, merged), None)
    plan = plan_conversion(folder, "auto", pre_tokenizer, name, tensor_overlay)
    converted_name = conversion_output(plan, merged)
    target = output or default_quantized_output(converted_name, qtype)
    return ConversionSteps(plan, qtype, target, target.parent / converted_name.name)


def conversion_notes(plan: ConversionPlan) -> list[str]:
    """What the user should know about a conversion: files in the folder left unread, and how the
    GGUF's context differs from the checkpoint's (the CLI's `note:` lines, the app's notes)."""
    return [note for note in (*plan.checkpoint.notes, plan.checkpoint.config.context_note) if note]


def convert_checkpoint(
    source: str | Path,
    output: Path | None,
    quant_type: str | QuantType,
    *,
    keep: bool = False,
    force: bool = False,
    threads: int | None = None,
    pre_tokenizer: str | None = None,
    name: str | None = None,
    convert_progress: Callable[[int, int], None] | None = None,
    quantize_progress: ProgressCallback | None = None,
    check: Callable[[ConversionPlan, Path], None] | None = None,
    tensor_overlay: Callable | None = None,
    merged: Sequence[str] = (),
    planned: Callable[[ConversionPlan], None] | None = None,
) -> tuple[Path, Path | None]:
    """Convert `source` (folder or Hub repo id) to a GGUF of `quant_type`.

    Returns the output and, when `keep` is set and a second step ran, the kept intermediate.
    `name` (a Hub repo id) names the model when `source` is a downloaded snapshot folder.
    Without `output` the file goes into the library's models folder. `check` runs on the
    converted (unquantized) file, with the plan it was written from, before it is used.
    `tensor_overlay` replaces the checkpoint's tensors (merging LoRA adapters, see
    convert.lora.merge), whose names `merged` gives for the default file name. `planned` sees the
    plan before anything is written (the CLI's notes).
    Nothing half-written is left on any error.
    """
    steps = plan_steps(
        source,
        output,
        quant_type,
        pre_tokenizer=pre_tokenizer,
        name=name,
        tensor_overlay=tensor_overlay,
        merged=merged,
    )
    plan, target = steps.plan, steps.target
    if keep and steps.unquantized is None:
        # Silently ignoring it left the user looking for a file that was never written.
        raise BadInputError(
            f"--keep keeps the unquantized file of a two-step conversion, but {steps.quant_type.name} is written "
            "directly, so there is none; leave --keep out"
        )
    if planned is not None:
        planned(plan)
    if steps.unquantized is None:
        return write_gguf(plan, target, force, convert_progress, _checking(plan, check)), None

    check_output_is_not_a_source(target, plan.source_files)  # --force replaces old outputs, never the input
    check_writable_target(target, force)  # before minutes of conversion, not after
    if keep:
        intermediate = steps.unquantized
        if intermediate.resolve() == target.resolve():
            # The unquantized file would be written under the name asked for, and left there
            # when quantizing refuses to overwrite its own input.
            raise BadInputError(
                f"{target} is the name --keep gives the unquantized file; choose another -o for the quantized one"
            )
        check_writable_target(intermediate, force)  # --keep never overwrites without --force either
    else:
        intermediate = hidden_name(target, ".unquantized.gguf")
    try:
        write_gguf(plan, intermediate, force or not keep, convert_progress, _checking(plan, check))
        quantize_gguf(intermediate, target, steps.quant_type, threads=threads, force=force, progress=quantize_progress)
    finally:
        if not keep:
            intermediate.unlink(missing_ok=True)
    return target, intermediate if keep else None
