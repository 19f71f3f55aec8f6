"""Reading a checkpoint's tokenizer for the GGUF: small tokenizer files written here (tokenizer.json
by hand, tokenizer.model with sentencepiece's own protobuf classes), each changed in one way."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from gguf import GGUFReader, GGUFWriter, TokenType
from sentencepiece import sentencepiece_model_pb2

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert import convert_checkpoint
from llamadesk.convert.vocabulary import (
    MAX_EXTRA_TEMPLATES,
    MAX_TOKENIZER_BYTES,
    Vocabulary,
    check_byte_pieces,
    read_vocabulary,
)
from tests.conftest import run_cli
from tests.fixtures.family_checkpoints import family_checkpoint
from tests.fixtures.gguf_comparison import gguf_fields
from tests.fixtures.reference_converter import reference_gguf

NORMAL, CONTROL, USER_DEFINED, UNUSED = TokenType.NORMAL, TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.UNUSED
N_VOCAB = 8


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")


def bpe_tokenizer(**changes: Any) -> dict[str, Any]:
    """A byte-level BPE tokenizer.json (GPT-2's pre-tokenizer): three tokens, one merge, two added."""
    tokenizer = {
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
        "added_tokens": [
            {"id": 3, "content": "<|end|>", "special": True},
            {"id": 5, "content": "<tool>", "special": False},
        ],
    }
    return {**tokenizer, **changes}


def bpe_folder(folder: Path, **changes: Any) -> Path:
    write_json(folder / "tokenizer.json", bpe_tokenizer(**changes))
    return folder


def sentencepiece_folder(
    folder: Path,
    model_type: int = sentencepiece_model_pb2.TrainerSpec.BPE,
    normalization: str = "identity",
    remove_extra_whitespaces: bool = False,
    bos_id: int = 1,
    byte_piece: bool = False,
) -> Path:
    """A LLaMA-style tokenizer.model: <unk> <s> </s>, three pieces (one user-defined), no normalization;
    with `byte_piece`, the byte piece <0x41> as id 6."""
    proto = sentencepiece_model_pb2.ModelProto()
    piece_type = sentencepiece_model_pb2.ModelProto.SentencePiece
    for text, score, kind in [
        ("<unk>", 0.0, piece_type.UNKNOWN),
        ("<s>", 0.0, piece_type.CONTROL),
        ("</s>", 0.0, piece_type.CONTROL),
        ("▁a", -1.0, piece_type.NORMAL),
        ("b", -2.0, piece_type.NORMAL),
        ("<x>", 0.0, piece_type.USER_DEFINED),
        *([("<0x41>", 0.0, piece_type.BYTE)] if byte_piece else []),
    ]:
        proto.pieces.add(piece=text, score=score, type=kind)
    proto.trainer_spec.model_type = model_type
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, bos_id, 2
    proto.normalizer_spec.name = normalization
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = remove_extra_whitespaces
    (folder / "tokenizer.model").write_bytes(proto.SerializeToString())
    return folder


def written_fields(vocabulary: Vocabulary, path: Path) -> dict[str, Any]:
    """The tokenizer.* keys `vocabulary` writes to a GGUF, read back by gguf's own reader."""
    writer = GGUFWriter(path, "llama")
    vocabulary.add_to(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return GGUFReader(path).fields


def refused(folder: Path, n_vocab: int = N_VOCAB, pre_override: str | None = None) -> str:
    with pytest.raises(BadInputError) as err:
        read_vocabulary(folder, n_vocab, pre_override)
    return str(err.value)


# --- byte-level BPE (tokenizer.json) ------------------------------------------------------------


def test_a_bpe_tokenizer_padded_to_the_model_and_written_to_a_gguf(tmp_path):
    folder = bpe_folder(tmp_path)
    write_json(folder / "tokenizer_config.json", {"eos_token": "<|end|>", "chat_template": "{{ messages }}"})
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert (vocabulary.model, vocabulary.pre, vocabulary.scores) == ("gpt2", "gpt-2", None)
    # id 4 is in neither the vocabulary nor the added tokens; 6 and 7 are rows the tokenizer does not use.
    assert vocabulary.tokens == ["a", "b", "ab", "<|end|>", "[PAD4]", "<tool>", "[PAD6]", "[PAD7]"]
    assert vocabulary.types == [NORMAL, NORMAL, NORMAL, CONTROL, UNUSED, USER_DEFINED, UNUSED, UNUSED]
    assert vocabulary.special.special_token_ids == {"eos": 3}
    assert vocabulary.special.add_special_token == {"bos": False, "eos": False}
    assert vocabulary.source_files == [folder / "tokenizer.json"]

    fields = written_fields(vocabulary, tmp_path / "vocab.gguf")
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    assert fields["tokenizer.ggml.tokens"].contents() == vocabulary.tokens
    assert fields["tokenizer.ggml.merges"].contents() == ["a b"]
    assert fields["tokenizer.ggml.eos_token_id"].contents() == 3
    assert fields["tokenizer.chat_template"].contents() == "{{ messages }}"
    assert "tokenizer.ggml.scores" not in fields and "tokenizer.ggml.add_space_prefix" not in fields


def test_nfc_is_the_one_normalizer_accepted(tmp_path):
    assert read_vocabulary(bpe_folder(tmp_path, normalizer={"type": "NFC"}), N_VOCAB).model == "gpt2"
    message = refused(bpe_folder(tmp_path, normalizer={"type": "Lowercase"}))
    assert message.endswith("a byte-level BPE tokenizer with a normalizer, which llama.cpp does not apply")


def test_an_unknown_pre_tokenizer_needs_a_name_given(tmp_path):
    folder = bpe_folder(tmp_path, pre_tokenizer={"type": "Whitespace"})
    message = refused(folder)
    assert "its pre-tokenizer (Whitespace) is not one llamadesk recognises (" in message
    assert "pass --pre-tokenizer NAME" in message
    assert read_vocabulary(folder, N_VOCAB, pre_override="llama3").pre == "llama3"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": "BPE"}, "'model' must be an object, not \"BPE\"; the tokenizer is damaged"),
        ({"decoder": ["ByteLevel"]}, "'decoder' must be an object, not [\"ByteLevel\"]; the tokenizer is damaged"),
        (
            {"model": {"type": "BPE", "vocab": {}, "merges": ["a b"]}},
            "the BPE model has no 'vocab' object; the tokenizer is damaged",
        ),
        (
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 8}, "merges": ["a b"]}},
            'token "b" has id 8, not one of the model\'s 8 rows; the tokenizer is damaged or not for this model',
        ),
        (
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": "1"}, "merges": ["a b"]}},
            'token "b" has id "1", not one of the model\'s 8 rows',
        ),
        (  # JSON can escape a lone surrogate, which UTF-8 (and so a GGUF) cannot hold: the JSON reader refuses it
            {"model": {"type": "BPE", "vocab": {"a": 0, "\ud800": 1}, "merges": ["a b"]}},
            "escape without its pair (half a character",
        ),
        (  # "(" was lost: the converted model could never read or write it
            {"model": {"type": "BPE", "vocab": {"a": 0, "(": 1, ")": 1}, "merges": ["a b"]}},
            'tokens "(" and ")" both have id 1; the tokenizer is damaged',
        ),
        ({"added_tokens": {"id": 3}}, "'added_tokens' must be a list, not {\"id\": 3}; the tokenizer is damaged"),
        (
            {"added_tokens": [{"id": 8, "content": "<|end|>"}]},
            'added token {"id": 8, "content": "<|end|>"} is not'
            " {id below 8, content, special}; "
            "the tokenizer is damaged or not for this model",
        ),
        (
            {"added_tokens": [{"id": 3, "content": "<|end|>", "special": "yes"}]},
            "is not {id below 8, content, special}",
        ),
        (
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}},
            "a BPE tokenizer without merges; the file is incomplete",
        ),
    ],
    ids=[
        "model-not-object",
        "decoder-not-object",
        "no-vocab",
        "id-beyond-model",
        "id-not-number",
        "token-not-text",
        "two-tokens-one-id",
        "added-not-list",
        "added-id-beyond-model",
        "added-special-not-bool",
        "no-merges",
    ],
)
def test_a_damaged_bpe_tokenizer_is_refused(tmp_path, changes, message):
    text = refused(bpe_folder(tmp_path, **changes))
    assert text.startswith(f"{tmp_path}") and message in text and "\n" not in text


