"""What a GGUF's file name says: its quantization, and whether it is one part of a split model.

Hub repos name files by convention (`SmolLM2-135M-Instruct-Q4_K_M.gguf`,
`Llama-3-70B-Q4_K_M-00001-of-00002.gguf`, sometimes in a `Q4_K_M/` folder). These plain
functions turn a repo's file list into the model variants a user can pull, and pick one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gguf import LlamaFileType

# llama.cpp's split naming: llama.cpp loads the first part and finds the others beside it.
SPLIT_PART = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)

# Every file type llama.cpp can write (from gguf's own table), plus the names quantizers use
# for their own mixes (unsloth's "UD-Q4_K_XL", older "Q4_K_XL"). Longest first, so Q4_K_M is
# not read as Q4_K.
_KNOWN_QUANTS = {t.name.removeprefix("MOSTLY_") for t in LlamaFileType if t.name != "GUESSED"}
# Bartowski's "_L" mixes (Q8_0 embeddings and output over the base type): Q6_K_L was read as Q6_K,
# so `pull REPO:Q6_K` found two files, and Q4_K_L / Q5_K_L had no quantization at all.
_KNOWN_QUANTS |= {"Q2_K_L", "Q3_K_XL", "Q4_K_XL", "Q5_K_XL", "Q6_K_XL", "Q8_K_XL", "IQ4_NL", "MXFP4"}
_KNOWN_QUANTS |= {"Q4_K_L", "Q5_K_L", "Q6_K_L"}
_QUANT_PATTERN = re.compile(
    r"(?<![A-Z0-9])(" + "|".join(sorted(map(re.escape, _KNOWN_QUANTS), key=len, reverse=True)) + r")(?![A-Z0-9])",
    re.IGNORECASE,
)

# Quantizations from best to worst quality, as llama.cpp's perplexity tables rank them; used to
# pick "the best that fits". F16/BF16/F32 come last on purpose: they are twice Q8_0's size for no
# difference a chat user can see, and exist on the Hub mainly as input for quantizing.
QUALITY_ORDER = (
    "Q8_0",
    "Q6_K_L",
    "Q6_K",
    "Q6_K_XL",
    "Q5_K_XL",
    "Q5_K_L",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_1",
    "Q5_0",
    "Q4_K_XL",
    "Q4_K_L",
    "Q4_K_M",
    "Q4_K_S",
    "IQ4_XS",
    "IQ4_NL",
    "Q4_1",
    "Q4_0",
    "MXFP4",
    "Q3_K_XL",
    "Q3_K_L",
    "Q3_K_M",
    "IQ3_M",
    "IQ3_S",
    "Q3_K_S",
    "IQ3_XS",
    "IQ3_XXS",
    "Q2_K_L",
    "Q2_K",
    "Q2_K_S",
    "IQ2_M",
    "IQ2_S",
    "IQ2_XS",
    "IQ2_XXS",
    "IQ1_M",
    "IQ1_S",
    "TQ2_0",
    "TQ1_0",
    "BF16",
    "F16",
    "F32",
)
# What a careful user would pick without knowing the machine: the llama.cpp community default.
FALLBACK_QUANT = "Q4_K_M"


def quantization_in_name(path: str) -> str | None:
    """The quantization named in a file path ('models/x-q4_k_m.gguf' -> 'Q4_K_M'), if any."""
    matches = _QUANT_PATTERN.findall(path)
    return matches[-1].upper() if matches else None


def split_parts(first: Path) -> list[Path]:
    """Every part of a split GGUF, given its first part (or [first] for a single file)."""
    match = SPLIT_PART.match(first.name)
    if not match:
        return [first]
    count = int(match["count"])
    width = len(match["index"])
    return [first.with_name(f"{match['base']}-{i:0{width}d}-of-{match['count']}.gguf") for i in range(1, count + 1)]


def model_stem(path: str) -> str:
    """The model's name from its file: folder and .gguf dropped, split suffix removed."""
    name = path.rsplit("/", 1)[-1]
    split = SPLIT_PART.match(name)
    if split:
        return split["base"]
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


@dataclass(frozen=True)
class RepoFile:
    """One file in a Hub repo, as its listing describes it."""

    path: str
    size: int | None = None
    sha256: str | None = None  # the LFS sha256; None for files not stored in LFS


@dataclass(frozen=True)
class GGUFVariant:
    """One runnable model in a repo: a single GGUF, or every part of a split one (in order)."""

    files: tuple[RepoFile, ...]
    quantization: str | None

    @property
    def first(self) -> RepoFile:
        return self.files[0]

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        return self.quantization or model_stem(self.first.path)


def gguf_variants(files: Iterable[RepoFile]) -> list[GGUFVariant]:
    """Group a repo's .gguf files into variants; a split model missing parts is left out.

    Projector files for vision models (mmproj-*) are not models on their own and are skipped.
    """
    singles: list[GGUFVariant] = []
    splits: dict[tuple[str, int], dict[int, RepoFile]] = {}
    for file in files:
        name = file.path.rsplit("/", 1)[-1]
        if not name.lower().endswith(".gguf") or name.lower().startswith("mmproj"):
            continue
        split = SPLIT_PART.match(name)
        if split:
            key = (file.path[: len(file.path) - len(name)] + split["base"], int(split["count"]))
            splits.setdefault(key, {})[int(split["index"])] = file
        else:
            singles.append(GGUFVariant((file,), quantization_in_name(file.path)))
    for (base, count), parts in splits.items():
        if sorted(parts) == list(range(1, count + 1)):
            ordered = tuple(parts[i] for i in range(1, count + 1))
            singles.append(GGUFVariant(ordered, quantization_in_name(base)))
    return sorted(singles, key=lambda v: v.first.path)


def quality_rank(variant: GGUFVariant) -> int:
    """Lower is better; unknown quantizations rank after every known one."""
    try:
        return QUALITY_ORDER.index(variant.quantization or "")
    except ValueError:
        return len(QUALITY_ORDER)


def variant_for_request(variants: list[GGUFVariant], request: str) -> GGUFVariant | None:
    """The variant a user's `:QUANT` or `:FILE` names (case-insensitive), if the repo has it."""
    wanted = request.strip()
    for variant in variants:
        if any(f.path == wanted or f.path.rsplit("/", 1)[-1] == wanted for f in variant.files):
            return variant
    matching = [v for v in variants if (v.quantization or "").upper() == wanted.upper()]
    return matching[0] if matching else None


def best_fitting_variant(variants: list[GGUFVariant], memory_for_weights: int | None) -> GGUFVariant | None:
    """The best-quality variant whose size fits `memory_for_weights` bytes.

    With no memory figure or no sizes to compare ("unsure"), the FALLBACK_QUANT if the repo has
    it, else the best-ranked variant. None when sizes are known and nothing fits.
    """
    if not variants:
        return None
    ranked = sorted(variants, key=lambda v: (quality_rank(v), v.first.path))
    if memory_for_weights is None or any(v.size is None for v in variants):
        fallback = [v for v in ranked if v.quantization == FALLBACK_QUANT]
        return fallback[0] if fallback else ranked[0]
    fitting = [v for v in ranked if v.size is not None and v.size <= memory_for_weights]
    return fitting[0] if fitting else None
