"""The tokenizer as llama.cpp wants it: tokens, scores, types, merges, special ids, chat template.

Two kinds: SentencePiece (`tokenizer.model`, Llama 1/2, Mistral, TinyLlama) becomes llama.cpp's
"llama" tokenizer; byte-level BPE (`tokenizer.json`, Llama 3, SmolLM) becomes its "gpt2"
tokenizer with a named pre-tokenizer. Special ids, add-bos/eos, merges and the chat template come
from gguf's SpecialVocab, which reads the same files without transformers (ids it finds none for
from generation_config.json, see generation_config.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_requirements import (
    BYTE_FALLBACK_TOKENIZERS,
    duplicate_token,
    llama_cpp_token_texts,
    missing_byte_token,
)
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.value_ranges import shown
from llamadesk.convert.generation_config import fill_unset_special_ids
from llamadesk.convert.optional_files import optional_file
from llamadesk.convert.pretokenizers import check_pre_tokenizer_name, describe, known_names, llama_cpp_pre_tokenizer
from llamadesk.convert.sentencepiece_model import read_sentencepiece_model

# The largest tokenizer.json files (Gemma's, 256k tokens) are ~35 MB.
MAX_TOKENIZER_BYTES = 64 * 1024**2
MAX_EXTRA_TEMPLATES = 64
# Qwen's tokenizer.json asks for Unicode NFC first. llama.cpp applies no normalizer, so the two
# differ only on text that is not already NFC (decomposed accents, rare in practice); llama.cpp's
# own converter accepts it the same way. Any other normalizer changes common text and is refused.
ACCEPTED_BPE_NORMALIZERS = ({"type": "NFC"},)

# The scores llama.cpp's converter gives SentencePiece rows without a piece, and added tokens.
PLACEHOLDER_SCORE, ADDED_SCORE = -10000.0, -1000.0
# Added tokens llama.cpp's converter writes as control tokens even where the tokenizer calls them
# not special (DeepSeek-Coder's <pad>, Gemma's <mask>); see looks_special for the patterns.
SPECIAL_LOOKING_TOKENS = ("<pad>", "<mask>", "<2mass>", "[@BOS@]")

NORMAL, CONTROL, USER_DEFINED, UNUSED, BYTE = (
    gguf.TokenType.NORMAL,
    gguf.TokenType.CONTROL,
    gguf.TokenType.USER_DEFINED,
    gguf.TokenType.UNUSED,
    gguf.TokenType.BYTE,
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


def _as_bytes(token: str | bytes) -> bytes:
    return token.encode("utf-8") if isinstance(token, str) else token


def _placeholder(token_id: int, taken: set[bytes]) -> str:
    """A name for an id without a token that no real token has: a tokenizer may itself hold a
    "[PAD5]", and llama.cpp refuses a vocabulary with a token twice."""
    name, n = f"[PAD{token_id}]", 0
    while name.encode() in taken:
        n += 1
        name = f"[PAD{token_id}_{n}]"
    return name


def _pad(tokens: list, types: list, scores: list | None, n_vocab: int, source: Path) -> None:
    """Fill the model's unused embedding rows with placeholder tokens, as llama.cpp expects."""
    if len(tokens) > n_vocab:
        raise BadInputError(
            f"{source}: the tokenizer has {len(tokens)} tokens but the model only {n_vocab}; "
            "they do not belong together"
        )
    taken = set(map(_as_bytes, tokens)) if len(tokens) < n_vocab else set()
    for i in range(len(tokens), n_vocab):
        tokens.append(_placeholder(i, taken))
        types.append(UNUSED)
        if scores is not None:
            scores.append(PLACEHOLDER_SCORE)


def looks_special(text: str) -> bool:
    """Whether llama.cpp's converter (does_token_look_special) makes an added token a control one
    whatever its `special` flag: Qwen2.5 marks <|fim_prefix|> not special, Gemma <unused0>."""
    return (
        text in SPECIAL_LOOKING_TOKENS
        or (text.startswith("<|") and text.endswith("|>"))
        or (text.startswith("<｜") and text.endswith("｜>"))  # DeepSeek's full-width bars
        or (text.startswith("<unused") and text.endswith(">"))
    )


