"""Every quantization type the bundled llama.cpp offers, as a table.

The names, file-type numbers and aliases are llama-quantize's own (tools/quantize/quantize.cpp);
a test checks this table against that list and against the bindings' LLAMA_FTYPE_* constants,
so a llama.cpp upgrade that adds or renumbers a type fails loudly instead of silently.

`bits_per_weight` is the size of the type's main ggml block (e.g. Q4_K: 144 bytes per 256
weights = 4.5 bits). The _S/_M/_L mixes keep some tensors at higher precision, so a real file is
a little larger; `fit` asks llama.cpp for the exact size of each type (a dry run) instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamadesk.app.core.errors import BadInputError


@dataclass(frozen=True)
class QuantType:
    """One choice for `llamadesk quantize -t NAME`."""

    name: str
    ftype: int  # llama.h's enum llama_ftype
    bits_per_weight: float  # of the main tensor type (see the module docstring)
    needs_imatrix: bool  # llama.cpp refuses it without an importance matrix (--imatrix)
    description: str
    alias_of: str | None = None

    @property
    def is_quantized(self) -> bool:
        """False for the float types (F32, F16, BF16), which store weights without rounding them."""
        return self.name not in FLOAT_TYPES


FLOAT_TYPES = ("F32", "F16", "BF16")


def _q(name: str, ftype: int, bits: float, description: str, needs_imatrix: bool = False) -> QuantType:
    return QuantType(name, ftype, bits, needs_imatrix, description)


# Ordered as llama-quantize lists them. Descriptions: what the type is, and llama.cpp's own
# measured cost where it publishes one (size and perplexity increase on Llama-3-8B).
QUANT_TYPES: tuple[QuantType, ...] = (
    _q("Q1_0", 40, 1.125, "1-bit, group 32"),
    _q("Q2_0", 41, 2.25, "2-bit, group 64"),
    _q("Q4_0", 2, 4.5, "4-bit legacy; 4.34G, +0.47 ppl @ Llama-3-8B"),
    _q("Q4_1", 3, 5.0, "4-bit legacy with offsets; 4.78G, +0.45 ppl @ Llama-3-8B"),
    _q("MXFP4_MOE", 38, 4.25, "MXFP4 for mixture-of-experts weights"),
    _q("Q5_0", 8, 5.5, "5-bit legacy; 5.21G, +0.13 ppl @ Llama-3-8B"),
    _q("Q5_1", 9, 6.0, "5-bit legacy with offsets; 5.65G, +0.11 ppl @ Llama-3-8B"),
    _q("IQ2_XXS", 19, 2.0625, "2.06 bpw i-quant", needs_imatrix=True),
    _q("IQ2_XS", 20, 2.3125, "2.31 bpw i-quant", needs_imatrix=True),
    _q("IQ2_S", 28, 2.5, "2.5 bpw i-quant", needs_imatrix=True),
    _q("IQ2_M", 29, 2.7, "2.7 bpw i-quant", needs_imatrix=True),
    _q("IQ1_S", 24, 1.5625, "1.56 bpw i-quant", needs_imatrix=True),
    _q("IQ1_M", 31, 1.75, "1.75 bpw i-quant", needs_imatrix=True),
    _q("TQ1_0", 36, 1.6875, "1.69 bpw ternary (for ternary-trained models)"),
    _q("TQ2_0", 37, 2.0625, "2.06 bpw ternary (for ternary-trained models)"),
    _q("Q2_K", 10, 2.625, "2-bit k-quant mix; 2.96G, +3.52 ppl @ Llama-3-8B"),
    _q("Q2_K_S", 21, 2.625, "2-bit k-quant, smaller mix; 2.96G, +3.18 ppl @ Llama-3-8B", needs_imatrix=True),
    _q("IQ3_XXS", 23, 3.0625, "3.06 bpw i-quant", needs_imatrix=True),
    _q("IQ3_S", 26, 3.4375, "3.44 bpw i-quant"),
    _q("IQ3_M", 27, 3.66, "3.66 bpw i-quant mix"),
    QuantType("Q3_K", 12, 3.4375, False, "alias for Q3_K_M", alias_of="Q3_K_M"),
    _q("IQ3_XS", 22, 3.3, "3.3 bpw i-quant mix"),
    _q("Q3_K_S", 11, 3.4375, "3-bit k-quant, small mix; 3.41G, +1.63 ppl @ Llama-3-8B"),
    _q("Q3_K_M", 12, 3.4375, "3-bit k-quant, medium mix; 3.74G, +0.66 ppl @ Llama-3-8B"),
    _q("Q3_K_L", 13, 3.4375, "3-bit k-quant, large mix; 4.03G, +0.56 ppl @ Llama-3-8B"),
    _q("IQ4_NL", 25, 4.5, "4.5 bpw non-linear"),
    _q("IQ4_XS", 30, 4.25, "4.25 bpw non-linear"),
    QuantType("Q4_K", 15, 4.5, False, "alias for Q4_K_M", alias_of="Q4_K_M"),
    _q("Q4_K_S", 14, 4.5, "4-bit k-quant, small mix; 4.37G, +0.27 ppl @ Llama-3-8B"),
    _q("Q4_K_M", 15, 4.5, "4-bit k-quant, medium mix; 4.58G, +0.18 ppl @ Llama-3-8B"),
    QuantType("Q5_K", 17, 5.5, False, "alias for Q5_K_M", alias_of="Q5_K_M"),
    _q("Q5_K_S", 16, 5.5, "5-bit k-quant, small mix; 5.21G, +0.10 ppl @ Llama-3-8B"),
    _q("Q5_K_M", 17, 5.5, "5-bit k-quant, medium mix; 5.33G, +0.06 ppl @ Llama-3-8B"),
    _q("Q6_K", 18, 6.5625, "6-bit k-quant; 6.14G, +0.02 ppl @ Llama-3-8B"),
    _q("Q8_0", 7, 8.5, "8-bit; 7.96G, +0.003 ppl @ Llama-3-8B"),
    _q("F16", 1, 16.0, "16-bit float; 14.00G, +0.002 ppl @ Mistral-7B"),
    _q("BF16", 32, 16.0, "16-bit brain float; 14.00G, -0.005 ppl @ Mistral-7B"),
    _q("F32", 0, 32.0, "32-bit float; 26.00G @ 7B"),
)

_BY_NAME = {q.name: q for q in QUANT_TYPES}


def quant_type_names(include_aliases: bool = True) -> list[str]:
    """Every valid `-t` name, in llama-quantize's order."""
    return [q.name for q in QUANT_TYPES if include_aliases or q.alias_of is None]


def find_quant_type(name: str, auto_offered: bool = True) -> QuantType:
    """The type called `name` (any case); an unknown name is refused with the list of valid ones.

    `auto_offered`: whether the caller also takes 'auto' (quantize does), so the refusal says so.
    """
    found = _BY_NAME.get(name.strip().upper())
    if found is None:
        also = " (or 'auto' to pick the best that fits in memory)" if auto_offered else ""
        raise BadInputError(f"unknown quantization type '{name}'; valid types: {', '.join(quant_type_names())}{also}")
    return _BY_NAME[found.alias_of] if found.alias_of else found