def test_merges_found_in_merges_txt(tmp_path):
    folder = bpe_folder(tmp_path, model={"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}})
    (folder / "merges.txt").write_text("#version: 0.2\na b\n", encoding="utf-8")
    assert read_vocabulary(folder, N_VOCAB).special.merges == ["a b"]


@pytest.mark.parametrize(
    "model, message",
    [
        ({"type": "WordPiece", "vocab": {"a": 0}}, 'a "WordPiece" tokenizer without tokenizer.model'),
        ({"vocab": {"a": 0}}, 'a "unknown" tokenizer without tokenizer.model'),
    ],
)
def test_a_tokenizer_json_that_is_not_byte_level_bpe(tmp_path, model, message):
    text = refused(bpe_folder(tmp_path, model=model))
    assert text.startswith(f"{tmp_path / 'tokenizer.json'}: {message}; llamadesk converts byte-level BPE")


def test_a_folder_without_a_tokenizer(tmp_path):
    assert refused(tmp_path) == (
        f"{tmp_path}: no tokenizer found (tokenizer.json or tokenizer.model); copy it next to the weights"
    )


# --- what gguf's SpecialVocab reads, checked before and after ------------------------------------


@pytest.mark.parametrize(
    "files, message",
    [
        ({"config.json": {"bos_token_id": -1}}, "malformed (invalid value for special token type bos: -1)"),
        ({"config.json": {"bos_token_id": True}}, "the bos token id true is not among the 8 tokens"),
        (
            {"tokenizer.json": bpe_tokenizer(model={"type": "BPE", "vocab": {"a": 0}, "merges": [1]})},
            "tokenizer_config.json or tokenizer.json is malformed (Unknown tokenizer merges format)",
        ),
        (
            {"tokenizer.json": bpe_tokenizer(model={"type": "BPE", "vocab": {"a": 0}, "merges": ["a \ud800"]})},
            "escape without its pair (half a character, which no text can hold); the file is damaged",
        ),
        (
            {"tokenizer_config.json": {"chat_template": ["{{ messages }}"]}},
            "the chat template is neither text nor a list of named templates",
        ),
    ],
    ids=["negative-id", "bool-id", "merges-numbers", "merges-not-text", "template-list-of-text"],
)
def test_special_tokens_and_templates_are_checked(tmp_path, files, message):
    bpe_folder(tmp_path)
    for name, value in files.items():
        write_json(tmp_path / name, value)
    assert refused(tmp_path).endswith(message)


@pytest.mark.parametrize("name", ["tokenizer_config.json", "generation_config.json", "chat_template.jinja"])
@pytest.mark.parametrize("what", ["folder", "fifo", "broken-link", "link-to-itself", "link-to-a-device"])
def test_an_optional_tokenizer_file_that_is_not_a_file_is_refused_not_skipped(tmp_path, name, what):
    # A folder named tokenizer_config.json converted without the chat template, saying nothing.
    folder = bpe_folder(tmp_path)
    path = folder / name
    if what == "folder":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "broken-link":
        path.symlink_to(folder / "gone.json")
    elif what == "link-to-itself":
        path.symlink_to(path)
    else:
        path.symlink_to("/dev/zero")
    assert refused(folder) == (
        f"{path} is not a regular file (a folder, FIFO, device or broken link); put the file there or remove it"
    )


def test_named_chat_templates_and_generation_config_ids(tmp_path):
    folder = bpe_folder(tmp_path)
    (folder / "chat_template.jinja").write_text("{{ default }}", encoding="utf-8")
    (folder / "additional_chat_templates").mkdir()
    (folder / "additional_chat_templates" / "tool_use.jinja").write_text("{{ tools }}", encoding="utf-8")
    write_json(folder / "tokenizer_config.json", {"eos_token": "<|end|>"})
    write_json(folder / "generation_config.json", {"eos_token_id": [5, 3], "pad_token_id": 5})
    special = read_vocabulary(folder, N_VOCAB).special
    assert special.chat_template == [
        {"name": "default", "template": "{{ default }}"},
        {"name": "tool_use", "template": "{{ tools }}"},
    ]
    # eos comes from the tokenizer config; only pad, which it leaves unset, from generation_config.json.
    assert special.special_token_ids == {"eos": 3, "pad": 5}


def test_files_gguf_reads_without_limits_are_checked_first(tmp_path):
    folder = bpe_folder(tmp_path)
    (folder / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    assert refused(folder).startswith(f"{folder / 'tokenizer_config.json'}: ")
    (folder / "tokenizer_config.json").unlink()

    with (folder / "merges.txt").open("wb") as merges:  # sparse: no disk space
        merges.truncate(MAX_TOKENIZER_BYTES + 1)
    assert refused(folder) == f"{folder / 'merges.txt'}: larger than 64.0 MiB; the file is damaged"
    (folder / "merges.txt").unlink()

    extra = folder / "additional_chat_templates"
    extra.mkdir()
    for i in range(MAX_EXTRA_TEMPLATES + 1):
        (extra / f"t{i}.jinja").write_text("x", encoding="utf-8")
    assert refused(folder) == f"{extra}: more than {MAX_EXTRA_TEMPLATES} chat templates; the folder is damaged"


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_an_extra_chat_template_that_is_not_a_file_is_refused(tmp_path, kind):
    # gguf's SpecialVocab opens every *.jinja there: a FIFO blocked the conversion forever, a link
    # to /dev/zero read without end, a folder raised an internal error.
    folder = bpe_folder(tmp_path)
    (folder / "chat_template.jinja").write_text("{{ default }}", encoding="utf-8")
    extra = folder / "additional_chat_templates"
    extra.mkdir()
    template = extra / "tool_use.jinja"
    if kind == "fifo":
        os.mkfifo(template)
    elif kind == "device":
        template.symlink_to("/dev/zero")
    else:
        template.mkdir()
    assert refused(folder) == f"{template} is not a regular file; remove it or put the template's text there"


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json"])
def test_a_byte_order_mark_is_named_in_the_file_that_has_it(tmp_path, name):
    # gguf's json.load fails on it, and the message blamed the tokenizer files for config.json's.
    folder = bpe_folder(tmp_path)
    path = folder / name
    body = path.read_bytes() if path.exists() else b'{"eos_token": "<|end|>"}'
    path.write_bytes(b"\xef\xbb\xbf" + body)
    assert refused(folder) == f"{path} starts with a UTF-8 byte-order mark; save it as UTF-8 without one"


# --- SentencePiece (tokenizer.model) -------------------------------------------------------------


def test_a_sentencepiece_tokenizer_padded_to_the_model(tmp_path):
    folder = sentencepiece_folder(tmp_path)
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert (vocabulary.model, vocabulary.pre, vocabulary.add_space_prefix) == ("llama", "default", True)
    assert vocabulary.tokens == [b"<unk>", b"<s>", b"</s>", "▁a".encode(), b"b", b"<x>", "[PAD6]", "[PAD7]"]
    # A user-defined piece is written as an ordinary one (llama.cpp would match it in raw text).
    assert vocabulary.types == [TokenType.UNKNOWN, CONTROL, CONTROL, NORMAL, NORMAL, NORMAL, UNUSED, UNUSED]
    # Rows without a piece score -10000, as llama.cpp's converter writes them.
    assert vocabulary.scores == [0.0, 0.0, 0.0, -1.0, -2.0, 0.0, -10000.0, -10000.0]
    assert vocabulary.special.special_token_ids == {"unk": 0, "bos": 1, "eos": 2}
    assert vocabulary.special.add_special_token == {"bos": True, "eos": False}
    assert vocabulary.source_files == [folder / "tokenizer.model"]

    fields = written_fields(vocabulary, tmp_path / "vocab.gguf")
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    assert fields["tokenizer.ggml.scores"].contents() == vocabulary.scores
    assert fields["tokenizer.ggml.token_type"].contents() == vocabulary.types
    assert fields["tokenizer.ggml.add_space_prefix"].contents() is True
    assert fields["tokenizer.ggml.add_bos_token"].contents() is True
    assert "tokenizer.ggml.merges" not in fields


def test_tokens_added_on_top_of_a_sentencepiece_model(tmp_path):
    folder = sentencepiece_folder(tmp_path)
    added = [
        {"id": 7, "content": "<tool>", "special": False},
        {"id": 6, "content": "<|im_end|>", "special": True},
        {"id": 1, "content": "<s>", "special": True},  # already a piece
    ]
    write_json(folder / "tokenizer.json", {"model": {"type": "Unigram"}, "added_tokens": added})
    # Gemma marks its chat markers special in the tokenizer config only.
    config = {"added_tokens_decoder": {"5": {"content": "<start_of_turn>", "special": True}}}
    write_json(folder / "tokenizer_config.json", config)
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert vocabulary.tokens[5:] == [b"<start_of_turn>", b"<|im_end|>", b"<tool>"]
    assert vocabulary.types[5:] == [CONTROL, CONTROL, USER_DEFINED]
    assert vocabulary.scores[5:] == [-1000.0, -1000.0, -1000.0]


@pytest.mark.parametrize(
    "folder, message",
    [
        (
            lambda tmp: sentencepiece_folder(tmp, model_type=sentencepiece_model_pb2.TrainerSpec.UNIGRAM),
            "tokenizer.model: a SentencePiece unigram model; llama.cpp's LLaMA tokenizer needs a BPE one",
        ),
        (
            lambda tmp: sentencepiece_folder(tmp, normalization="nmt_nfkc"),
            'tokenizer.model: the SentencePiece model normalizes text ("nmt_nfkc"), which llama.cpp does not do',
        ),
        (
            lambda tmp: sentencepiece_folder(tmp, remove_extra_whitespaces=True),
            'tokenizer.model: the SentencePiece model normalizes text ("identity", collapsing whitespace)',
        ),
        (
            lambda tmp: sentencepiece_folder(tmp, bos_id=9),
            "tokenizer.model: its bos id 9 is not among its 6 pieces; it is damaged",
        ),
        (
            lambda tmp: write_json(
                sentencepiece_folder(tmp) / "tokenizer_config.json", {"added_tokens_decoder": ["<t>"]}
            ),
            "tokenizer_config.json: 'added_tokens_decoder' must be an object, not [\"<t>\"]",
        ),
        (
            lambda tmp: write_json(
                sentencepiece_folder(tmp) / "tokenizer_config.json",
                {"added_tokens_decoder": {"6": {"content": 6}}},
            ),
            'tokenizer_config.json: added token "6": {"content": 6} is not {id: content, special}',
        ),
        (
            lambda tmp: write_json(
                sentencepiece_folder(tmp) / "tokenizer_config.json",
                {"added_tokens_decoder": {"0x1": {"content": "<t>"}}},
            ),
            'added token "0x1": {"content": "<t>"} is not {id: content, special}',
        ),
    ],
    ids=[
        "unigram",
        "normalizes",
        "collapses-whitespace",
        "bos-beyond-pieces",
        "decoder-not-object",
        "decoder-content-not-text",
        "decoder-id-not-decimal",
    ],
)
def test_a_sentencepiece_model_llama_cpp_would_tokenize_differently_is_refused(tmp_path, folder, message):
    folder(tmp_path)
    text = refused(tmp_path)
    assert text.startswith(f"{tmp_path}/") and message in text


def test_a_tokenizer_model_config_without_added_tokens_changes_nothing(tmp_path):
    folder = sentencepiece_folder(tmp_path)
    write_json(folder / "tokenizer_config.json", {"add_bos_token": False})
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert vocabulary.types[:6] == [TokenType.UNKNOWN, CONTROL, CONTROL, NORMAL, NORMAL, NORMAL]
    assert vocabulary.special.add_special_token["bos"] is False  # the config's word over the default


def test_pre_tokenizer_names_are_llama_cpps():
    """Every name llama-vocab.cpp accepts in tokenizer.ggml.pre, and no other."""
    import re

    from llamadesk.convert.pretokenizers import KNOWN_PRE_TOKENIZERS, LLAMA_CPP_PRE_TOKENIZERS
    from tests.fixtures.smollm2_f16 import llama_cpp_source

    source = (llama_cpp_source() / "src" / "llama-vocab.cpp").read_text()
    assert LLAMA_CPP_PRE_TOKENIZERS == set(re.findall(r'tokenizer_pre == "([^"]+)"', source))
    assert set(KNOWN_PRE_TOKENIZERS.values()) <= LLAMA_CPP_PRE_TOKENIZERS


def test_a_pre_tokenizer_override_must_be_one_llama_cpp_knows_and_fit_the_tokenizer(tmp_path):
    # Any name was written (a file llama.cpp then refused to load: "unknown pre-tokenizer type"),
    # and on a SentencePiece tokenizer the option was silently ignored.
    (tmp_path / "bpe").mkdir()
    (tmp_path / "spm").mkdir()
    folder = bpe_folder(tmp_path / "bpe")
    assert read_vocabulary(folder, N_VOCAB, "llama3").pre == "llama3"
    assert refused(folder, pre_override="bogus").startswith('--pre-tokenizer "bogus" is not a pre-tokenizer llama.cpp')
    assert "is not a pre-tokenizer" in refused(folder, pre_override="llama3\nx")
    spm = sentencepiece_folder(tmp_path / "spm")
    assert "--pre-tokenizer is for byte-level BPE tokenizers" in refused(spm, pre_override="llama3")


# --- token lists llama.cpp refuses: refused before anything is written ----------------------------
# `convert` wrote these with exit 0; `info` and `chat` then refused the file and llama.cpp's
# quantizer aborted on it.


@pytest.mark.parametrize(
    "make, message",
    [
        (  # a fine-tune's tokenizer config naming id 4 "<s>", which id 1 already is
            lambda tmp: (
                sentencepiece_folder(tmp),
                write_json(tmp / "tokenizer_config.json", {"added_tokens_decoder": {"4": {"content": "<s>"}}}),
            ),
            'the tokenizer has the token "<s>" twice, ids 1 and 4; llama.cpp cannot load that',
        ),
        (  # an added token filling the hole at id 4 with the text of id 0
            lambda tmp: bpe_folder(tmp, added_tokens=[{"id": 4, "content": "a", "special": False}]),
            'the tokenizer has the token "a" twice, ids 0 and 4; llama.cpp cannot load that',
        ),
        (  # llama.cpp reads "a\0x" as "a"
            lambda tmp: bpe_folder(
                tmp, model={"type": "BPE", "vocab": {"a": 0, "b": 1, "a\u0000x": 2}, "merges": ["a b"]}
            ),
            'the token "a" twice, ids 0 and 2 (llama.cpp reads a token up to its first zero byte)',
        ),
        (
            lambda tmp: (
                sentencepiece_folder(tmp, byte_piece=True),
                write_json(tmp / "tokenizer_config.json", {"added_tokens_decoder": {"6": {"content": "<custom>"}}}),
            ),
            'added token 6 ("<custom>") replaces the byte piece "<0x41>", which llama.cpp needs',
        ),
    ],
)
def test_a_token_list_llama_cpp_refuses_is_refused_naming_the_token_and_ids(tmp_path, make, message):
    make(tmp_path)
    line = refused(tmp_path)
    assert line.startswith(str(tmp_path)) and message in line, line


def test_placeholders_never_take_the_text_of_a_real_token(tmp_path):
    # id 4 is a hole and 6 and 7 are padding, while the tokenizer itself holds "[PAD4]" and "[PAD6]"
    vocab = {"a": 0, "[PAD4]": 1, "[PAD6]": 2}
    folder = bpe_folder(tmp_path, model={"type": "BPE", "vocab": vocab, "merges": ["a a"]})
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert vocabulary.tokens == ["a", "[PAD4]", "[PAD6]", "<|end|>", "[PAD4_1]", "<tool>", "[PAD6_1]", "[PAD7]"]


def test_an_added_token_repeating_its_byte_piece_is_accepted(tmp_path):
    folder = sentencepiece_folder(tmp_path, byte_piece=True)
    write_json(folder / "tokenizer_config.json", {"added_tokens_decoder": {"6": {"content": "<0x41>"}}})
    assert read_vocabulary(folder, N_VOCAB).tokens[6] == b"<0x41>"


# -- added tokens as llama.cpp's converter writes them: which are control tokens, the ones
# SentencePiece fine-tunes name in added_tokens.json or past the model's pieces, and tokenizers
# llama.cpp cannot run (no byte pieces); real checkpoints compared with convert_hf_to_gguf.py.

NORMAL, CONTROL, USER_DEFINED, UNUSED = TokenType.NORMAL, TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.UNUSED
TOKENIZER_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores")


def test_non_special_tokens_that_look_special_are_control_tokens(tmp_path):
    # Qwen2.5 marks <|fim_prefix|> "special": false; llama.cpp's converter still makes it a control
    # token, so it is neither printed in replies nor matched in user text.
    added = [
        {"id": 3, "content": "<|fim_prefix|>", "special": False},
        {"id": 4, "content": "<unused0>", "special": False},
        {"id": 5, "content": "<tool_call>", "special": False},
        {"id": 6, "content": "\u2581hello", "special": False},
        {"id": 7, "content": "<｜end▁of▁sentence｜>", "special": False},
    ]
    vocabulary = read_vocabulary(bpe_folder(tmp_path, added_tokens=added), N_VOCAB)
    assert vocabulary.tokens[3:] == ["<|fim_prefix|>", "<unused0>", "<tool_call>", " hello", "<｜end▁of▁sentence｜>"]
    assert vocabulary.types[3:] == [CONTROL, CONTROL, USER_DEFINED, USER_DEFINED, CONTROL]


def test_added_tokens_json_names_tokens_past_the_pieces(tmp_path):
    folder = sentencepiece_folder(tmp_path)
    write_json(folder / "added_tokens.json", {"<|im_start|>": 7})
    vocabulary = read_vocabulary(folder, N_VOCAB)
    # id 6 is a row nothing names; added_tokens.json's tokens are user-defined, as llama.cpp writes them.
    assert vocabulary.tokens[6:] == ["[PAD6]", b"<|im_start|>"]
    assert vocabulary.types[6:] == [UNUSED, USER_DEFINED]
    assert vocabulary.scores[6:] == [-10000.0, -1000.0]


def test_the_tokenizer_config_overrides_added_tokens_json(tmp_path):
    folder = sentencepiece_folder(tmp_path)
    write_json(folder / "added_tokens.json", {"<|im_start|>": 6, "<|im_end|>": 7})
    write_json(
        folder / "tokenizer_config.json", {"added_tokens_decoder": {"7": {"content": "<|im_end|>", "special": True}}}
    )
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert vocabulary.tokens[6:] == [b"<|im_start|>", b"<|im_end|>"]
    assert vocabulary.types[6:] == [USER_DEFINED, CONTROL]


def test_the_tokenizer_config_may_name_ids_past_the_pieces(tmp_path):
    # A ChatML fine-tune saved with a slow tokenizer: new rows named only in tokenizer_config.json.
    folder = sentencepiece_folder(tmp_path)
    decoder = {"7": {"content": "<|im_end|>", "special": True}, "6": {"content": "<|im_start|>", "special": True}}
    write_json(folder / "tokenizer_config.json", {"added_tokens_decoder": decoder})
    vocabulary = read_vocabulary(folder, N_VOCAB)
    assert vocabulary.tokens[6:] == [b"<|im_start|>", b"<|im_end|>"]
    assert vocabulary.types[6:] == [CONTROL, CONTROL]


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"<t>": -1}, 'added_tokens.json: added token "<t>": -1 is not {content: id}'),
        ({"<t>": "6"}, 'added_tokens.json: added token "<t>": "6" is not {content: id}'),
        ({"<t>": True}, 'added_tokens.json: added token "<t>": true is not {content: id}'),
    ],
    ids=["id-negative", "id-text", "id-bool"],
)
def test_a_damaged_added_tokens_json_is_refused(tmp_path, entries, message):
    write_json(sentencepiece_folder(tmp_path) / "added_tokens.json", entries)
    text = refused(tmp_path)
    assert text.startswith(f"{tmp_path}/") and message in text