def added_token_type(text: str, special: bool) -> tuple[str, int]:
    """An added token's text and type as llama.cpp's converter writes them. A user-defined token is
    matched in the raw text, so its "▁" (SentencePiece's space) is written as a space."""
    if special or looks_special(text):
        return text, CONTROL
    return text.replace("\u2581", " "), USER_DEFINED


def _is_text(value: Any) -> bool:
    """A str the GGUF can hold: JSON's "\\ud800" escapes make strings UTF-8 cannot encode."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _section(tokenizer: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """A part of tokenizer.json that must be an object when present ("model", "decoder")."""
    value = tokenizer.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInputError(f"{path}: '{key}' must be an object, not {shown(value)}; the tokenizer is damaged")
    return value


def _added_tokens(tokenizer: dict[str, Any], path: Path, n_vocab: int) -> list[dict[str, Any]]:
    """tokenizer.json's added tokens, each checked: an id below n_vocab, text content, a boolean `special`."""
    added = tokenizer.get("added_tokens") or []
    if not isinstance(added, list):
        raise BadInputError(f"{path}: 'added_tokens' must be a list, not {shown(added)}; the tokenizer is damaged")
    for token in added:
        if not (
            isinstance(token, dict)
            and type(token.get("id")) is int
            and 0 <= token["id"] < n_vocab
            and _is_text(token.get("content"))
            and isinstance(token.get("special", False), bool)
        ):
            raise BadInputError(
                f"{path}: added token {shown(token)} is not {{id below {n_vocab}, content, special}}; "
                "the tokenizer is damaged or not for this model"
            )
    return added


def _config_added_tokens(folder: Path, n_vocab: int) -> dict[int, dict[str, Any]]:
    """tokenizer_config.json's `added_tokens_decoder` (id -> {content, special}), each entry checked.

    SentencePiece models such as Gemma's mark their chat markers (<start_of_turn>) as special here
    only; the model file itself calls them ordinary pieces. An id past the model's rows is left
    out, as llama.cpp's converter leaves it (with a warning): Llama 2 fine-tunes saved by newer
    transformers list their <pad> 32000 here beside 32,000 rows.
    """
    path = folder / "tokenizer_config.json"
    if not optional_file(path):
        return {}
    decoder = read_json_object(path, "tokenizer config", max_bytes=MAX_TOKENIZER_BYTES).get("added_tokens_decoder")
    if decoder is None:
        return {}
    if not isinstance(decoder, dict):
        raise BadInputError(f"{path}: 'added_tokens_decoder' must be an object, not {shown(decoder)}")
    added = {}
    for key, token in decoder.items():
        token_id = int(key) if key.isdecimal() and len(key) <= 10 else -1
        if not (
            0 <= token_id
            and isinstance(token, dict)
            and _is_text(token.get("content"))
            and isinstance(token.get("special", False), bool)
        ):
            raise BadInputError(
                f"{path}: added token {shown(key)}: {shown(token)} is not {{id: content, special}}; "
                "the tokenizer config is damaged or not for this model"
            )
        if token_id < n_vocab:
            added[token_id] = token
    return added


def _json_added_tokens(folder: Path, n_vocab: int) -> dict[int, str]:
    """added_tokens.json (content -> id), each entry checked, as id -> content.

    Older Llama-2 and Mistral fine-tunes saved with a slow tokenizer name their new tokens
    (<|im_start|>) only here; llama.cpp's converter and transformers read them as user-defined.
    An id past the model's rows is left out, as llama.cpp's converter leaves it (with a warning):
    Llama 2 checkpoints (NousResearch's, WizardLM's and their fine-tunes) ship {"<pad>": 32000}
    beside 32,000 rows, a token the model has no row for; refused, they converted no more.
    """
    path = folder / "added_tokens.json"
    if not optional_file(path):
        return {}
    added = {}
    for content, token_id in read_json_object(path, "added tokens", max_bytes=MAX_TOKENIZER_BYTES).items():
        if not (_is_text(content) and type(token_id) is int and token_id >= 0):
            raise BadInputError(
                f"{path}: added token {shown(content)}: {shown(token_id)} is not {{content: id}}; "
                "the file is damaged or not for this model"
            )
        if token_id < n_vocab:
            added[token_id] = content
    return added


