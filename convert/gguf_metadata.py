"""The GGUF key/values a converted model carries: general.*, the architecture's hyperparameters."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import gguf

from llamadesk.convert.model_config import ModelConfig
from llamadesk.convert.rotary import longrope_attention_factor

# GGUFWriter method -> the hyperparameter it records. Each writes "<arch>.<key>".
HPARAM_WRITERS: dict[str, Callable[[ModelConfig, int, int], object]] = {
    "add_context_length": lambda c, v, f: c.gguf_context_length,
    "add_embedding_length": lambda c, v, f: c.n_embd,
    "add_block_count": lambda c, v, f: c.n_layer,
    "add_feed_forward_length": lambda c, v, f: f,
    "add_head_count": lambda c, v, f: c.n_head,
    "add_head_count_kv": lambda c, v, f: c.n_head_kv,
    "add_layer_norm_rms_eps": lambda c, v, f: float(c.rms_eps),
    "add_rope_freq_base": lambda c, v, f: float(c.rope_theta),
    "add_rope_dimension_count": lambda c, v, f: c.rotary_dim,
    "add_key_length": lambda c, v, f: c.head_dim,
    "add_value_length": lambda c, v, f: c.head_dim,
    "add_vocab_size": lambda c, v, f: v,
}

LICENSE_LINE = re.compile(r"^license:\s*['\"]?([\w.\-+]+)", re.MULTILINE)
CARD_HEAD_BYTES = 64 * 1024
MAX_NAME = 100


def license_of(folder: Path) -> str | None:
    """The license a model card declares in its front matter (`license: apache-2.0`), if any."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    with open(card, "rb") as f:  # the front matter is at the top; a card can be megabytes long
        text = f.read(CARD_HEAD_BYTES).decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    found = LICENSE_LINE.search(front)
    return found.group(1) if found else None


def model_name(config: ModelConfig, folder: Path) -> str:
    """The model's name (general.name, and the output file's stem): the config's, else the folder's.

    The config's `_name_or_path` is text from the checkpoint: only its last path part is used, and
    only if it is a plausible file name (printable, not "." or "..", not over-long); the same goes
    for the folder's name.
    """
    given = config.name if config.name and not Path(config.name).is_absolute() else ""  # a path on the trainer's disk
    for name in (given, folder.name):
        name = name.rstrip("/").rsplit("/", 1)[-1]
        if name not in ("", ".", "..") and name.isprintable() and "\\" not in name and len(name) <= MAX_NAME:
            return name
    return "model"  # a folder named with bytes that are not text


def add_metadata(
    writer: gguf.GGUFWriter,
    config: ModelConfig,
    folder: Path,
    n_vocab: int,
    n_ff: int,
    n_params: int,
    file_type: gguf.LlamaFileType,
    quantized: bool,
) -> None:
    """Write general.* and the architecture's hyperparameters."""
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_name(config, folder))
    writer.add_size_label(gguf.size_label(n_params, 0, 0, 0))
    if license := license_of(folder):
        writer.add_license(license)
    writer.add_file_type(file_type)
    if quantized:
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for method, value in HPARAM_WRITERS.items():
        getattr(writer, method)(value(config, n_vocab, n_ff))
    for method, field_name in config.architecture.extra_gguf.items():
        if (value := config.hyperparameter(field_name)) is not None:
            getattr(writer, method)(value)
    if config.rope_type == "longrope":  # as convert_hf_to_gguf.py writes Phi-3's
        original = int(config.rope_scaling["original_max_position_embeddings"])
        writer.add_rope_scaling_orig_ctx_len(original)
        writer.add_rope_scaling_attn_factors(longrope_attention_factor(config.context_length, original))
    if config.rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(config.rope_scaling["factor"]))
