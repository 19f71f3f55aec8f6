"""Read a checkpoint's hyperparameters (HF config.json or Meta params.json) into one shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.core.errors import BadInputError
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

    @property
    def rope_type(self) -> str:
        return str(self.rope_scaling.get("rope_type") or self.rope_scaling.get("type") or "default")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else is the user's to fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInputError(f"{path}: cannot be read as JSON ({err})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object")
    return data


def _pick(config: dict[str, Any], keys: dict[str, tuple[str, object]], source: Path) -> dict[str, Any]:
    values = {}
    for field_name, (key, default) in keys.items():
        if config.get(key) is not None:
            values[field_name] = config[key]
        elif default is REQUIRED:
            raise BadInputError(
                f"{source}: missing '{key}'; the checkpoint's config is incomplete (restore it from the original model)"
            )
        else:
            values[field_name] = default
    return values


def _rope_settings(config: dict[str, Any], source: Path) -> tuple[float, dict[str, Any]]:
    """rope theta and scaling from either transformers 4.x keys or 5.x's `rope_parameters`."""
    parameters = config.get("rope_parameters") or {}
    scaling = dict(config.get("rope_scaling") or parameters)
    theta = config.get("rope_theta") or parameters.get("rope_theta") or 10000.0
    scaling.pop("rope_theta", None)
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    if kind not in ROPE_SCALING_TYPES:
        raise BadInputError(
            f"{source}: rope scaling '{kind}' is not supported; llamadesk converts {', '.join(ROPE_SCALING_TYPES)}"
        )
    return float(theta), scaling


def read_hf_config(folder: Path) -> ModelConfig:
    """The hyperparameters in an HF folder's config.json; unknown architectures are refused."""
    path = folder / "config.json"
    config = read_json_object(path)
    names = config.get("architectures") or []
    name = names[0] if names else str(config.get("model_type", "unknown"))
    if name not in HF_ARCHITECTURES:
        raise BadInputError(
            f"{path}: architecture {name} is not supported; llamadesk converts {supported_architectures()}"
        )
    values = _pick(config, HF_CONFIG_KEYS, path)
    values["n_head_kv"] = values["n_head_kv"] or values["n_head"]
    values["head_dim"] = values["head_dim"] or values["n_embd"] // values["n_head"]
    theta, scaling = _rope_settings(config, path)
    return ModelConfig(
        architecture_name=name,
        architecture=HF_ARCHITECTURES[name],
        rope_theta=theta,
        rope_scaling=scaling,
        name=config.get("_name_or_path") or None,
        **values,
    )


def read_meta_params(folder: Path) -> ModelConfig:
    """The hyperparameters in a Meta folder's params.json (FFN width and vocab come from weights)."""
    path = folder / "params.json"
    params = read_json_object(path)
    values = _pick(params, META_PARAMS_KEYS, path)
    values["n_head_kv"] = values["n_head_kv"] or values["n_head"]
    if values["n_vocab"] is not None and values["n_vocab"] <= 0:
        values["n_vocab"] = None  # Llama 1/2 write -1: "whatever the tokenizer has"
    scaling: dict[str, Any] = {}
    if params.get("use_scaled_rope"):
        # Meta's reference code hard-codes Llama 3.1's scaling; params.json only says it is on.
        scaling = {
            "rope_type": "llama3",
            "factor": params.get("rope_scaling_factor", 8.0),
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
    return ModelConfig(
        architecture_name=META_ARCHITECTURE,
        architecture=LLAMA_META,
        head_dim=values["n_embd"] // values["n_head"],
        n_ff=None,
        tie_embeddings=False,
        rope_scaling=scaling,
        **values,
    )