def _checked_files(folder: Path) -> None:
    """Check the files gguf.SpecialVocab reads that llamadesk has not read itself, before it does.

    SpecialVocab parses them with json.load and open().read() without limits; config.json and
    tokenizer.json were already read through read_json_object.
    """
    for name, what in (("tokenizer_config.json", "tokenizer config"), ("chat_template.json", "chat template")):
        if optional_file(folder / name):
            read_json_object(folder / name, what, max_bytes=MAX_TOKENIZER_BYTES)
    # SpecialVocab's json.load fails on a byte-order mark, and it would say so of the wrong file.
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json"):
        path = folder / name
        if path.is_file():
            with path.open("rb") as file:
                if file.read(3) == b"\xef\xbb\xbf":
                    raise BadInputError(f"{path} starts with a UTF-8 byte-order mark; save it as UTF-8 without one")
    texts = [folder / "chat_template.jinja", folder / "merges.txt"]
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        found = sorted(extra.glob("*.jinja"))[: MAX_EXTRA_TEMPLATES + 1]
        if len(found) > MAX_EXTRA_TEMPLATES:
            raise BadInputError(f"{extra}: more than {MAX_EXTRA_TEMPLATES} chat templates; the folder is damaged")
        # SpecialVocab opens every *.jinja there without asking what it is: a FIFO would block it
        # forever, a link to /dev/zero read without end, a folder raise.
        for template in found:
            if not template.is_file():
                raise BadInputError(f"{template} is not a regular file; remove it or put the template's text there")
        texts += found
    for text in texts:
        if optional_file(text) and text.stat().st_size > MAX_TOKENIZER_BYTES:
            raise BadInputError(f"{text}: larger than {format_bytes(MAX_TOKENIZER_BYTES)}; the file is damaged")


def _checked_special(special: gguf.SpecialVocab, folder: Path, n_tokens: int) -> gguf.SpecialVocab:
    """What SpecialVocab found, checked for what the GGUF writer needs (it trusts whatever it is given)."""
    if not all(_is_text(m) for m in special.merges):
        raise BadInputError(f"{folder}: the tokenizer's merges are not all text; tokenizer.json is damaged")
    for kind, token_id in special.special_token_ids.items():
        if type(token_id) is not int or not 0 <= token_id < n_tokens:
            raise BadInputError(f"{folder}: the {kind} token id {shown(token_id)} is not among the {n_tokens} tokens")
    template = special.chat_template
    named = isinstance(template, list) and all(
        isinstance(t, dict) and _is_text(t.get("name", "")) and (t.get("template") is None or _is_text(t["template"]))
        for t in template
    )
    if not (template is None or _is_text(template) or named):
        raise BadInputError(f"{folder}: the chat template is neither text nor a list of named templates")
    return special


def _special_vocab(folder: Path, n_vocab: int, merges: bool) -> gguf.SpecialVocab:
    _checked_files(folder)
    # gguf logs its guesses about unusual templates as warnings meant for its developers.
    logging.getLogger("gguf").setLevel(logging.ERROR)
    try:
        special = gguf.SpecialVocab(folder, load_merges=merges, n_vocab=n_vocab)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        # SpecialVocab indexes and .get()s whatever structure the files hold; on a damaged file
        # these are what it raises (ValueError includes JSON and UTF-8 decoding errors).
        raise BadInputError(f"{folder}: tokenizer_config.json or tokenizer.json is malformed ({err})") from None
    special = _checked_special(special, folder, n_vocab)
    fill_unset_special_ids(special.special_token_ids, folder, n_vocab)
    return special


