"""Options shared by the subcommands that load a model."""

from __future__ import annotations

import argparse

from ..engine.types import LoadSettings


def add_model_option(parser: argparse.ArgumentParser, default: str = "smollm2") -> None:
    parser.add_argument(
        "-m", "--model", default=default,
        help=f"a .gguf path, a starter model (smollm2, gemma3-270m) or a library name (default: {default})",
    )


def add_load_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loading")
    group.add_argument("--ctx", type=int, help="context length in tokens (default: the model's, capped by memory)")
    group.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    group.add_argument("--gpu-layers", type=int, help="layers to offload to the GPU (default: all when the build has a GPU)")
    group.add_argument(
        "--flash-attn", choices=("on", "off"),
        help="llama.cpp's fused attention kernel (default: on)",
    )


def load_settings(args: argparse.Namespace) -> LoadSettings:
    flash = None if args.flash_attn is None else args.flash_attn == "on"
    return LoadSettings(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.gpu_layers, flash_attn=flash)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