def test_added_tokens_json_ids_past_the_model_are_left_out_as_llama_cpp_leaves_them(tmp_path):
    # Llama 2 checkpoints ship {"<pad>": 32000} beside 32,000 rows: llama.cpp's converter ignores
    # the id with a warning, and such checkpoints converted until this file was read.
    write_json(sentencepiece_folder(tmp_path) / "added_tokens.json", {"<pad>": N_VOCAB, "<|im_start|>": 7})
    vocabulary = read_vocabulary(tmp_path, N_VOCAB)
    assert vocabulary.tokens[6:] == ["[PAD6]", b"<|im_start|>"] and len(vocabulary.tokens) == N_VOCAB


def test_tokenizer_config_ids_past_the_model_are_left_out_as_llama_cpp_leaves_them(tmp_path):
    # Llama 2 fine-tunes saved by newer transformers list their <pad> 32000 in added_tokens_decoder
    # beside 32,000 rows; llama.cpp's converter ignores the id with a warning.
    decoder = {str(N_VOCAB): {"content": "<pad>", "special": True}, "7": {"content": "<|im_end|>", "special": True}}
    write_json(sentencepiece_folder(tmp_path) / "tokenizer_config.json", {"added_tokens_decoder": decoder})
    vocabulary = read_vocabulary(tmp_path, N_VOCAB)
    assert vocabulary.tokens[7] == b"<|im_end|>" and len(vocabulary.tokens) == N_VOCAB
    assert b"<pad>" not in vocabulary.tokens