def _sentencepiece_added_tokens(folder: Path, n_pieces: int, n_vocab: int) -> dict[int, tuple[str, int]]:
    """Tokens added on top of a SentencePiece model (id -> text, type), later files overriding
    earlier ones as in llama.cpp's converter: tokenizer.json's past the pieces (fine-tunes add chat
    markers this way), added_tokens.json's, then tokenizer_config.json's `added_tokens_decoder`
    (where Gemma marks its chat markers special; its model file calls them ordinary pieces)."""
    added: dict[int, tuple[str, int]] = {}
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        tokenizer = read_json_object(tokenizer_json, "tokenizer", max_bytes=MAX_TOKENIZER_BYTES)
        for token in _added_tokens(tokenizer, tokenizer_json, n_vocab):
            if token["id"] >= n_pieces:
                added[token["id"]] = added_token_type(token["content"], token.get("special", False))
    for token_id, text in _json_added_tokens(folder, n_vocab).items():
        added[token_id] = (text, USER_DEFINED)  # llama.cpp's converter applies no other rule to these
    for token_id, token in _config_added_tokens(folder, n_vocab).items():
        added[token_id] = added_token_type(token["content"], token.get("special", False))
    return added


def _check_byte_pieces_kept(tokens: list, types: list, added: dict[int, tuple[str, int]], folder: Path) -> None:
    """Refuse an added token that takes a byte piece's id: llama.cpp then has no token for that
    byte and stops the program on text that needs it."""
    for token_id, (text, _) in sorted(added.items()):
        if token_id < len(tokens) and types[token_id] == BYTE:
            piece = _as_bytes(tokens[token_id]).decode("utf-8", errors="replace")
            if text != piece:
                raise BadInputError(
                    f"{folder}: added token {token_id} ({shown(text)}) replaces the byte piece {shown(piece)}, "
                    "which llama.cpp needs; added_tokens.json or tokenizer_config.json is damaged"
                )


def _place_added_tokens(tokens: list, types: list, scores: list, added: dict[int, tuple[str, int]]) -> None:
    """Put the added tokens at their ids, extending the list past the model's pieces; ids between
    them that nothing names get placeholders, as llama.cpp's converter gives them."""
    end = max(added, default=-1) + 1
    taken = set(map(_as_bytes, tokens)) | {text.encode("utf-8") for text, _ in added.values()}
    for token_id in range(len(tokens), end):
        tokens.append(_placeholder(token_id, taken))  # replaced below where an added token has the id
        types.append(UNUSED)
        scores.append(PLACEHOLDER_SCORE)
    for token_id, (text, kind) in added.items():
        tokens[token_id], types[token_id], scores[token_id] = text.encode("utf-8"), kind, ADDED_SCORE


