"""Ollama's store and LM Studio's folder laid out on disk as those apps write them, for import tests.

Ollama (`ollama pull smollm2:135m`): a content-addressed blob per layer, named sha256-<hex>, and a
manifest per NAME:TAG under manifests/HOST/NAMESPACE/MODEL/TAG in the Docker v2 manifest format,
with the GGUF as the layer of media type application/vnd.ollama.image.model beside its template,
parameters, licence and config blobs. LM Studio: models/PUBLISHER/REPO/FILE.gguf.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

MODEL_LAYER = "application/vnd.ollama.image.model"


def write_blob(store: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (store / "blobs").mkdir(parents=True, exist_ok=True)
    (store / "blobs" / f"sha256-{digest}").write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def add_blob_file(store: Path, source: Path) -> dict:
    """A large file (a real GGUF) as a blob: hashed in chunks and copied (never linked: tests may damage it)."""
    sha = hashlib.sha256()
    with source.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    (store / "blobs").mkdir(parents=True, exist_ok=True)
    blob = store / "blobs" / f"sha256-{sha.hexdigest()}"
    if not blob.exists():
        shutil.copyfile(source, blob)
    return {"digest": f"sha256:{sha.hexdigest()}", "size": source.stat().st_size}


def ollama_manifest(store: Path, model_layer: dict, extra_layers: tuple[dict, ...] = ()) -> dict:
    """The manifest Ollama writes for a GGUF model, with its small side blobs written too."""
    template = write_blob(store, b"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}")
    params = write_blob(store, json.dumps({"stop": ["<|im_start|>", "<|im_end|>"]}).encode())
    config = write_blob(store, json.dumps({"model_format": "gguf", "model_family": "llama"}).encode())
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
        "layers": [
            {"mediaType": MODEL_LAYER, **model_layer},
            {"mediaType": "application/vnd.ollama.image.template", **template},
            {"mediaType": "application/vnd.ollama.image.params", **params},
            *extra_layers,
        ],
    }


def write_manifest(store: Path, where: str, manifest: dict | bytes) -> Path:
    """`where` is HOST/NAMESPACE/MODEL/TAG, e.g. registry.ollama.ai/library/smollm2/135m."""
    path = store / "manifests" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode())
    return path


def ollama_store(root: Path, gguf: Path) -> Path:
    """A store holding `gguf` as Ollama's library model smollm2:135m and as a Hub pull, as `ollama pull` leaves it."""
    store = root / ".ollama" / "models"
    layer = add_blob_file(store, gguf)
    write_manifest(store, "registry.ollama.ai/library/smollm2/135m", ollama_manifest(store, layer))
    hub = "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF/Q4_1"
    write_manifest(store, hub, ollama_manifest(store, layer))
    return store


def lmstudio_folder(root: Path, gguf: Path) -> Path:
    """LM Studio's models folder holding `gguf` under PUBLISHER/REPO, and a vision projector it must skip."""
    folder = root / ".lmstudio" / "models"
    repo = folder / "lmstudio-community" / "SmolLM2-135M-Instruct-GGUF"
    repo.mkdir(parents=True)
    shutil.copyfile(gguf, repo / "SmolLM2-135M-Instruct-Q4_1.gguf")
    (repo / "mmproj-SmolLM2-F16.gguf").write_bytes(b"GGUF projector, not a model")
    return folder
