"""Copies of a real GGUF with one thing changed: an extra key, a tensor's data."""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader, GGUFWriter

from tests.gguf_samples import copy_metadata


def copy_gguf(source, target, extra_key: str | None = None, changed: dict | None = None):
    """A copy of the GGUF `source`, with one more uint32 key named `extra_key` and the tensors in
    `changed` (name -> function of its data) changed; returns `target`."""
    reader = GGUFReader(source)
    writer = GGUFWriter(target, reader.fields["general.architecture"].contents())
    copy_metadata(reader, writer)
    if extra_key is not None:
        writer.add_uint32(extra_key, 1)
    for tensor in reader.tensors:
        data = (changed or {}).get(tensor.name, lambda d: d)(np.array(tensor.data))
        writer.add_tensor(tensor.name, data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


def copy_with_key(source, target, key: str, vtype, value):
    """A byte copy of the GGUF `source` with one metadata key set (added or replaced), its tensor
    data as it was (the header is re-encoded and padded to the file's alignment)."""
    from tests.fuzz.gguf_mutants import _parse

    raw = open(source, "rb").read()
    layout = _parse(raw, len(raw))
    data = raw[len(raw) - layout.data_size :]
    layout.set(key, vtype, value)
    head = layout.encode()
    padding = -len(head) % layout.alignment
    with open(target, "wb") as f:
        f.write(head + b"\0" * padding + data)
    return target
