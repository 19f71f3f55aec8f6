"""Options shared by the subcommands that load a model."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llamadesk.app.engine.types import LoadSettings


def add_model_option(parser: argparse.ArgumentParser, default: str = "smollm2") -> None:
    parser.add_argument(
        "-m",
        "--model",
        default=default,
        help=f"a .gguf path, a starter model (smollm2, gemma3-270m) or a library name (default: {default})",
    )


def add_load_options(parser: argparse.ArgumentParser, ctx_default: str = "the model's, capped by memory") -> None:
    """The loading flags; `ctx_default` says in --help what --ctx is when it is not given."""
    # Here, not at the top: commands that load no model (quantize, fit, ...) use this module for
    # --json alone and should not pay for runtime_settings' imports (gguf, numpy).
    from llamadesk.app.core.memory_budget import KV_CACHE_TYPES

    group = parser.add_argument_group("loading (defaults fit this machine; see `llamadesk doctor`)")
    group.add_argument("--ctx", type=int, help=f"context length in tokens (default: {ctx_default})")
    group.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: one per performance/physical core that other programs leave free)",
    )
    group.add_argument(
        "--gpu-layers", type=int, help="layers to offload to the GPU (default: as many as fit in free VRAM)"
    )
    group.add_argument(
        "--flash-attn",
        choices=("on", "off"),
        help=(
            "llama.cpp's fused attention kernel (default: on for GPUs, sliding-window models and a quantized "
            "KV cache; off for other models on the CPU, where it slows long contexts)"
        ),
    )
    group.add_argument(
        "--kv-type",
        choices=tuple(KV_CACHE_TYPES),
        help="KV cache type (default: f16, or q8_0 when f16 would cut the context short)",
    )
    group.add_argument("--batch", type=int, help="prompt tokens llama.cpp decodes per step (default: 512)")
    group.add_argument("--mlock", action="store_true", default=None, help="pin the model in RAM (default: off)")
    group.add_argument(
        "--no-mmap",
        dest="mmap",
        action="store_false",
        default=None,
        help="read the whole model into memory instead of mapping the file",
    )
    group.add_argument(
        "--rpc",
        metavar="HOST:PORT[,HOST:PORT]",
        help="offload layers to llama.cpp RPC servers (`llamadesk rpc-server` there); needs a -DGGML_RPC=on build",
    )


def add_lora_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lora",
        action="append",
        metavar="FILE[:SCALE]",
        help="apply a GGUF LoRA adapter (a file, or its name in `llamadesk models`) at SCALE (default 1); "
        "repeatable; `--lora none`: none (a continued conversation's adapters too)",
    )


def lora_settings(texts: list[str] | None) -> tuple[tuple[str, float], ...] | None:
    """--lora FILE[:SCALE] flags as LoadSettings.lora; None when there are none, () for `--lora none`."""
    if not texts:
        return None
    from llamadesk.app.core.errors import BadInputError

    if "none" in texts:
        if len(texts) > 1:
            raise BadInputError("--lora none means no adapter: give it alone, or name the adapters to apply")
        return ()
    from llamadesk.app.library.catalog import resolve_library_name
    from llamadesk.convert.lora import parse_adapter_choice

    adapters = []
    for choice in map(parse_adapter_choice, texts):
        # A name from `llamadesk models` works as well as a path (a path that exists wins). A file
        # is kept as an absolute path: a stored conversation is continued from other folders too.
        if choice.path.exists():
            adapters.append((os.path.abspath(choice.path), choice.scale))
        else:
            adapters.append((str(resolve_library_name(str(choice.path)) or choice.path), choice.scale))
    return tuple(adapters)


def load_settings(args: argparse.Namespace) -> LoadSettings:
    """The flags over load.json (the user's per-machine file); what neither sets stays automatic."""
    from llamadesk.app.core.value_ranges import BATCH, CONTEXT, GPU_LAYERS, THREADS
    from llamadesk.app.settings.load_config import configured_load_settings, merged

    # Checked here, in one line each, with the same ranges as load.json's keys.
    for flag, value, value_range in (
        ("--ctx", args.ctx, CONTEXT),
        ("--threads", args.threads, THREADS),
        ("--gpu-layers", args.gpu_layers, GPU_LAYERS),
        ("--batch", getattr(args, "batch", None), BATCH),
    ):
        if value is not None:
            value_range.check(value, flag)
    flash = None if args.flash_attn is None else args.flash_attn == "on"
    return merged(
        configured_load_settings(),
        {
            "n_ctx": args.ctx,
            "n_threads": args.threads,
            "n_gpu_layers": args.gpu_layers,
            "flash_attn": flash,
            "kv_cache_type": getattr(args, "kv_type", None),
            "n_batch": getattr(args, "batch", None),
            "use_mlock": getattr(args, "mlock", None),
            "use_mmap": getattr(args, "mmap", None),
            "rpc_servers": getattr(args, "rpc", None),
            "lora": lora_settings(getattr(args, "lora", None)),
        },
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