def _sentencepiece_vocabulary(folder: Path, n_vocab: int) -> Vocabulary:
    path = folder / "tokenizer.model"
    model = read_sentencepiece_model(path, max_pieces=n_vocab)
    if model.model_type != "bpe":
        raise BadInputError(
            f"{path}: a SentencePiece {model.model_type} model; llama.cpp's LLaMA tokenizer needs a BPE one"
        )
    if model.normalization != "identity" or model.remove_extra_whitespaces:
        # llama.cpp's LLaMA tokenizer applies no normalization; converting anyway would give a
        # GGUF that silently tokenizes some text (newlines, full-width characters) differently.
        raise BadInputError(
            f"{path}: the SentencePiece model normalizes text ({shown(model.normalization)}"
            f"{', collapsing whitespace' if model.remove_extra_whitespaces else ''}), which llama.cpp does not do; "
            "llamadesk converts LLaMA-style tokenizers (identity normalization)"
        )
    tokens: list[str | bytes] = [piece for piece, _, _ in model.pieces]
    scores = [score for _, score, _ in model.pieces]
    # A piece the model file calls user-defined is written as an ordinary one, as llama.cpp's own
    # converter does: llama.cpp matches user-defined tokens in the raw text, where a piece's "▁"
    # never appears. Tokens the tokenizer config lists (below) get their own types.
    types = [NORMAL if kind == USER_DEFINED else kind for _, _, kind in model.pieces]
    for kind, token_id in (("unk", model.unk_id), ("bos", model.bos_id), ("eos", model.eos_id), ("pad", model.pad_id)):
        if token_id >= len(tokens):
            raise BadInputError(
                f"{path}: its {kind} id {token_id} is not among its {len(tokens)} pieces; it is damaged"
            )
    added = _sentencepiece_added_tokens(folder, len(tokens), n_vocab)
    _check_byte_pieces_kept(tokens, types, added, folder)
    _place_added_tokens(tokens, types, scores, added)
    _pad(tokens, types, scores, n_vocab, path)
    special = _special_vocab(folder, len(tokens), merges=False)
    for kind, token_id in (("unk", model.unk_id), ("bos", model.bos_id), ("eos", model.eos_id), ("pad", model.pad_id)):
        if token_id >= 0 and kind not in special.special_token_ids:
            special.special_token_ids[kind] = token_id
    special.add_special_token.setdefault("bos", True)  # SentencePiece LLaMA tokenizers start with <s>
    special.add_special_token.setdefault("eos", False)
    return Vocabulary("llama", "default", tokens, types, scores, special, model.add_dummy_prefix, [path])


def _bpe_vocabulary(folder: Path, tokenizer: dict[str, Any], n_vocab: int, pre_override: str | None) -> Vocabulary:
    path = folder / "tokenizer.json"
    normalizer = tokenizer.get("normalizer")
    if normalizer and normalizer not in ACCEPTED_BPE_NORMALIZERS:
        raise BadInputError(f"{path}: a byte-level BPE tokenizer with a normalizer, which llama.cpp does not apply")
    pre = pre_override or llama_cpp_pre_tokenizer(tokenizer.get("pre_tokenizer"))
    if pre is None:
        raise BadInputError(
            f"{path}: its pre-tokenizer ({describe(tokenizer.get('pre_tokenizer'))}) is not one llamadesk recognises "
            f"({known_names()}); if you know which llama.cpp pre-tokenizer it is, pass --pre-tokenizer NAME, "
            "and check the result with --verify"
        )
    vocab = _section(tokenizer, "model", path).get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise BadInputError(f"{path}: the BPE model has no 'vocab' object; the tokenizer is damaged")
    by_id: dict[int, str] = {}
    for text, token_id in vocab.items():
        # Every id is checked against the model's rows before any list that long is built.
        if type(token_id) is not int or not 0 <= token_id < n_vocab or not _is_text(text):
            raise BadInputError(
                f"{path}: token {shown(text)} has id {shown(token_id)}, not one of the model's {n_vocab} rows; "
                "the tokenizer is damaged or not for this model"
            )
        if token_id in by_id:  # one of them would be lost: the model could never read or write it
            raise BadInputError(
                f"{path}: tokens {shown(by_id[token_id])} and {shown(text)} both have id {token_id}; "
                "the tokenizer is damaged"
            )
        by_id[token_id] = text
    added = {a["id"]: a for a in _added_tokens(tokenizer, path, n_vocab)}
    for token_id, a in added.items():
        by_id.setdefault(token_id, a["content"])
    size = max(by_id) + 1
    tokens: list[str | bytes] = []
    types: list[int] = []
    taken = {text.encode("utf-8") for text in by_id.values()} if len(by_id) < size else set()
    for token_id in range(size):
        if token_id not in by_id:
            tokens.append(_placeholder(token_id, taken))
            types.append(UNUSED)
        elif token_id in added:
            text, kind = added_token_type(by_id[token_id], added[token_id].get("special", False))
            tokens.append(text)
            types.append(kind)
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


