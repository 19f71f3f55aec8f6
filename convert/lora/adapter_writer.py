"""Write a GGUF LoRA adapter as llama.cpp's llama_adapter_lora_init reads it.

general.type = adapter, general.architecture = the base's, adapter.type = lora, adapter.lora.alpha;
tensors `<base weight>.lora_a` (rank x in) and `.lora_b` (out x rank), numpy order. The base it
was made for is recorded (general.base_model.*, and its widths under the architecture's keys) so
`chat --lora` can refuse an adapter for another model before llama.cpp loads anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gguf

from llamadesk.app.core.atomic_file import atomic_output, check_writable_target
from llamadesk.convert.lora.adapter_plan import AdapterPlan
from llamadesk.convert.output_types import FILE_TYPES

Progress = Callable[[int, int], None]


def add_adapter_metadata(writer: gguf.GGUFWriter, plan: AdapterPlan) -> None:
    base = plan.base
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(f"{plan.folder.resolve().name or 'adapter'} (LoRA for {base.name})")
    writer.add_file_type(FILE_TYPES[plan.bulk_type])
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(plan.alpha))
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, base.name)
    if base.repo_id:
        writer.add_base_model_repo_url(0, f"https://huggingface.co/{base.repo_id}")
    # The base's widths, which the adapter's shapes only partly show (the vocabulary, the depth).
    writer.add_embedding_length(base.config.n_embd)
    writer.add_block_count(base.config.n_layer)
    writer.add_feed_forward_length(base.n_ff)
    writer.add_vocab_size(base.n_vocab)


def write_adapter(
    plan: AdapterPlan,
    output: Path,
    force: bool = False,
    progress: Progress | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write the planned adapter atomically, one tensor at a time; nothing is left behind on error.

    `check(path)` runs on the complete file before it gets its final name (--verify).
    """
    check_writable_target(output, force)
    writer = gguf.GGUFWriter(None, plan.base.arch_name)
    add_adapter_metadata(writer, plan)
    for tensor in plan.tensors:
        shape, dtype = tensor.stored
        writer.add_tensor_info(tensor.name, shape, dtype, tensor.nbytes, raw_dtype=tensor.qtype)
    total, done = plan.tensor_bytes, 0
    with atomic_output(output, force) as tmp:
        try:
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for tensor in plan.tensors:
                writer.write_tensor_data(tensor.produce())
                tensor.release()
                done += gguf.GGUFWriter.ggml_pad(tensor.nbytes, gguf.GGUF_DEFAULT_ALIGNMENT)
                if progress:
                    progress(done, total)
        finally:
            writer.close()
        if check:
            check(tmp)
    return output
