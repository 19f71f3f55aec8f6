"""Copies of a real GGUF with a different chat template, and running `llamadesk chat` on them.

The copy is byte for byte the original except the one metadata value: the header up to the
value, the new value, the rest of the header re-aligned, then the original tensor data (tensor
offsets count from the data section, so they stay valid). A case writes its copy, chats with it
and deletes it, so only one ~100 MB copy exists at a time however many cases run; the tests put
it in memory (/dev/shm) where there is one, as a busy disk takes seconds per copy.

A template value is given as JSON-friendly data: {"text": "..."}, {"repeat": ["x", n]} (a long
text without a long JSON file), {"bytes_hex": "..."} (text that may not be UTF-8), {"int32": 5},
{"float32": 1.5}, {"bool": true}, {"strings": [...]}, {"int32s": [...]}.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from gguf import GGUFValueType

TEMPLATE_KEY = "tokenizer.chat_template"


def _string(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def encode_value(value: dict) -> bytes:
    """The GGUF encoding (type, then payload) of a template value described as above."""
    (kind, payload), *_ = value.items()
    if kind == "text":
        return struct.pack("<I", GGUFValueType.STRING) + _string(payload.encode())
    if kind == "repeat":
        return struct.pack("<I", GGUFValueType.STRING) + _string((payload[0] * payload[1]).encode())
    if kind == "bytes_hex":
        return struct.pack("<I", GGUFValueType.STRING) + _string(bytes.fromhex(payload))
    if kind == "int32":
        return struct.pack("<Ii", GGUFValueType.INT32, payload)
    if kind == "float32":
        return struct.pack("<If", GGUFValueType.FLOAT32, payload)
    if kind == "bool":
        return struct.pack("<I?", GGUFValueType.BOOL, payload)
    if kind == "strings":
        head = struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.STRING, len(payload))
        return head + b"".join(_string(s.encode()) for s in payload)
    if kind == "int32s":
        head = struct.pack("<IIQ", GGUFValueType.ARRAY, GGUFValueType.INT32, len(payload))
        return head + struct.pack(f"<{len(payload)}i", *payload)
    raise ValueError(f"unknown template value kind {kind!r}")


_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
}  # fmt: skip


class _Walker:
    """Steps over a (valid) GGUF header; gguf's GGUFReader would take seconds on a 49k-token vocabulary."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.offs = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.offs)
        self.offs += struct.calcsize(fmt)
        return value

    def string(self) -> bytes:
        length = self.take("<Q")
        self.offs += length
        return self.data[self.offs - length : self.offs]

    def skip_value(self, value_type: int) -> None:
        if value_type == GGUFValueType.STRING:
            self.string()
        elif value_type == GGUFValueType.ARRAY:
            item_type, count = self.take("<I"), self.take("<Q")
            if item_type in _SCALAR_SIZES:
                self.offs += _SCALAR_SIZES[GGUFValueType(item_type)] * count
            else:
                for _ in range(count):
                    self.skip_value(item_type)
        else:
            self.offs += _SCALAR_SIZES[GGUFValueType(value_type)]


def template_layout(source: Path) -> dict[str, int]:
    """Where `source`'s chat template value lies, where its header ends and its tensor data starts.

    Walking the header takes ~0.5 s (the vocabulary): done once, then handed to every case.
    """
    with source.open("rb") as src, mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as data:
        walk = _Walker(data)
        walk.offs = 8  # magic, version
        n_tensors, n_kv = walk.take("<Q"), walk.take("<Q")
        layout = {"alignment": 32}
        for _ in range(n_kv):
            key = walk.string()
            key_end = walk.offs
            value_type = walk.take("<I")
            if key == b"general.alignment":
                layout["alignment"] = struct.unpack_from("<I", data, walk.offs)[0]
            walk.skip_value(value_type)
            if key == TEMPLATE_KEY.encode():
                layout.update(value_start=key_end, value_end=walk.offs)
        for _ in range(n_tensors):
            walk.string()
            n_dims = walk.take("<I")
            walk.offs += 8 * n_dims + 4 + 8  # dims, type, offset
    assert "value_start" in layout, f"{source} has no chat template to replace"
    layout.update(header_end=walk.offs, data_offset=walk.offs + (-walk.offs % layout["alignment"]))
    return layout


def write_with_template(source: Path, dest: Path, value: dict, layout: dict[str, int] | None = None) -> Path:
    """A copy of `source` whose chat template is `value`; everything else unchanged."""
    at = layout or template_layout(source)
    with source.open("rb") as src, mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as data:
        header = data[: at["value_start"]] + encode_value(value) + data[at["value_end"] : at["header_end"]]
        with dest.open("wb") as out:
            out.write(header + b"\0" * (-len(header) % at["alignment"]))
            out.write(data[at["data_offset"] :])
    return dest


def chat_with_template(source: str, workdir: str, name: str, value: dict, layout: dict, *argv: str) -> None:
    """`llamadesk chat -m COPY --threads 2 ARGV... hi` on a copy of `source` with `value` as its
    chat template (`layout` from template_layout); exits with the CLI's code (for call_case)."""
    from llamadesk.app.cli import main

    path = write_with_template(Path(source), Path(workdir) / f"{name}.gguf", value, layout)
    try:
        code = main(["chat", "-m", str(path), "--threads", "2", *argv, "hi"])
    finally:
        path.unlink(missing_ok=True)
    raise SystemExit(code)
