"""Checkpoint folder -> GGUF: plan everything first, then stream one tensor at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from llamadesk.app.core.atomic_file import check_writable_target
from llamadesk.app.core.paths import models_dir
from llamadesk.convert.checkpoint import Checkpoint, open_checkpoint
from llamadesk.convert.gguf_array_packing import ArrayPackingWriter
from llamadesk.convert.gguf_metadata import add_metadata, model_name
from llamadesk.convert.gguf_streaming import Progress, padded_bytes, stream_gguf
from llamadesk.convert.output_types import FILE_TYPES, resolve_outtype
from llamadesk.convert.plan import PlannedTensor, plan_tensors
from llamadesk.convert.source_files import check_output_is_not_a_source, folder_files
from llamadesk.convert.source_location import looks_like_repo_id, resolve_source
from llamadesk.convert.tensor_source import TensorSource
from llamadesk.convert.vocabulary import Vocabulary, check_byte_pieces, read_vocabulary


@dataclass
class ConversionPlan:
    """What a conversion will write, computed without reading any weights."""

    checkpoint: Checkpoint
    vocabulary: Vocabulary
    tensors: list[PlannedTensor]
    bulk_type: gguf.GGMLQuantizationType
    n_vocab: int
    n_ff: int

    @property
    def source_files(self) -> list[Path]:
        """Every file the conversion reads: the checkpoint folder's and its weights (which may lie
        elsewhere through links)."""
        return folder_files(self.checkpoint.folder) + list(self.checkpoint.weight_files)

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(t.shape, dtype=np.int64)) for t in self.tensors if t.source != "computed")

    @property
    def tensor_bytes(self) -> int:
        return padded_bytes(self.tensors)

    @property
    def estimated_size(self) -> int:
        """Tensor data plus the header (token strings dominate it)."""
        token_bytes = sum(len(t) + 16 for t in self.vocabulary.tokens)
        merge_bytes = sum(len(m) + 8 for m in self.vocabulary.special.merges)
        template = (
            len(self.vocabulary.special.chat_template or "")
            if isinstance(self.vocabulary.special.chat_template, str)
            else 0
        )
        return self.tensor_bytes + token_bytes + merge_bytes + template + 64 * len(self.tensors) + 4096

    @property
    def default_file_name(self) -> str:
        name = model_name(self.checkpoint.config, self.checkpoint.folder)
        return f"{name}-{self.bulk_type.name}.gguf"


def plan_conversion(
    folder: Path,
    outtype: str = "auto",
    pre_tokenizer: str | None = None,
    name: str | None = None,
    tensor_overlay: Callable[[Checkpoint], list[TensorSource]] | None = None,
) -> ConversionPlan:
    """Open the checkpoint and tokenizer in `folder` and plan the GGUF; raises BadInputError on bad input.

    `name` (e.g. the Hub repo id) overrides the model name otherwise taken from the config or folder.
    `tensor_overlay(checkpoint)` may replace the checkpoint's tensors (LoRA merging does).
    """
    checkpoint = open_checkpoint(folder)
    if tensor_overlay is not None:
        checkpoint.tensors = tensor_overlay(checkpoint)
    config = checkpoint.config
    if name:
        config.name = name
    embedding = next(
        (t for t in checkpoint.tensors if t.name.endswith(("embed_tokens.weight", "tok_embeddings.weight"))), None
    )
    n_vocab = config.n_vocab or (embedding.shape[0] if embedding is not None and embedding.shape else 0)
    # "auto" follows the language model's weights (a multimodal checkpoint's vision tower is left out).
    family = config.architecture
    bulk = resolve_outtype(outtype, {t.dtype for t in checkpoint.tensors if family.language_model_name(t.name)})
    # Shapes first: the tokenizer is padded to n_vocab, so a config's vocab_size must be checked
    # against the embedding's rows (bounded by the file's size) before anything that large is built.
    tensors = plan_tensors(checkpoint, bulk, n_vocab)
    vocabulary = read_vocabulary(folder, n_vocab, pre_tokenizer)
    check_byte_pieces(vocabulary, folder)
    n_ff = config.n_ff or next(t.shape[0] for t in tensors if t.name == "blk.0.ffn_gate.weight")
    return ConversionPlan(checkpoint, vocabulary, tensors, bulk, n_vocab, n_ff)


def default_output(plan: ConversionPlan) -> Path:
    """Where a conversion goes without -o: the library's models folder, so `-m NAME` finds it."""
    return models_dir() / plan.default_file_name


def write_gguf(
    plan: ConversionPlan,
    output: Path,
    force: bool = False,
    progress: Progress | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write the planned GGUF atomically; peak memory is about one tensor (plus its encoded copy).

    `check(path)` runs on the complete file before it gets its final name; if it raises, the file
    is removed, so a GGUF that fails verification never appears under `output`.
    """
    check_output_is_not_a_source(output, plan.source_files)
    check_writable_target(output, force)
    writer = ArrayPackingWriter(None, gguf.MODEL_ARCH_NAMES[plan.checkpoint.config.architecture.gguf_arch])
    add_metadata(
        writer,
        plan.checkpoint.config,
        plan.checkpoint.folder,
        plan.n_vocab,
        plan.n_ff,
        plan.n_params,
        FILE_TYPES[plan.bulk_type],
        quantized=plan.bulk_type == gguf.GGMLQuantizationType.Q8_0,
    )
    plan.vocabulary.add_to(writer)
    return stream_gguf(writer, plan.tensors, output, force, progress, check)


def convert_checkpoint(
    source: str | Path,
    output: Path | None = None,
    outtype: str = "auto",
    force: bool = False,
    progress: Progress | None = None,
    pre_tokenizer: str | None = None,
) -> Path:
    """Convert `source` (a checkpoint folder, or a Hub repo id to download) to a GGUF; return its path.

    Without `output` the file goes into the library's models folder (named after the model and
    type), where `-m NAME` finds it. `outtype` is f32, f16, bf16, q8_0 or auto. `progress(done,
    total)` is called in bytes after each tensor. Raises BadInputError for anything wrong with the
    checkpoint, and leaves no partial output behind on any error or Ctrl-C.
    """
    name = str(source) if looks_like_repo_id(str(source)) else None
    plan = plan_conversion(resolve_source(str(source)), outtype, pre_tokenizer, name)
    return write_gguf(plan, output or default_output(plan), force, progress)
