"""Special-token ids from generation_config.json, where the tokenizer files name none.

llama.cpp's converter (gguf's SpecialVocab) takes bos/eos/pad from tokenizer_config.json and
config.json and never reads generation_config.json; llamadesk writes the same ids, so its GGUFs
agree with llama.cpp's. Only an id those files leave unset is taken from generation_config.json,
as transformers' generate() would use it. An end-of-sequence *list* there (instruction models
stop on several tokens: Qwen2.5's <|im_end|> and <|endoftext|>, Gemma 3's <eos> and
<end_of_turn>) needs nothing written: llama.cpp treats those tokens as end-of-generation by their
text when it loads the vocabulary; the first id stands for eos when none is set.
"""

from __future__ import annotations

from pathlib import Path

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.value_ranges import shown
from llamadesk.convert.optional_files import optional_file

MAX_GENERATION_CONFIG_BYTES = 1024**2  # real ones are a few hundred bytes
SPECIAL_KINDS = ("bos", "eos", "pad")


def _ids(value: object, key: str, path: Path, n_tokens: int) -> list[int]:
    """A token id or a list of them (eos may be either), each one of the vocabulary's ids."""
    values = value if isinstance(value, list) else [value]
    for token_id in values:
        if type(token_id) is not int or not 0 <= token_id < n_tokens:
            raise BadInputError(
                f"{path}: '{key}' {shown(value)} is not a token id below {n_tokens} (or a list of them); "
                "the generation config is damaged or not for this tokenizer"
            )
    return values


def generation_token_ids(folder: Path, n_tokens: int) -> dict[str, list[int]]:
    """kind ("bos", "eos", "pad") -> the ids generation_config.json gives it; {} without that file."""
    path = folder / "generation_config.json"
    if not optional_file(path):
        return {}
    config = read_json_object(path, "generation config", max_bytes=MAX_GENERATION_CONFIG_BYTES)
    found = {}
    for kind in SPECIAL_KINDS:
        key = f"{kind}_token_id"
        if config.get(key) is not None and config[key] != []:
            found[kind] = _ids(config[key], key, path, n_tokens)
    return found


def fill_unset_special_ids(special_ids: dict[str, int], folder: Path, n_tokens: int) -> None:
    """Set each bos/eos/pad id the tokenizer files left unset from generation_config.json (its first id)."""
    for kind, ids in generation_token_ids(folder, n_tokens).items():
        special_ids.setdefault(kind, ids[0])
