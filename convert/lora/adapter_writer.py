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

from llamadesk.app.core.atomic_file import check_writable_target
from llamadesk.convert.gguf_array_packing import ArrayPackingWriter
from llamadesk.convert.gguf_streaming import Progress, stream_gguf
from llamadesk.convert.lora.adapter_plan import AdapterPlan
from llamadesk.convert.output_types import FILE_TYPES
from llamadesk.convert.source_files import check_output_is_not_a_source, folder_files


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
    check_output_is_not_a_source(output, folder_files(plan.folder) + plan.base.source_files)
    check_writable_target(output, force)
    writer = ArrayPackingWriter(None, plan.base.arch_name)
    add_adapter_metadata(writer, plan)
    return stream_gguf(writer, plan.tensors, output, force, progress, check)
