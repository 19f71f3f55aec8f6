"""What the server can run, for GET /v1/models and /api/tags: the library plus the operator's -m models;
and one of them in detail, for GET /v1/models/{id} and /api/show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio

from llamadesk.app.server.model_pool import ModelPool


@dataclass(frozen=True)
class ListedModel:
    name: str
    size: int
    modified: int  # the file's mtime, seconds since the epoch
    family: str
    parameter_size: str
    quantization: str


def _listed(pool: ModelPool) -> list[ListedModel]:
    from llamadesk.app.library.catalog import inspect_model, list_models

    out: dict[str, ListedModel] = {}
    for name in pool.served_names():  # what the operator named comes first
        try:
            path = pool.model_path(name)
            summary = inspect_model(Path(path))
        except Exception:  # a file that went away is left out, not a 500 for the whole list
            continue
        out[name] = _listed_from(name, path, summary)
    for entry in list_models():
        if entry.name not in out:
            out[entry.name] = ListedModel(
                entry.name, entry.file_size, _mtime(Path(entry.path)), entry.architecture, entry.size_label,
                entry.quantization,
            )  # fmt: skip
    return list(out.values())


def _listed_from(name: str, path: Path, summary) -> ListedModel:
    """A model listed by `name`, from its file's summary (inspect_model's)."""
    return ListedModel(
        name, summary.file_size, _mtime(path), summary.architecture, summary.size_label, summary.quantization
    )


def _mtime(path: Path) -> int:
    try:
        return int(Path(path).stat().st_mtime)
    except OSError:
        return 0


async def listed_models(pool: ModelPool) -> list[ListedModel]:
    """Reads every model's header: off the event loop."""
    return await anyio.to_thread.run_sync(_listed, pool)


@dataclass(frozen=True)
class ModelDetails:
    listed: ListedModel
    parameters: int
    context_length: int
    chat_template: str  # "" for a base model


def _details(pool: ModelPool, name: str) -> ModelDetails:
    from llamadesk.app.library.catalog import inspect_model

    path = pool.model_path(name)  # 404 for a name nothing serves
    summary = inspect_model(Path(path))
    template = summary.metadata.get("tokenizer.chat_template")
    return ModelDetails(
        _listed_from(name, path, summary),
        summary.parameters,
        summary.context_length,
        template if isinstance(template, str) else "",
    )


async def model_details(pool: ModelPool, name: str) -> ModelDetails:
    """One model the server can run, by a name a client gave (ApiError 404 if none); reads its header
    off the event loop."""
    return await anyio.to_thread.run_sync(_details, pool, name)