def test_added_tokens_json_may_not_replace_a_byte_piece(tmp_path):
    write_json(sentencepiece_folder(tmp_path, byte_piece=True) / "added_tokens.json", {"<custom>": 6})
    assert 'added token 6 ("<custom>") replaces the byte piece "<0x41>", which llama.cpp needs' in refused(tmp_path)


def test_a_sentencepiece_tokenizer_without_byte_pieces_is_refused(tmp_path):
    # info and chat refuse such a GGUF (llama.cpp stops on text that needs a missing byte), so
    # convert refuses it before writing, naming the tokenizer rather than the file it would write.
    folder = sentencepiece_folder(tmp_path)
    with pytest.raises(BadInputError) as err:
        check_byte_pieces(read_vocabulary(folder, N_VOCAB), folder)
    assert str(err.value).startswith(f"{folder / 'tokenizer.model'} has no piece for the byte 0x00 ")
    byte_level = tmp_path / "bpe"
    byte_level.mkdir()
    bpe_folder(byte_level)
    check_byte_pieces(read_vocabulary(byte_level, N_VOCAB), byte_level)  # byte-level BPE has all bytes by design


# --- real checkpoints against llama.cpp's converter ------------------------------------------------


def tokenizer_fields(path: Path) -> dict:
    fields = gguf_fields(path)
    return {key: fields[key] for key in TOKENIZER_KEYS if key in fields}


