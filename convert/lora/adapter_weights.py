"""An adapter's weight file, paired up: for each adapted module its A (rank x in) and B (out x rank).

PEFT's save_pretrained writes `base_model.model.<module>.lora_A.weight` and `...lora_B.weight`
(safetensors, or pytorch's adapter_model.bin in older versions). Anything else in the file (DoRA
magnitudes, embedding adapters, saved whole modules) is refused: llama.cpp would not apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.safetensors_reader import read_safetensors
from llamadesk.convert.tensor_source import TensorSource
from llamadesk.convert.torch_zip_reader import read_torch_zip

PREFIX = "base_model.model."
HALVES = {".lora_A.weight": "a", ".lora_B.weight": "b"}
WEIGHT_FILES = (("adapter_model.safetensors", read_safetensors), ("adapter_model.bin", read_torch_zip))
BASE_COPY = ".base_layer.weight"
MAX_PAIRS = 100_000  # a 512-layer model with every linear adapted has ~3,600


@dataclass(frozen=True)
class LoraPair:
    """One adapted module: `module` is its name in the model (model.layers.0.self_attn.q_proj)."""

    module: str
    a: TensorSource
    b: TensorSource

    @property
    def rank(self) -> int:
        return self.a.shape[0]


def _why_not_lora(name: str) -> str:
    if "lora_embedding" in name:
        return "an embedding adapter (target embed_tokens); llamadesk converts adapters of linear layers"
    if "lora_magnitude_vector" in name:
        return "a DoRA magnitude; llama.cpp does not apply DoRA"
    return "not a lora_A/lora_B weight (a saved whole module or a bias?); llama.cpp would not apply it"


def read_adapter_pairs(folder: Path) -> list[LoraPair]:
    """The A/B pairs of the adapter in `folder`, each checked to be two matrices of one rank."""
    found = next(((folder / name, reader) for name, reader in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise BadInputError(f"{folder}: no adapter_model.safetensors or adapter_model.bin; the adapter is incomplete")
    path, reader = found
    halves: dict[str, dict[str, TensorSource]] = {}
    for tensor in reader(path):
        if tensor.name.endswith(BASE_COPY):
            continue  # the base's own weight, copied by PEFT when lm_head is targeted (it is unchanged)
        suffix = next((s for s in HALVES if tensor.name.endswith(s)), None)
        if suffix is None or not tensor.name.startswith(PREFIX):
            raise BadInputError(f"{path}: tensor {tensor.name} is {_why_not_lora(tensor.name)}")
        module = tensor.name[len(PREFIX) : -len(suffix)]
        halves.setdefault(module, {})[HALVES[suffix]] = tensor
    if not halves:
        raise BadInputError(f"{path}: holds no LoRA weights; the adapter is empty")
    if len(halves) > MAX_PAIRS:
        raise BadInputError(f"{path}: {len(halves)} adapted modules is more than any model has; the file is damaged")
    pairs = []
    for module, both in halves.items():
        if len(both) != 2:
            missing = "lora_B" if "a" in both else "lora_A"
            raise BadInputError(f"{path}: {module} has no {missing} weight; the adapter is incomplete")
        a, b = both["a"], both["b"]
        if len(a.shape) != 2 or len(b.shape) != 2 or 0 in a.shape or 0 in b.shape:
            raise BadInputError(
                f"{path}: {module}'s lora_A {list(a.shape)} and lora_B {list(b.shape)} are not two matrices"
            )
        if a.shape[0] != b.shape[1]:
            raise BadInputError(
                f"{path}: rank mismatch in {module}: lora_A has {a.shape[0]} rows but lora_B {b.shape[1]} columns"
            )
        pairs.append(LoraPair(module, a, b))
    return pairs
