"""The tokenizer as llama.cpp wants it: tokens, scores, types, merges, special ids, chat template.

Two kinds: SentencePiece (`tokenizer.model`, Llama 1/2, Mistral, TinyLlama) becomes llama.cpp's
"llama" tokenizer; byte-level BPE (`tokenizer.json`, Llama 3, SmolLM) becomes its "gpt2"
tokenizer with a named pre-tokenizer. Special ids, add-bos/eos, merges and the chat template come
from gguf's SpecialVocab, which reads the same files without transformers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.model_config import read_json_object
from llamadesk.convert.pretokenizers import describe, known_names, llama_cpp_pre_tokenizer
from llamadesk.convert.sentencepiece_model import read_sentencepiece_model

NORMAL, CONTROL, USER_DEFINED, UNUSED = (
    gguf.TokenType.NORMAL,
    gguf.TokenType.CONTROL,
    gguf.TokenType.USER_DEFINED,
    gguf.TokenType.UNUSED,
)


@dataclass
class Vocabulary:
    """Everything the GGUF's tokenizer.* keys hold."""

    model: str  # llama.cpp tokenizer kind: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    pre: str
    tokens: list[str | bytes]
    types: list[int]
    scores: list[float] | None
    special: gguf.SpecialVocab
    add_space_prefix: bool | None = None
    source_files: list[Path] = field(default_factory=list)

    def add_to(self, writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        writer.add_token_types(self.types)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        self.special.add_to_gguf(writer, quiet=True)


def _pad(tokens: list, types: list, scores: list | None, n_vocab: int | None, source: Path) -> None:
    """Fill the model's unused embedding rows with placeholder tokens, as llama.cpp expects."""
    if n_vocab is None:
        return
    if len(tokens) > n_vocab:
        raise BadInputError(
            f"{source}: the tokenizer has {len(tokens)} tokens but the model only {n_vocab}; "
            "they do not belong together"
        )
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]")
        types.append(UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def _special_vocab(folder: Path, n_vocab: int, merges: bool) -> gguf.SpecialVocab:
    # gguf logs its guesses about unusual templates as warnings meant for its developers.
    logging.getLogger("gguf").setLevel(logging.ERROR)
    try:
        return gguf.SpecialVocab(folder, load_merges=merges, n_vocab=n_vocab)
    except (ValueError, KeyError, TypeError) as err:
        raise BadInputError(f"{folder}: tokenizer_config.json or tokenizer.json is malformed ({err})") from None


def _sentencepiece_vocabulary(folder: Path, n_vocab: int | None) -> Vocabulary:
    path = folder / "tokenizer.model"
    model = read_sentencepiece_model(path)
    if model.model_type != "bpe":
        raise BadInputError(
            f"{path}: a SentencePiece {model.model_type} model; llama.cpp's LLaMA tokenizer needs a BPE one"
        )
    if model.normalization != "identity" or model.remove_extra_whitespaces:
        # llama.cpp's LLaMA tokenizer applies no normalization; converting anyway would give a
        # GGUF that silently tokenizes some text (newlines, full-width characters) differently.
        raise BadInputError(
            f"{path}: the SentencePiece model normalizes text ({model.normalization}"
            f"{', collapsing whitespace' if model.remove_extra_whitespaces else ''}), which llama.cpp does not do; "
            "llamadesk converts LLaMA-style tokenizers (identity normalization)"
        )
    tokens: list[str | bytes] = [piece for piece, _, _ in model.pieces]
    scores = [score for _, score, _ in model.pieces]
    types = [kind for _, _, kind in model.pieces]
    if (folder / "tokenizer.json").is_file():
        # Tokens added on top of the SentencePiece model (fine-tunes add chat markers this way).
        for added in sorted(read_json_object(folder / "tokenizer.json").get("added_tokens", []), key=lambda a: a["id"]):
            if added["id"] >= len(tokens):
                if added["id"] != len(tokens):
                    raise BadInputError(f"{folder / 'tokenizer.json'}: added token ids are not contiguous")
                tokens.append(added["content"].encode("utf-8"))
                scores.append(-1000.0)
                types.append(CONTROL if added.get("special") else USER_DEFINED)
    _pad(tokens, types, scores, n_vocab, path)
    special = _special_vocab(folder, len(tokens), merges=False)
    for kind, token_id in (("unk", model.unk_id), ("bos", model.bos_id), ("eos", model.eos_id), ("pad", model.pad_id)):
        if token_id >= 0 and kind not in special.special_token_ids:
            special.special_token_ids[kind] = token_id
    special.add_special_token.setdefault("bos", True)  # SentencePiece LLaMA tokenizers start with <s>
    special.add_special_token.setdefault("eos", False)
    return Vocabulary("llama", "default", tokens, types, scores, special, model.add_dummy_prefix, [path])


def _bpe_vocabulary(
    folder: Path, tokenizer: dict[str, Any], n_vocab: int | None, pre_override: str | None
) -> Vocabulary:
    path = folder / "tokenizer.json"
    if tokenizer.get("normalizer"):
        raise BadInputError(f"{path}: a byte-level BPE tokenizer with a normalizer, which llama.cpp does not apply")
    pre = pre_override or llama_cpp_pre_tokenizer(tokenizer.get("pre_tokenizer"))
    if pre is None:
        raise BadInputError(
            f"{path}: its pre-tokenizer ({describe(tokenizer.get('pre_tokenizer'))}) is not one llamadesk recognises "
            f"({known_names()}); if you know which llama.cpp pre-tokenizer it is, pass --pre-tokenizer NAME, "
            "and check the result with --verify"
        )
    by_id: dict[int, str] = {token_id: text for text, token_id in tokenizer["model"]["vocab"].items()}
    added = {a["id"]: a for a in tokenizer.get("added_tokens", [])}
    for token_id, a in added.items():
        by_id.setdefault(token_id, a["content"])
    size = max(by_id) + 1
    tokens: list[str | bytes] = []
    types: list[int] = []
    for token_id in range(size):
        if token_id not in by_id:
            tokens.append(f"[PAD{token_id}]")
            types.append(UNUSED)
        elif token_id in added:
            tokens.append(by_id[token_id])
            types.append(CONTROL if added[token_id].get("special") else USER_DEFINED)
        else:
            tokens.append(by_id[token_id])
            types.append(NORMAL)
    _pad(tokens, types, None, n_vocab, path)
    special = _special_vocab(folder, len(tokens), merges=True)
    if not special.merges:
        raise BadInputError(f"{path}: a BPE tokenizer without merges; the file is incomplete")
    special.add_special_token.setdefault("bos", False)  # byte-level BPE adds nothing unless its template says so
    special.add_special_token.setdefault("eos", False)
    return Vocabulary("gpt2", pre, tokens, types, None, special, None, [path])


def read_vocabulary(folder: Path, n_vocab: int | None, pre_override: str | None = None) -> Vocabulary:
    """The tokenizer in `folder`: tokenizer.json if it is byte-level BPE, else tokenizer.model."""
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        tokenizer = read_json_object(tokenizer_json)
        model = tokenizer.get("model") or {}
        if model.get("type") == "BPE" and (tokenizer.get("decoder") or {}).get("type") == "ByteLevel":
            return _bpe_vocabulary(folder, tokenizer, n_vocab, pre_override)
    if (folder / "tokenizer.model").is_file():
        return _sentencepiece_vocabulary(folder, n_vocab)
    if tokenizer_json.is_file():
        raise BadInputError(
            f"{tokenizer_json}: a {model.get('type', 'unknown')} tokenizer without tokenizer.model; llamadesk converts "
            "byte-level BPE tokenizer.json files and SentencePiece tokenizer.model files"
        )
    raise BadInputError(
        f"{folder}: no tokenizer found (tokenizer.json or tokenizer.model); copy it next to the weights"
    )
