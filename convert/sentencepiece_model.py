"""Read a SentencePiece `tokenizer.model` (a protobuf) without the sentencepiece package.

llama.cpp needs only the pieces (text, score, type) and a few trainer/normalizer settings, so a
forty-line protobuf wire-format reader replaces a compiled dependency (painful on a Pi). Field
numbers are those of sentencepiece_model.proto.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError

# sentencepiece_model.proto: ModelProto.pieces = 1, trainer_spec = 2, normalizer_spec = 3;
# SentencePiece.piece = 1, score = 2, type = 3; TrainerSpec.model_type = 3, byte_fallback = 35,
# unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43; NormalizerSpec.name = 1,
# add_dummy_prefix = 3, remove_extra_whitespaces = 4.
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
# SentencePiece.Type: NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE (llama.cpp's token types too).
PIECE_TYPES = range(1, 7)
MAX_MODEL_BYTES = 64 * 1024**2  # Llama's is 0.5 MB, Gemma's (256k pieces) 4 MB


@dataclass
class SentencePieceModel:
    pieces: list[tuple[bytes, float, int]] = field(default_factory=list)  # text, score, type (1..6)
    model_type: str = "unigram"
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    add_dummy_prefix: bool = True
    byte_fallback: bool = False
    normalization: str = "nmt_nfkc"
    remove_extra_whitespaces: bool = True


class _Malformed(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
            if pos > len(data):
                raise _Malformed
        else:
            raise _Malformed
        out.append((number, value))
    return out


def _int32(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value  # negative int32s are 10-byte varints


def _number(fields: dict[int, int | bytes], number: int, default: int) -> int:
    value = fields.get(number, default)
    if not isinstance(value, int):
        raise _Malformed
    return value


def _piece(value: int | bytes) -> tuple[bytes, float, int]:
    if not isinstance(value, bytes):
        raise _Malformed
    piece = dict(_fields(value))
    text, bits, kind = piece.get(1, b""), _number(piece, 2, 0), _number(piece, 3, 1)
    if not isinstance(text, bytes) or bits >= 1 << 32 or kind not in PIECE_TYPES:
        raise _Malformed
    return text, struct.unpack("<f", struct.pack("<I", bits))[0], kind


def read_sentencepiece_model(path: Path, max_pieces: int | None = None) -> SentencePieceModel:
    """The pieces and settings of a SentencePiece model file.

    `max_pieces` (the model's vocabulary size) stops reading a file that has more pieces than the
    model could use, before they are all held in memory.
    """
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise BadInputError(
            f"{path}: {format_bytes(size)}, more than any SentencePiece model; the file is damaged or not a tokenizer"
        )
    model = SentencePieceModel()
    try:
        for number, value in _fields(path.read_bytes()):
            if number == 1:
                if max_pieces is not None and len(model.pieces) >= max_pieces:
                    raise BadInputError(
                        f"{path}: the tokenizer has more pieces than the model's {max_pieces} tokens; "
                        "they do not belong together"
                    )
                model.pieces.append(_piece(value))
            elif number == 2 and isinstance(value, bytes):
                spec = dict(_fields(value))
                model.model_type = MODEL_TYPES.get(_number(spec, 3, 1), "unknown")
                model.byte_fallback = bool(_number(spec, 35, 0))
                model.unk_id = _int32(_number(spec, 40, 0))
                model.bos_id = _int32(_number(spec, 41, 1))
                model.eos_id = _int32(_number(spec, 42, 2))
                model.pad_id = _int32(_number(spec, 43, (1 << 64) - 1))
            elif number == 3 and isinstance(value, bytes):
                spec = dict(_fields(value))
                model.add_dummy_prefix = bool(_number(spec, 3, 1))
                model.remove_extra_whitespaces = bool(_number(spec, 4, 1))
                name = spec.get(1, b"nmt_nfkc")
                model.normalization = name.decode("utf-8", "replace") if isinstance(name, bytes) else "?"
    except (_Malformed, struct.error):
        raise BadInputError(
            f"{path}: not a SentencePiece model (damaged, or a tiktoken file, which llamadesk does not read)"
        ) from None
    if not model.pieces:
        raise BadInputError(f"{path}: a SentencePiece model with no pieces; the file is damaged")
    return model
