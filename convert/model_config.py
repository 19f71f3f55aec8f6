"""Read a checkpoint's hyperparameters (HF config.json or Meta params.json) into one shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.value_ranges import INT32_MAX, ValueRange, shown
from llamadesk.convert.architectures import (
    HF_ARCHITECTURES,
    HF_CONFIG_KEYS,
    LLAMA_META,
    META_ARCHITECTURE,
    META_PARAMS_KEYS,
    REQUIRED,
    ROPE_SCALING_TYPES,
    Architecture,
    supported_architectures,
)


@dataclass
class ModelConfig:
    """Hyperparameters of a LLaMA-family checkpoint, whichever layout it came in."""

    architecture_name: str
    architecture: Architecture
    n_vocab: int | None
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int | None
    rms_eps: float
    context_length: int
    rope_theta: float
    tie_embeddings: bool = False
    rope_scaling: dict[str, Any] = field(default_factory=dict)  # {"rope_type": ..., "factor": ...}
    name: str | None = None
    # The family's own hyperparameters (its `extra_config`, checked), e.g. Gemma's sliding_window.
    extra: dict[str, Any] = field(default_factory=dict)
    # The rope base of sliding-window layers, where the family has them (Gemma 3's local layers).
    rope_theta_swa: float | None = None
    # The share of each head rotary embeddings turn (the rest passes through): 1.0 but for Phi-4-mini's 0.75.
    partial_rotary_factor: float = 1.0
    # A window the original's attention slides in and llama.cpp's graph does not (Mistral's
    # sliding_window): past it the two part, so the GGUF's context stops there.
    unrun_window: int | None = None

    @property
    def gguf_context_length(self) -> int:
        """The context the GGUF declares: the trained one, up to where llama.cpp computes what the original does."""
        if self.unrun_window is not None and self.unrun_window < self.context_length:
            return self.unrun_window
        return self.context_length

    @property
    def context_note(self) -> str | None:
        """Why the GGUF's context is shorter than the checkpoint's, for the user; None when it is not."""
        if self.gguf_context_length == self.context_length:
            return None
        return (
            f"the model attends to its last {self.gguf_context_length} tokens only (sliding_window) and "
            f"llama.cpp's graph for it to all of them: its context is {self.gguf_context_length} "
            f"(not {self.context_length}), where both compute the same"
        )

    @property
    def rotary_dim(self) -> int:
        """How many leading dimensions of each head are rotated (llama.cpp's rope.dimension_count)."""
        return int(self.head_dim * self.partial_rotary_factor)

    def is_sliding(self, layer: int) -> bool:
        """Whether `layer` attends to the last `sliding_window` positions only (its family's pattern)."""
        every = self.architecture.global_every
        return every is not None and (layer + 1) % every != 0

    def hyperparameter(self, name: str) -> Any:
        """A family hyperparameter by field name (an `extra` one, or rope_theta_swa)."""
        return self.rope_theta_swa if name == "rope_theta_swa" else self.extra.get(name)

    @property
    def rope_type(self) -> str:
        return str(self.rope_scaling.get("rope_type") or self.rope_scaling.get("type") or "default")


# What each hyperparameter must be. Counts are written to the GGUF as u32 and read by llama.cpp
# into int32; its LLAMA_MAX_LAYERS is 512 (and a layer count also sizes tables built per layer
# before any tensor is looked at). Float values are written as f32.
COUNT = ValueRange(1, INT32_MAX, whole=True)
FIELD_RANGES: dict[str, ValueRange] = {
    "n_vocab": COUNT,
    "n_embd": COUNT,
    "n_layer": ValueRange(1, 512, whole=True),
    "n_head": COUNT,
    "n_head_kv": COUNT,
    "n_ff": COUNT,
    "head_dim": COUNT,
    "context_length": COUNT,
    "rms_eps": ValueRange(1e-30, 1.0),
    "rope_theta": ValueRange(1e-30, 3.0e38),
    "sliding_window": COUNT,
    "final_logit_softcapping": ValueRange(1e-30, 3.0e38),
    "attn_logit_softcapping": ValueRange(1e-30, 3.0e38),
    "query_pre_attn_scalar": ValueRange(1e-30, 3.0e38),
}
POSITIVE_FACTOR = ValueRange(1e-30, 3.0e38)
# Rotary scaling values and their defaults (those of Llama 3.1, as rotary.llama3_rope_factors uses).
ROPE_SCALING_NUMBERS: dict[str, dict[str, float | None]] = {
    "default": {},
    "linear": {"factor": None},
    "llama3": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "longrope": {"original_max_position_embeddings": None},  # and the factor lists, see _longrope_factors
}
LONGROPE_FACTOR_LISTS = ("long_factor", "short_factor")
MAX_ROPE_FACTORS = 1 << 16  # one per frequency: head_dim / 2 (checked against it once that is known)


def _label(value: Any) -> str:
    """A name from the config as the user wrote it, when it is one short line of text; else quoted."""
    return value if isinstance(value, str) and value.isprintable() and len(value) <= 80 else shown(value)


def _checked(field_name: str, key: str, value: Any, source: Path) -> Any:
    """A config value of the type and range its field needs; BadInputError naming the key otherwise."""
    if field_name == "tie_embeddings":
        if type(value) is not bool:
            raise BadInputError(f"{source}: '{key}' must be true or false, not {shown(value)}")
        return value
    return FIELD_RANGES[field_name].check(value, f"{source}: '{key}'")


def _pick(config: dict[str, Any], keys: dict[str, tuple[str, object]], source: Path) -> dict[str, Any]:
    values = {}
    for field_name, (key, default) in keys.items():
        if config.get(key) is not None:
            values[field_name] = _checked(field_name, key, config[key], source)
        elif default is REQUIRED:
            raise BadInputError(
                f"{source}: missing '{key}'; the checkpoint's config is incomplete (restore it from the original model)"
            )
        else:
            values[field_name] = default
    return values


def _heads(values: dict[str, Any], keys: dict[str, tuple[str, object]], source: Path) -> None:
    """Fill in the KV head count and head size, and check the attention shapes are whole numbers.

    llama.cpp splits the embedding into n_head heads and shares each KV head among n_head/n_head_kv
    query heads; rotary embeddings turn pairs of dimensions, so a head has an even size.
    """
    name = {field_name: key for field_name, (key, _) in keys.items()}
    values["n_head_kv"] = values["n_head_kv"] or values["n_head"]
    if values["n_head"] % values["n_head_kv"]:
        raise BadInputError(
            f"{source}: {name['n_head']} ({values['n_head']}) is not a multiple of {name['n_head_kv']} "
            f"({values['n_head_kv']}); the config is damaged"
        )
    if not values.get("head_dim"):
        if values["n_embd"] % values["n_head"]:
            raise BadInputError(
                f"{source}: {name['n_embd']} ({values['n_embd']}) is not divisible by {name['n_head']} "
                f"({values['n_head']}); the config is damaged"
            )
        values["head_dim"] = values["n_embd"] // values["n_head"]
    if values["head_dim"] % 2:
        raise BadInputError(
            f"{source}: the attention head size {values['head_dim']} is odd; rotary embeddings need it even"
        )


def _object(value: Any, key: str, source: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInputError(f"{source}: '{key}' must be an object, not {shown(value)}")
    return value


def _first_given(*values: Any) -> Any:
    """The first value that is not None (None when all are)."""
    return next((value for value in values if value is not None), None)


def _local_rope_theta(config: dict[str, Any], source: Path) -> float | None:
    """The rope base of sliding-window layers: 5.x's rope_parameters.sliding_attention, or 4.x's key."""
    parameters = _object(config.get("rope_parameters"), "rope_parameters", source)
    sliding = _object(parameters.get("sliding_attention"), "rope_parameters.sliding_attention", source)
    theta = _first_given(sliding.get("rope_theta"), config.get("rope_local_base_freq"))
    return None if theta is None else float(FIELD_RANGES["rope_theta"].check(theta, f"{source}: local 'rope_theta'"))


def _rope_settings(config: dict[str, Any], source: Path) -> tuple[float, dict[str, Any]]:
    """rope theta and scaling from either transformers 4.x keys or 5.x's `rope_parameters`.

    The scaling comes back as {"rope_type": kind, number: value, ...} with every number the kind
    uses present and checked, so later code reads it without defaults or type checks. Where the
    parameters are given per attention kind (Gemma 3), these are the full-attention layers'.
    """
    parameters = _object(config.get("rope_parameters"), "rope_parameters", source)
    if "full_attention" in parameters:
        parameters = _object(parameters["full_attention"], "rope_parameters.full_attention", source)
    given = _object(config.get("rope_scaling"), "rope_scaling", source) or parameters
    # None is "not given"; a 0 is given, and refused by the range check (`or` took it for unset).
    theta = _first_given(config.get("rope_theta"), parameters.get("rope_theta"), 10000.0)
    theta = FIELD_RANGES["rope_theta"].check(theta, f"{source}: 'rope_theta'")
    kind = given.get("rope_type") or given.get("type") or "default"
    if not isinstance(kind, str) or kind not in ROPE_SCALING_TYPES:
        raise BadInputError(
            f"{source}: rope scaling '{_label(kind)}' is not supported; "
            f"llamadesk converts {', '.join(ROPE_SCALING_TYPES)}"
        )
    scaling: dict[str, Any] = {"rope_type": kind} if given else {}
    if kind == "longrope":  # Phi-3 in transformers 4.x keeps the original context length at the top level
        given = {"original_max_position_embeddings": config.get("original_max_position_embeddings"), **given}
        scaling.update(_longrope_factors(given, source))
    for number, default in ROPE_SCALING_NUMBERS[kind].items():
        value = given.get(number, default)
        if value is None:
            raise BadInputError(f"{source}: {kind} rope scaling without its '{number}'; the config is incomplete")
        scaling[number] = float(POSITIVE_FACTOR.check(value, f"{source}: rope scaling '{number}'"))
    if kind == "llama3" and scaling["high_freq_factor"] <= scaling["low_freq_factor"]:
        raise BadInputError(f"{source}: llama3 rope scaling needs high_freq_factor above low_freq_factor")
    return float(theta), scaling


PARTIAL_ROTARY = ValueRange(1e-30, 1.0)


def _partial_rotary_factor(
    config: dict[str, Any], family: Architecture, head_dim: int, name: str, source: Path
) -> float:
    """The share of each head that is rotated (transformers: rope_parameters' or the top level's key).

    Only families whose llama.cpp graph rotates part of a head (Phi-3's, for Phi-4-mini) accept one
    below 1; the rotated part must be a whole, even number of dimensions, as transformers and
    llama.cpp both take int(head_dim * factor) of them in pairs.
    """
    parameters = _object(config.get("rope_parameters"), "rope_parameters", source)
    scaling = _object(config.get("rope_scaling"), "rope_scaling", source)
    given = next(
        (
            p["partial_rotary_factor"]
            for p in (scaling, parameters, config)
            if p.get("partial_rotary_factor") is not None
        ),
        1.0,
    )
    factor = float(PARTIAL_ROTARY.check(given, f"{source}: 'partial_rotary_factor'"))
    if factor != 1.0 and not family.partial_rotary:
        raise BadInputError(
            f"{source}: 'partial_rotary_factor' {shown(given)} (rotary embeddings over part of each head) is not "
            f"supported for {name}; llamadesk converts its models rotating whole heads"
        )
    rotated = int(head_dim * factor)
    if rotated < 2 or rotated % 2:
        raise BadInputError(
            f"{source}: 'partial_rotary_factor' {shown(given)} rotates {rotated} of the head's {head_dim} "
            "dimensions; rotary embeddings need an even number of them, at least 2"
        )
    return factor


def _longrope_factors(given: dict[str, Any], source: Path) -> dict[str, list[float]]:
    """LongRoPE's per-frequency factor lists (Phi-3): non-empty lists of positive numbers, equally long."""
    lists = {}
    for key in LONGROPE_FACTOR_LISTS:
        values = given.get(key)
        if not isinstance(values, list) or not 0 < len(values) <= MAX_ROPE_FACTORS:
            raise BadInputError(
                f"{source}: longrope rope scaling needs '{key}', a list of numbers, not {shown(values)}; "
                "the config is incomplete"
            )
        lists[key] = [float(POSITIVE_FACTOR.check(v, f"{source}: rope scaling '{key}'")) for v in values]
    if len(lists["long_factor"]) != len(lists["short_factor"]):
        raise BadInputError(f"{source}: rope scaling's long_factor and short_factor differ in length")
    return lists


def _architecture_name(config: dict[str, Any], source: Path) -> str:
    names = config.get("architectures") or []
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise BadInputError(f"{source}: 'architectures' must be a list of names, not {shown(names)}")
    if not names:
        # Transformers picks the class from model_type when `architectures` is missing; the
        # class is what says which converter applies, so say which one to write in.
        model_type = config.get("model_type")
        family = model_type.split("_")[0] if isinstance(model_type, str) and model_type else None
        classes = [c for c in HF_ARCHITECTURES if family and c.lower().startswith(family)]
        example = classes[0] if classes else "LlamaForCausalLM"
        raise BadInputError(
            f"{source} names no architecture (model_type {_label(model_type)}); add the model's class, as in "
            f'"architectures": ["{example}"], then convert again'
        )
    name = names[0]
    if not isinstance(name, str) or name not in HF_ARCHITECTURES:
        raise BadInputError(
            f"{source}: architecture {_label(name)} is not supported; llamadesk converts {supported_architectures()}"
        )
    return name


def _family_values(
    config: dict[str, Any], family: Architecture, values: dict[str, Any], source: Path
) -> dict[str, Any]:
    """The family's own hyperparameters, checked; and what its llama.cpp graph fixes, checked against the config."""
    extra = _pick(config, family.extra_config, source)
    n_layer = values["n_layer"]
    scalar = extra.get("query_pre_attn_scalar")
    if scalar is not None and scalar != values["head_dim"]:
        # llama.cpp scales attention scores by 1/sqrt(head size) for every Gemma 2 and 3 but the 27B.
        raise BadInputError(
            f"{source}: 'query_pre_attn_scalar' {shown(scalar)} is not the head size {values['head_dim']}; "
            "llama.cpp scales attention by the head size for this architecture"
        )
    activation = config.get("hidden_activation") or config.get("hidden_act") or family.activation
    if activation != family.activation:
        raise BadInputError(
            f"{source}: the feed-forward activation {_label(activation)} is not {family.activation}, which "
            f"llama.cpp uses for {family.gguf_arch.name.lower()} models; the config is not of this architecture"
        )
    layer_types = config.get("layer_types")
    if family.global_every is not None and layer_types is not None:
        expected = [
            "full_attention" if (i + 1) % family.global_every == 0 else "sliding_attention" for i in range(n_layer)
        ]
        if layer_types != expected:
            raise BadInputError(
                f"{source}: 'layer_types' is not one global-attention layer after every {family.global_every - 1} "
                "sliding-window ones, the only pattern llama.cpp runs for this architecture"
            )
    return extra


def _unrun_window(config: dict[str, Any], family: Architecture, n_layer: int, source: Path) -> int | None:
    """The sliding window the original attends in and llama.cpp's graph for `family` ignores; None if none."""
    if family.unrun_window is None or config.get("sliding_window") is None:
        return None
    if family.unrun_window == "when used":
        used = config.get("use_sliding_window", False)
        if type(used) is not bool:
            raise BadInputError(f"{source}: 'use_sliding_window' must be true or false, not {shown(used)}")
        layer_types = config.get("layer_types")
        if isinstance(layer_types, list):
            used = used and "sliding_attention" in layer_types
        else:  # transformers: the layers from max_window_layers on slide
            first = config.get("max_window_layers", n_layer)
            used = used and not (type(first) is int and first >= n_layer)
        if not used:
            return None
    return int(FIELD_RANGES["context_length"].check(config["sliding_window"], f"{source}: 'sliding_window'"))


def read_hf_config(folder: Path) -> ModelConfig:
    """The hyperparameters in an HF folder's config.json; unknown architectures are refused."""
    path = folder / "config.json"
    config = read_json_object(path, "model config")
    name = _architecture_name(config, path)
    family = HF_ARCHITECTURES[name]
    if family.text_config is not None:
        # A multimodal checkpoint: the language model's hyperparameters, over the top level's (as llama.cpp reads them).
        text = config.get(family.text_config)
        if not isinstance(text, dict):
            raise BadInputError(
                f"{path}: '{family.text_config}' must be an object with the language model's settings, "
                f"not {shown(text)}; the config is incomplete"
            )
        config = {**config, **text}
    keys = {**HF_CONFIG_KEYS, "tie_embeddings": ("tie_word_embeddings", family.ties_by_default)}
    values = _pick(config, keys, path)
    _heads(values, keys, path)
    theta, scaling = _rope_settings(config, path)
    extra = _family_values(config, family, values, path)
    partial = _partial_rotary_factor(config, family, values["head_dim"], name, path)
    frequencies = int(values["head_dim"] * partial) // 2
    for key in LONGROPE_FACTOR_LISTS if scaling.get("rope_type") == "longrope" else ():
        if len(scaling[key]) != frequencies:
            raise BadInputError(
                f"{path}: rope scaling's '{key}' has {len(scaling[key])} factors, not one per rotary frequency "
                f"({frequencies}); the config does not match the model"
            )
    model_name = config.get("_name_or_path")
    return ModelConfig(
        architecture_name=name,
        architecture=family,
        rope_theta=theta,
        rope_scaling=scaling,
        name=model_name if isinstance(model_name, str) and model_name else None,
        extra=extra,
        rope_theta_swa=_local_rope_theta(config, path) if family.global_every else None,
        partial_rotary_factor=partial,
        unrun_window=_unrun_window(config, family, values["n_layer"], path),
        **values,
    )


def read_meta_params(folder: Path) -> ModelConfig:
    """The hyperparameters in a Meta folder's params.json (FFN width and vocab come from weights)."""
    path = folder / "params.json"
    params = read_json_object(path, "model parameters (params.json)")
    if type(params.get("vocab_size")) is int and params["vocab_size"] <= 0:
        params = {**params, "vocab_size": None}  # Llama 1/2 write -1: "whatever the tokenizer has"
    values = _pick(params, META_PARAMS_KEYS, path)
    _heads(values, META_PARAMS_KEYS, path)
    scaling: dict[str, Any] = {}
    scaled = params.get("use_scaled_rope", False)
    if type(scaled) is not bool:
        raise BadInputError(f"{path}: 'use_scaled_rope' must be true or false, not {shown(scaled)}")
    if scaled:
        # Meta's reference code hard-codes Llama 3.1's scaling; params.json only says it is on.
        factor = POSITIVE_FACTOR.check(params.get("rope_scaling_factor", 8.0), f"{path}: 'rope_scaling_factor'")
        scaling = {
            **ROPE_SCALING_NUMBERS["llama3"],
            "rope_type": "llama3",
            "factor": float(factor),
        }
    return ModelConfig(
        architecture_name=META_ARCHITECTURE,
        architecture=LLAMA_META,
        n_ff=None,
        tie_embeddings=False,
        rope_scaling=scaling,
        **values,
    )