def with_added_tokens(source: Path, folder: Path, added: list[str]) -> Path:
    """A copy of a byte-level BPE checkpoint with `added` appended as non-special added tokens."""
    shutil.copytree(source, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    first = max([*tokenizer["model"]["vocab"].values(), *(token["id"] for token in tokenizer["added_tokens"])]) + 1
    for i, content in enumerate(added):
        tokenizer["added_tokens"].append(
            {
                "id": first + i,
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": False,
            }
        )
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_qwen_fim_tokens_are_typed_as_llama_cpp_types_them(tmp_path):
    folder = with_added_tokens(
        family_checkpoint("qwen2"), tmp_path / "qwen", ["<|fim_prefix|>", "<tool_call>", "<unused0>"]
    )
    ours = convert_checkpoint(folder, tmp_path / "ours.gguf", "f16", pre_tokenizer="qwen2")
    assert tokenizer_fields(ours) == tokenizer_fields(reference_gguf(folder, "f16", "qwen2"))


def llama2_with_new_rows(folder: Path, checkpoints_root: Path, new_rows: int = 3) -> Path:
    """A Llama 2-style SentencePiece checkpoint with `new_rows` embedding rows past its pieces, as a
    fine-tune that added chat tokens has."""
    from transformers import AutoModelForCausalLM

    from tests.fixtures.random_checkpoints import build

    source = build("llama2_spm", checkpoints_root)
    model = AutoModelForCausalLM.from_pretrained(source)
    model.resize_token_embeddings(model.config.vocab_size + new_rows)
    model.save_pretrained(folder)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(source / name, folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("where", ["added_tokens.json", "tokenizer_config.json"])
def test_sentencepiece_added_tokens_are_written_as_llama_cpp_writes_them(where, checkpoints_root, tmp_path):
    folder = llama2_with_new_rows(tmp_path / "spm", checkpoints_root)
    n_pieces = json.loads((folder / "config.json").read_text())["vocab_size"] - 3
    if where == "added_tokens.json":
        # "<pad>" past the model's rows, as Llama 2 checkpoints ship it: llama.cpp leaves it out.
        write_json(folder / "added_tokens.json", {"<|im_start|>": n_pieces, "<pad>": n_pieces + 3})
    else:
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["added_tokens_decoder"] = {
            str(n_pieces + i): {"content": text, "special": True}
            for i, text in enumerate(["<|im_start|>", "<|im_end|>"])
        }
        write_json(folder / "tokenizer_config.json", config)
    ours = convert_checkpoint(folder, tmp_path / "ours.gguf", "f16")
    assert tokenizer_fields(ours) == tokenizer_fields(reference_gguf(folder, "f16"))
    assert tokenizer_fields(ours)["tokenizer.ggml.tokens"][n_pieces] == "<|im_start|>"


def test_a_checkpoint_whose_tokenizer_lacks_byte_pieces_is_refused_before_writing(tmp_path):
    # Trained without byte fallback: llama.cpp would stop on text needing a missing byte, so `info`
    # and `chat` refuse such a GGUF; convert used to write it anyway (and --verify then blamed its
    # own temporary file).
    import sentencepiece as spm
    from transformers import LlamaForCausalLM

    from tests.fixtures.random_checkpoints import CORPUS, _llama2_config, _save_model

    folder = tmp_path / "nobyte"
    folder.mkdir()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=120,
        model_type="bpe",
        byte_fallback=False,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        minloglevel=2,
    )
    n_pieces = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).get_piece_size()
    _save_model(LlamaForCausalLM, _llama2_config(n_pieces), folder, seed=3)
    output = tmp_path / "nobyte.gguf"
    result = run_cli("convert", str(folder), "-o", str(output), "--verify")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llamadesk: {folder / 'tokenizer.model'} has no piece for the byte 0x00 (it was trained without byte "
        "fallback); llama.cpp needs all 256 byte pieces and stops the program on text that needs a missing one, "
        "so llamadesk cannot convert this tokenizer"
    ]
    assert list(tmp_path.iterdir()) == [folder]
