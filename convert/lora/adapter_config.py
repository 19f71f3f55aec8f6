"""Read a PEFT adapter_config.json into a checked `LoraConfig`, refusing what llama.cpp cannot apply.

llama.cpp applies `scale * alpha / rank * B·A` to a linear weight; PEFT variants that change that
formula (DoRA's magnitudes, trained biases, whole modules saved beside the adapter, layer
replication) would silently give another model, so they are refused with a line that says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.value_ranges import ValueRange, shown
from llamadesk.convert.lora.pattern_keys import check_pattern_key, pattern_value

CONFIG_NAME = "adapter_config.json"
RANK = ValueRange(1, 65536, whole=True)
ALPHA = ValueRange(1e-6, 1e6)
MAX_PATTERNS = 4096
# key -> (value that means "off", what turning it on would need)
UNSUPPORTED_WHEN_SET: dict[str, tuple[object, str]] = {
    "use_dora": (False, "DoRA adapters (use_dora) have magnitude vectors llama.cpp does not apply"),
    "bias": ("none", "adapters that train biases (bias) change weights llama.cpp's LoRA does not touch"),
    "lora_bias": (False, "adapters with a LoRA bias (lora_bias) are not applied by llama.cpp"),
    "modules_to_save": (None, "adapters that save whole modules (modules_to_save) are full fine-tunes of those"),
    "layer_replication": (None, "adapters with layer_replication change the model's depth"),
    "alora_invocation_tokens": (None, "activated LoRA (alora_invocation_tokens) adapters switch on mid-prompt"),
    "target_parameters": (None, "adapters of raw parameters (target_parameters) are not linear-layer adapters"),
    "trainable_token_indices": (None, "adapters that train token embeddings (trainable_token_indices) change rows"),
    "fan_in_fan_out": (False, "fan_in_fan_out adapters are for GPT-2 style Conv1D layers, not LLaMA's"),
    "use_bdlora": (None, "block-diagonal LoRA (use_bdlora) adapters have A and B of other shapes than LoRA's"),
    "kasa_config": (None, "KaSA adapters (kasa_config) scale each rank with a vector llama.cpp does not apply"),
    "use_qalora": (False, "QA-LoRA adapters (use_qalora) pool their inputs, which llama.cpp's LoRA does not"),
}
# init_lora_weights values whose adapters only work on a changed base: peft subtracts their
# starting A and B from the base weights (PiSSA, OLoRA, CorDA, LoRA-GA) or replaces them with a
# quantized residual (LoftQ), and a checkpoint of the original base gives a different model.
# peft turns such an adapter into a plain LoRA of the original base when it saves it with
# `path_initial_model_for_weight_conversion`.
BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")


@dataclass(frozen=True)
class LoraConfig:
    """What an adapter's config says about its ranks and scaling."""

    rank: int
    alpha: float
    use_rslora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    base_model: str | None = None  # base_model_name_or_path: a Hub repo id or the trainer's path

    def module_rank(self, module: str) -> int:
        return int(pattern_value(self.rank_pattern, module, self.rank))  # type: ignore[arg-type]

    def module_alpha(self, module: str) -> float:
        return float(pattern_value(self.alpha_pattern, module, self.alpha))  # type: ignore[arg-type]

    def module_scale(self, module: str) -> float:
        """PEFT's scaling for `module`: alpha / rank, or alpha / sqrt(rank) with rsLoRA."""
        rank = self.module_rank(module)
        return self.module_alpha(module) / (math.sqrt(rank) if self.use_rslora else rank)


def _patterns(raw: object, source: str, name: str, number: ValueRange) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_PATTERNS:
        raise BadInputError(f"{source}: '{name}' must be an object of module names to numbers, not {shown(raw)}")
    return {
        check_pattern_key(k, source, name): number.check(v, f"{source}: {name}[{shown(k)}]") for k, v in raw.items()
    }


def read_adapter_config(folder: Path) -> LoraConfig:
    """The checked LoRA settings of the PEFT adapter in `folder`."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise BadInputError(f"{folder}: no {CONFIG_NAME}; give the folder PEFT's save_pretrained wrote")
    raw = read_json_object(path, "adapter config")
    source = str(path)
    peft_type = raw.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise BadInputError(f"{source}: a {shown(peft_type)} adapter; llamadesk converts LoRA adapters only")
    for key, (off, why) in UNSUPPORTED_WHEN_SET.items():
        value = raw.get(key, off)
        if value != off and value not in (None, [], False):
            raise BadInputError(f"{source}: {why}; llamadesk cannot convert it ({key} is {shown(value)})")
    init = raw.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(BASE_CHANGING_INITS):
        raise BadInputError(
            f"{source}: a {shown(init)} adapter (init_lora_weights) works only on the base peft changed "
            "when it made it; save it with peft's save_pretrained(..., "
            "path_initial_model_for_weight_conversion=...) to get a plain LoRA of the original base, and convert that"
        )
    rslora = raw.get("use_rslora", False)
    if type(rslora) is not bool:
        raise BadInputError(f"{source}: 'use_rslora' must be true or false, not {shown(rslora)}")
    base = raw.get("base_model_name_or_path")
    if base is not None and not (isinstance(base, str) and base.isprintable() and len(base) <= 1000):
        raise BadInputError(f"{source}: 'base_model_name_or_path' must be a name, not {shown(base)}")
    return LoraConfig(
        rank=int(RANK.check(raw.get("r", 8), f"{source}: 'r'")),
        alpha=float(ALPHA.check(raw.get("lora_alpha", 8), f"{source}: 'lora_alpha'")),
        use_rslora=rslora,
        rank_pattern=_patterns(raw.get("rank_pattern"), source, "rank_pattern", RANK),
        alpha_pattern=_patterns(raw.get("alpha_pattern"), source, "alpha_pattern", ALPHA),
        base_model=base or None,
    )
