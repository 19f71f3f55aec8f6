"""Models other apps downloaded: Ollama's store and LM Studio's folder, listed where they lie.

A user who ran Ollama or LM Studio already has gigabytes of GGUFs on disk; llamadesk lists them
under the names those apps use, without copying a byte.

Ollama keeps content-addressed blobs and one small JSON manifest per NAME:TAG:

    models/manifests/HOST/NAMESPACE/MODEL/TAG   {"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                             "digest": "sha256:<64 hex>", "size": N}, ...]}
    models/blobs/sha256-<64 hex>                the GGUF itself

and names a model `MODEL:TAG` when it comes from its own library (registry.ollama.ai/library),
`NAMESPACE/MODEL:TAG` for a user's model there, `HOST/NAMESPACE/MODEL:TAG` from elsewhere (hf.co).

LM Studio keeps plain files, `models/PUBLISHER/REPO/FILE.gguf` (~/.lmstudio/models; before 0.3,
~/.cache/lm-studio/models).

Both are someone else's files, so they are read as untrusted: a manifest goes through
core/json_file (size and depth limits) and every field's type is checked; a digest must be sha256
hex, so the blob's path is built here, never taken from the file; the manifest tree is walked
without following links; and a blob or GGUF that leads outside its store is refused. A manifest
that is wrong becomes a model with a problem (listed as skipped, with the reason), never an error
that hides the rest of the library.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.value_ranges import shown
from llamadesk.app.library.gguf_listing import is_listable_gguf

OLLAMA = "ollama"
LMSTUDIO = "lmstudio"
APP_NAMES = {OLLAMA: "Ollama", LMSTUDIO: "LM Studio"}

OLLAMA_DEFAULT_REGISTRY = "registry.ollama.ai"
OLLAMA_DEFAULT_NAMESPACE = "library"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
# Layers that change what the weights do: running the model layer alone would not be that model.
ADAPTER_MEDIA_TYPE = "application/vnd.ollama.image.adapter"
DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
# One part of a manifest's path (host, namespace, model, tag): what Ollama's own names allow.
NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
MANIFEST_MAX_BYTES = 256 * 1024  # real ones are under 2 KiB
MANIFEST_MAX_DEPTH = 4  # {"layers": [{"digest": ...}]}
MAX_LAYERS = 256
MAX_MODELS = 10_000  # a bound on the walk, far above any real store


@dataclass(frozen=True)
class OtherAppModel:
    """One model another app keeps: its name there, its file, or why it cannot be used."""

    name: str
    path: Path | None
    origin: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # one line: why it is skipped


@dataclass(frozen=True)
class OtherAppStore:
    app: str  # OLLAMA or LMSTUDIO
    path: Path


def default_stores(home: Path | None = None) -> list[OtherAppStore]:
    """Where Ollama and LM Studio keep models by default, those that exist on this machine.

    Ollama: $OLLAMA_MODELS when set (as Ollama itself reads it), ~/.ollama/models, and the Linux
    service install's /usr/share/ollama/.ollama/models. LM Studio: ~/.lmstudio/models, then the
    folder of versions before 0.3.
    """
    home = home or Path.home()
    ollama = [Path(os.environ["OLLAMA_MODELS"])] if os.environ.get("OLLAMA_MODELS") else []
    ollama += [home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
    lmstudio = [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]
    found = [OtherAppStore(OLLAMA, p) for p in ollama if is_ollama_store(p)]
    found += [OtherAppStore(LMSTUDIO, p) for p in lmstudio if _is_dir(p)]
    return _unique_stores(found)


def _unique_stores(stores: list[OtherAppStore]) -> list[OtherAppStore]:
    seen: set[Path] = set()
    out = []
    for store in stores:
        resolved = store.path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            out.append(OtherAppStore(store.app, resolved))
    return out


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a folder we may not enter (another user's service install)
        return False


def is_ollama_store(folder: Path) -> bool:
    return _is_dir(folder / "manifests") and _is_dir(folder / "blobs")


def detect_app(folder: Path) -> str | None:
    """Which app's store `folder` is: Ollama by its layout, LM Studio by where it lives."""
    if is_ollama_store(folder):
        return OLLAMA
    resolved = folder.resolve()
    if resolved.name == "models" and resolved.parent.name in (".lmstudio", "lm-studio"):
        return LMSTUDIO
    return None


def models_in(store: OtherAppStore) -> list[OtherAppModel]:
    """Every model in a store, sorted by name; an unreadable store gives none."""
    return ollama_models(store.path) if store.app == OLLAMA else lmstudio_models(store.path)


# -- Ollama ---------------------------------------------------------------------------------


def ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """The name Ollama shows for the manifest at manifests/HOST/NAMESPACE/MODEL/TAG."""
    if host == OLLAMA_DEFAULT_REGISTRY:
        prefix = "" if namespace == OLLAMA_DEFAULT_NAMESPACE else f"{namespace}/"
    else:
        prefix = f"{host}/{namespace}/"
    return f"{prefix}{model}:{tag}"