def _check_llama_cpp_accepts(vocabulary: Vocabulary, folder: Path) -> None:
    """Refuse a token list llama.cpp would refuse (or abort on), as `info` and `chat` would refuse
    the GGUF: a converted file that nothing can load is no use to anyone."""
    raw = [_as_bytes(token) for token in vocabulary.tokens]
    texts = llama_cpp_token_texts(raw)
    twice = duplicate_token(texts)
    if twice is not None:
        text, first, second = twice
        cut = " (llama.cpp reads a token up to its first zero byte)" if b"\0" in raw[first] + raw[second] else ""
        raise BadInputError(
            f"{folder}: the tokenizer has the token {shown(text.decode('utf-8', errors='replace'))} twice, "
            f"ids {first} and {second}{cut}; llama.cpp cannot load that, so tokenizer.json or "
            "tokenizer_config.json is damaged"
        )


def check_byte_pieces(vocabulary: Vocabulary, folder: Path) -> None:
    """Refuse a SentencePiece tokenizer without a piece for every byte (trained without byte
    fallback), as `info` and `chat` refuse the GGUF: llama.cpp stops the program on text that
    needs a missing one. Kept apart from read_vocabulary so small test tokenizers need no bytes."""
    if vocabulary.model not in BYTE_FALLBACK_TOKENIZERS:
        return
    byte = missing_byte_token(set(llama_cpp_token_texts([_as_bytes(token) for token in vocabulary.tokens])))
    if byte is not None:
        raise BadInputError(
            f"{folder / 'tokenizer.model'} has no piece for the byte 0x{byte:02X} (it was trained without "
            "byte fallback); llama.cpp needs all 256 byte pieces and stops the program on text that needs "
            "a missing one, so llamadesk cannot convert this tokenizer"
        )


def read_vocabulary(folder: Path, n_vocab: int, pre_override: str | None = None) -> Vocabulary:
    """The tokenizer in `folder`: tokenizer.json if it is byte-level BPE, else tokenizer.model.

    `n_vocab` is the model's vocabulary size, already checked against its embedding: every token id
    must be below it, and the token list is padded up to it. A token list llama.cpp would refuse
    (a token twice) is refused here, before anything is written; check_byte_pieces checks the rest.
    """
    vocabulary = _read_vocabulary(folder, n_vocab, pre_override)
    _check_llama_cpp_accepts(vocabulary, folder)
    return vocabulary


def _read_vocabulary(folder: Path, n_vocab: int, pre_override: str | None) -> Vocabulary:
    if pre_override is not None:
        check_pre_tokenizer_name(pre_override)
    tokenizer_json = folder / "tokenizer.json"
    model: dict[str, Any] = {}
    if optional_file(tokenizer_json):
        tokenizer = read_json_object(tokenizer_json, "tokenizer", max_bytes=MAX_TOKENIZER_BYTES)
        model = _section(tokenizer, "model", tokenizer_json)
        decoder = _section(tokenizer, "decoder", tokenizer_json)
        if model.get("type") == "BPE" and decoder.get("type") == "ByteLevel":
            return _bpe_vocabulary(folder, tokenizer, n_vocab, pre_override)
    if optional_file(folder / "tokenizer.model"):
        if pre_override is not None:  # a SentencePiece model splits text itself: the name would be ignored
            raise BadInputError(
                f"{folder}: --pre-tokenizer is for byte-level BPE tokenizers (tokenizer.json); "
                "this one is SentencePiece (tokenizer.model): leave it out"
            )
        return _sentencepiece_vocabulary(folder, n_vocab)
    if tokenizer_json.is_file():
        raise BadInputError(
            f"{tokenizer_json}: a {shown(model.get('type', 'unknown'))} tokenizer without tokenizer.model; llamadesk "
            "converts byte-level BPE tokenizer.json files and SentencePiece tokenizer.model files"
        )
    raise BadInputError(
        f"{folder}: no tokenizer found (tokenizer.json or tokenizer.model); copy it next to the weights"
    )
