"""The library's small record of what the model files themselves cannot say.

A JSON file in the data folder: which Hub files llamadesk pulled (repo, revision, commit, and
whether llamadesk downloaded the bytes or found them already in the Hugging Face cache), which
folders and other apps' stores (Ollama, LM Studio) the user added, whether to look for those apps'
stores by themselves, and where files llamadesk made came from (the checkpoint a conversion
read, the file a quantization started from). JSON rather than SQLite: a few dozen records read
whole on every listing, and a user can read or fix it by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.core.atomic_file import atomic_output, locked
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.paths import HOME_NOT_WRITABLE, data_dir
from llamadesk.app.core.value_ranges import shown

REGISTRY_FILE = "library.json"
SCHEMA_VERSION = 1
REGISTRY_MAX_BYTES = 16 * 1024**2  # a record is a few hundred bytes: tens of thousands of models
COMMIT_ID = re.compile(r"[0-9a-f]{40}")  # as the Hub writes them; a pulled model's files are found by it
REGISTRY_MAX_DEPTH = 8  # {"made": [{"origin": {...}}]}, and an origin may hold a list or two


@dataclass
class PulledModel:
    """GGUF files pulled from the Hub; they live in huggingface-hub's cache, never copied."""

    name: str
    repo: str
    revision: str  # what the user asked for (a branch, tag or commit)
    commit: str  # the commit the files came from
    files: list[str]  # repo paths; split models list every part, first part first
    quantization: str | None
    downloaded: bool  # False when the files were already in the cache: then they are not ours to delete


@dataclass
class MadeModel:
    """A file llamadesk wrote into its models folder, and what it was made from."""

    path: str
    origin: dict[str, Any]  # e.g. {"checkpoint": "/path/to/hf-dir"} or {"quantized_from": "x.gguf"}


@dataclass
class AddedStore:
    """Another app's model store the user added (`models add ~/.ollama/models`)."""

    app: str  # "ollama" or "lmstudio"
    path: str


@dataclass
class Registry:
    pulled: list[PulledModel] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    made: list[MadeModel] = field(default_factory=list)
    stores: list[AddedStore] = field(default_factory=list)
    # List Ollama's and LM Studio's models found in their default places (`models discover off`).
    discover_other_apps: bool = True

    def pulled_named(self, name: str) -> PulledModel | None:
        return next((p for p in self.pulled if p.name == name), None)

    def made_origin(self, path: Path) -> dict[str, Any] | None:
        return next((m.origin for m in self.made if Path(m.path) == path), None)


def registry_path() -> Path:
    return data_dir() / REGISTRY_FILE


def load_registry() -> Registry:
    """The registry as saved; an empty one if there is none yet. A damaged file is a LlamadeskError
    naming it and the record that is wrong (the models themselves stay on disk)."""
    path = registry_path()
    if not path.exists() and not path.is_symlink():
        return Registry()
    try:
        raw = read_json_object(path, "library record", max_bytes=REGISTRY_MAX_BYTES, max_depth=REGISTRY_MAX_DEPTH)
        return Registry(
            pulled=[PulledModel(**_fields(p, PULLED_TYPES, "pulled")) for p in _list(raw, "pulled")],
            folders=[_typed(f, str, "folders") for f in _list(raw, "folders")],
            made=[MadeModel(**_fields(m, MADE_TYPES, "made")) for m in _list(raw, "made")],
            stores=[AddedStore(**_store(s)) for s in _list(raw, "stores")],
            discover_other_apps=_typed(raw.get("discover_other_apps", True), bool, "discover_other_apps"),
        )
    except BadInputError as err:
        raise LlamadeskError(f"{err}; fix or delete it (models stay on disk)") from None


# Each record's fields and the JSON types they may hold (checked before anything uses them).
PULLED_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "repo": (str,),
    "revision": (str,),
    "commit": (str,),
    "files": (list,),
    "quantization": (str, type(None)),
    "downloaded": (bool,),
}
MADE_TYPES: dict[str, tuple[type, ...]] = {"path": (str,), "origin": (dict,)}
STORE_TYPES: dict[str, tuple[type, ...]] = {"app": (str,), "path": (str,)}
STORE_APPS = ("ollama", "lmstudio")


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise BadInputError(f"{registry_path()}: {key} must be a list, not {shown(value)}")
    return value


def _typed(value: Any, kinds: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kinds):
        raise BadInputError(f"{registry_path()}: {where} holds {shown(value)}, which llamadesk never writes there")
    return value