def ollama_models(store: Path) -> list[OtherAppModel]:
    root = store.resolve()
    out = []
    for parts, manifest in _manifests(root / "manifests"):
        name = ollama_name(*parts)
        origin = {"app": APP_NAMES[OLLAMA], "store": str(root), "model": "/".join(parts)}
        try:
            path = _model_blob(root, manifest)
        except BadInputError as err:
            out.append(OtherAppModel(name, None, origin, str(err)))
            continue
        out.append(OtherAppModel(name, path, origin))
    return sorted(out, key=lambda m: m.name)


def _entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries without following links: directories and regular files only, no hidden ones."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not e.name.startswith(".") and not e.is_symlink()]
    except OSError:
        return []
    return sorted(entries, key=lambda e: e.name)


def _manifests(folder: Path) -> list[tuple[tuple[str, str, str, str], Path]]:
    """(host, namespace, model, tag) and the file of every manifest, exactly four levels down."""
    found: list[tuple[tuple[str, str, str, str], Path]] = []

    def walk(path: Path, parts: tuple[str, ...]) -> None:
        for entry in _entries(path):
            if len(found) >= MAX_MODELS or not NAME_PART.fullmatch(entry.name):
                continue
            if len(parts) < 3 and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), (*parts, entry.name))
            elif len(parts) == 3 and entry.is_file(follow_symlinks=False):
                found.append(((*parts, entry.name), Path(entry.path)))  # type: ignore[arg-type]

    walk(folder, ())
    return found


def _model_blob(root: Path, manifest: Path) -> Path:
    """The GGUF blob a manifest names, checked; BadInputError (one line) saying what is wrong."""
    raw = read_json_object(manifest, "Ollama manifest", max_bytes=MANIFEST_MAX_BYTES, max_depth=MANIFEST_MAX_DEPTH)
    layers = raw.get("layers")
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        raise BadInputError(f"{manifest}: the Ollama manifest's layers are {shown(layers)}, not a list of layers")
    if not all(isinstance(layer, dict) and isinstance(layer.get("mediaType"), str) for layer in layers):
        raise BadInputError(f"{manifest}: a layer of the Ollama manifest has no media type; the file is damaged")
    media_types = [layer["mediaType"] for layer in layers]
    if ADAPTER_MEDIA_TYPE in media_types:
        raise BadInputError(
            f"{manifest}: this Ollama model applies a LoRA adapter to its weights, which llamadesk cannot do yet"
        )
    models = [layer for layer in layers if layer["mediaType"] == MODEL_MEDIA_TYPE]
    if len(models) != 1:
        raise BadInputError(
            f"{manifest}: the Ollama manifest has {len(models)} model layers, not one GGUF "
            "(a model imported from safetensors is not a GGUF llama.cpp can load)"
        )
    digest, size = models[0].get("digest"), models[0].get("size")
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise BadInputError(f"{manifest}: the model layer's digest {shown(digest)} is not sha256:<64 hex digits>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadInputError(f"{manifest}: the model layer's size {shown(size)} is not a byte count")
    blob = root / "blobs" / f"sha256-{match[1]}"
    actual = _store_file_size(blob, root)
    if actual != size:
        raise BadInputError(
            f"{blob}: the blob is {actual} bytes, the manifest says {size}; the download is unfinished or damaged "
            "(`ollama pull` it again)"
        )
    return blob


def _store_file_size(path: Path, root: Path) -> int:
    """The size of a regular file that is inside `root` (a link is followed only if it stays there)."""
    try:
        resolved = path.resolve(strict=True)
        info = os.stat(resolved)
    except (OSError, RuntimeError):  # missing, unreadable, or a link loop
        raise BadInputError(f"{path}: the file is missing or cannot be read") from None
    if not resolved.is_relative_to(root):
        raise BadInputError(f"{path}: the file is a link to {resolved}, outside {root}; not followed")
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{path}: not a regular file")
    return info.st_size


# -- LM Studio ------------------------------------------------------------------------------


def lmstudio_models(store: Path) -> list[OtherAppModel]:
    """models/PUBLISHER/REPO/*.gguf, each named by its file as LM Studio shows it."""
    from llamadesk.app.core.gguf_naming import model_stem

    root = store.resolve()
    out = []
    for publisher in _entries(root):
        if not publisher.is_dir(follow_symlinks=False):
            continue
        for repo in _entries(Path(publisher.path)):
            if not repo.is_dir(follow_symlinks=False):
                continue
            for file in _lmstudio_files(Path(repo.path)):
                if len(out) >= MAX_MODELS:
                    return out
                origin = {"app": APP_NAMES[LMSTUDIO], "store": str(root), "model": f"{publisher.name}/{repo.name}"}
                try:
                    _store_file_size(file, root)
                except BadInputError as err:
                    out.append(OtherAppModel(model_stem(file.name), None, origin, str(err)))
                    continue
                out.append(OtherAppModel(model_stem(file.name), file, origin))
    return sorted(out, key=lambda m: m.name)


def _lmstudio_files(repo: Path) -> list[Path]:
    # Links are listed here (LM Studio's import can link a file in) and judged by _store_file_size.
    try:
        with os.scandir(repo) as it:
            return sorted(Path(e.path) for e in it if is_listable_gguf(Path(e.name)))
    except OSError:
        return []
