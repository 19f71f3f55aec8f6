"""Keep a conversion from writing over what it reads.

--force means "replace an old output", not "destroy the input": `-o ckpt/model.safetensors
--force` (a slip of tab-completion) would otherwise replace a download with the GGUF made from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from llamadesk.app.core.errors import BadInputError


def folder_files(folder: Path) -> list[Path]:
    """The regular files directly in `folder` that a conversion may read from a checkpoint or
    adapter folder (weights, config, tokenizer files). GGUFs are left out: nothing there reads
    them, and converting again over an earlier output in the folder is what --force is for."""
    try:
        return [path for path in folder.iterdir() if path.is_file() and path.suffix.lower() != ".gguf"]
    except OSError:
        return []


def check_output_is_not_a_source(output: Path, sources: Iterable[Path]) -> None:
    """Refuse, even with --force, an output that is (or links to) one of the files read."""
    if not output.is_file():
        return
    for source in sources:
        try:
            same = os.path.samefile(output, source)
        except OSError:  # a source that vanished cannot be overwritten either
            continue
        if same:
            raise BadInputError(
                f"the output {output} is the source's own {source.name}; choose another -o "
                "(--force replaces an old output, never the input)"
            )