def _fields(record: Any, types: dict[str, tuple[type, ...]], where: str) -> dict[str, Any]:
    if not isinstance(record, dict) or set(record) != set(types):
        raise BadInputError(f"{registry_path()}: {where} holds {shown(record)}, which is not a record llamadesk wrote")
    for key, kinds in types.items():
        _typed(record[key], kinds, f"{where}.{key}")
    files = record.get("files", ["-"])
    if not files or not all(isinstance(f, str) for f in files):
        raise BadInputError(f"{registry_path()}: {where}.files of {shown(record['name'])} must list file names")
    if "commit" in record and not COMMIT_ID.fullmatch(record["commit"]):
        raise BadInputError(f"{registry_path()}: {where}.commit of {shown(record['name'])} is not a commit id")
    if "repo" in record and not is_repo_id(record["repo"]):
        raise BadInputError(f"{registry_path()}: {where}.repo of {shown(record['name'])} is not a Hub repo id")
    if "revision" in record and not is_revision(record["revision"]):
        raise BadInputError(f"{registry_path()}: {where}.revision of {shown(record['name'])} is not a revision")
    return record


# huggingface-hub's rule for repo ids (validate_repo_id), kept here so that reading the library
# never imports huggingface-hub: OWNER/NAME or NAME of letters, digits, `-_.`, no `--` or `..`,
# not starting or ending with `-` or `.`, 96 characters at most.
REPO_ID = re.compile(r"(?:[\w][\w\-.]*[\w]/|[\w]/)?(?:[\w][\w\-.]*[\w]|[\w])")


def is_repo_id(repo: str) -> bool:
    return len(repo) <= 96 and REPO_ID.fullmatch(repo) is not None and "--" not in repo and ".." not in repo


def is_revision(revision: str) -> bool:
    """A branch, tag or commit name that can name a file under refs/ (branches may hold `/`)."""
    parts = revision.split("/")
    return bool(revision) and not any(c in revision for c in "\\\x00") and all(p not in ("", ".", "..") for p in parts)


def _store(record: Any) -> dict[str, Any]:
    _fields(record, STORE_TYPES, "stores")
    if record["app"] not in STORE_APPS:
        raise BadInputError(f"{registry_path()}: stores holds the app {shown(record['app'])}, not one of {STORE_APPS}")
    return record


def save_registry(registry: Registry) -> None:
    """Write the registry whole, atomically (a crash leaves the previous version)."""
    payload = {"schema_version": SCHEMA_VERSION, **asdict(registry)}
    # Through a link (library.json kept in a dotfiles repo) the file linked to is replaced, not the
    # link: replacing the link left the linked file behind, silently no longer used.
    with atomic_output(Path(os.path.realpath(registry_path())), force=True, unwritable=HOME_NOT_WRITABLE) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@contextlib.contextmanager
def editing_registry() -> Iterator[Registry]:
    """The registry as saved, to change in place; saved on leaving the block (when it changed).

    Every change to the registry goes through here: the file is locked from the read to the write,
    so two commands changing it at once (`models add` in two terminals, a pull while a conversion
    finishes) both keep their change. An error in the block saves nothing.
    """
    with locked(registry_path()):
        registry = load_registry()
        before = asdict(registry)
        yield registry
        if asdict(registry) != before:
            save_registry(registry)


# The origin fields that may name a local file or folder; the others are names ("base",
# "quantized_from", a type), which a folder of the same name in the working directory must not turn
# into a path.
ORIGIN_PATHS = ("checkpoint", "adapter")


def record_made_model(path: Path, origin: dict[str, Any]) -> None:
    """Remember where a file that convert/ or quantize/ wrote came from (shown by `models`)."""
    # Absolute: a relative path would name another file once `models` runs from another folder.
    path = path.resolve()
    origin = {key: _absolute_if_local(value) if key in ORIGIN_PATHS else value for key, value in origin.items()}
    with editing_registry() as registry:
        registry.made = [m for m in registry.made if Path(m.path) != path]
        registry.made.append(MadeModel(path=str(path), origin=origin))


def _absolute_if_local(value: Any) -> Any:
    """A relative path to something that exists here (a checkpoint, an adapter), made absolute."""
    if isinstance(value, str) and value and not Path(value).is_absolute() and Path(value).exists():
        return str(Path(value).resolve())
    return value
