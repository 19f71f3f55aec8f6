"""`llamadesk info`: a GGUF file's metadata and tensor types."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_adapter import is_adapter, summarize_adapter
from llamadesk.app.core.gguf_file import ADVICE, check_model, model_parts, one_line, open_header, plain_value, summarize
from llamadesk.app.core.gguf_header import GGUFHeader
from llamadesk.app.library.catalog import inspect_model, resolve_model

EXAMPLES = """examples:
  llamadesk info SmolLM2-135M-Instruct.Q4_1.gguf
  llamadesk info smollm2 --json | jq '.metadata["llama.context_length"]'
"""
LONG_VALUE = 120  # characters of a metadata value shown before eliding (chat templates are long)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info",
        help="show a GGUF file's metadata",
        description="Validate a GGUF file and show its summary, metadata and tensor types. A file llama.cpp "
        "could not load (checked by llama.cpp's own loader, without reading the weights) exits with 2.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="FILE", help="a .gguf file, or a model name from `llamadesk models`")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = resolve_model(args.model)
    header = open_header(path)
    if is_adapter(header):  # a LoRA adapter is no model: checked and shown as what it is
        return _show_adapter(args, path, header)
    summary = summarize(path, header)
    check_model(path, header, summary.architecture)  # what llama.cpp would crash on, first
    from llamadesk.app.engine.load_check import llama_cpp_refusal  # llama.cpp loads only for this

    refusal = llama_cpp_refusal(path)
    if refusal is not None:
        raise BadInputError(f"{one_line(str(path))}: llama.cpp cannot load it: {one_line(refusal)}; {ADVICE}")
    # A split model is described whole (its first part alone showed a third of it), as `models` does.
    summary = inspect_model(path)
    tensors = [t for part in model_parts(path, header.metadata)[1:] for t in open_header(part).tensors] + header.tensors
    types = dict(Counter(t.ggml_type.name for t in tensors))
    metadata = summary.metadata
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(path),
                    "file_size": summary.file_size,
                    "architecture": summary.architecture,
                    "name": summary.name,
                    "parameters": summary.parameters,
                    "quantization": summary.quantization,
                    "context_length": summary.context_length,
                    "layers": summary.n_layers,
                    "has_chat_template": summary.has_chat_template,
                    "tensor_types": types,
                    "metadata": metadata,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    print(one_line(str(path)))
    print(
        f"  {summary.name}: {summary.architecture}, {summary.size_label} parameters, {summary.quantization}, "
        f"{format_bytes(summary.file_size)}, context {summary.context_length}, {summary.n_layers} layers"
    )
    _print_tensors_and_metadata(types, metadata)
    return 0


def _show_adapter(args: argparse.Namespace, path: Path, header: GGUFHeader) -> int:
    adapter = summarize_adapter(path, header)  # its own checks: type, architecture, alpha, A/B pairs
    types = dict(Counter(t.ggml_type.name for t in header.tensors))
    metadata = {k: plain_value(v) for k, v in header.metadata.items()}
    if args.json:
        described = {
            "path": str(path),
            "file_size": header.file_size,
            "type": "adapter",
            "architecture": adapter.architecture,
            "name": adapter.name,
            "base_model": adapter.base_name,
            "alpha": adapter.alpha,
            "adapted_weights": adapter.n_weights,
            "tensor_types": types,
            "metadata": metadata,
        }
        print(json.dumps(described, indent=2, ensure_ascii=False))
        return 0
    base = f" of {one_line(adapter.base_name)}" if adapter.base_name else ""
    print(one_line(str(path)))
    print(
        f"  {one_line(adapter.name)}: LoRA adapter for {one_line(adapter.architecture)}{base}, "
        f"{adapter.n_weights} adapted weights, "
        f"alpha {adapter.alpha:g}, {format_bytes(header.file_size)}"
    )
    _print_tensors_and_metadata(types, metadata)
    return 0


def _print_tensors_and_metadata(types: dict[str, int], metadata: dict) -> None:
    print("  tensors: " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
    for key, value in metadata.items():
        # Values and keys come from the file: shown on one line, their control characters as ^X
        # (an ESC there would be obeyed by the terminal), a long one cut.
        text = str(value).replace("\n", "\\n")
        if len(text) > LONG_VALUE:
            text = text[:LONG_VALUE] + f"... ({len(text)} chars)"
        print(f"  {one_line(key, LONG_VALUE)} = {one_line(text)}")
