"""Copies of a real GGUF with one thing changed: an extra key, a tensor's data."""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter


def copy_gguf(source, target, extra_key: str | None = None, changed: dict | None = None):
    """A copy of the GGUF `source`, with one more uint32 key named `extra_key` and the tensors in
    `changed` (name -> function of its data) changed; returns `target`."""
    reader = GGUFReader(source)
    writer = GGUFWriter(target, reader.fields["general.architecture"].contents())
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # GGUFWriter writes these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
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
