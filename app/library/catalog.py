"""The local model library: everything llamadesk can run, and how `-m NAME` finds a file.

Five places hold models: the starter models (installed packages), GGUFs pulled from the Hub
(they stay in huggingface-hub's cache), files llamadesk made (convert, quantize: the data
folder's models/), folders the user added, and the stores of other apps (Ollama, LM Studio:
added, or found where those apps keep them unless `models discover off`; see other_apps). The
registry records what the files cannot say: which Hub repo and commit a pull came from, the added
folders and stores, and what a made file was made from. A `-m` argument is a library name,
`REPO:QUANT` of a pulled model, or a path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.file_removal import delete_files, refuse_undeletable
from llamadesk.app.core.gguf_adapter import summarize_adapter
from llamadesk.app.core.gguf_file import GGUFSummary, inspect_gguf, model_parts, open_header
from llamadesk.app.core.gguf_header import GGUF_MAGIC
from llamadesk.app.core.gguf_naming import model_stem
from llamadesk.app.core.machine import MachineFacts, machine_facts
from llamadesk.app.core.paths import models_dir
from llamadesk.app.core.printable import printable
from llamadesk.app.library.fit import memory_fit
from llamadesk.app.library.gguf_listing import listable_ggufs
from llamadesk.app.library.other_apps import APP_NAMES, OtherAppStore, default_stores, detect_app, models_in
from llamadesk.app.library.registry import (
    AddedStore,
    PulledModel,
    Registry,
    editing_registry,
    is_repo_id,
    load_registry,
    registry_path,
)
from llamadesk.app.library.starters import GEMMA_FILE, STARTER_MODELS, starter_path

# GGUF keys that say where a model came from, most specific first (convert writes them).
ORIGIN_KEYS = (
    "general.source.huggingface.repository",
    "general.source.repo_url",
    "general.source.url",
    "general.base_model.0.repo_url",
    "general.base_model.0.name",
)


@dataclass(frozen=True)
class LibraryEntry:
    """One runnable model with what a user needs to choose it."""

    name: str
    path: str
    # "starter", "hub", "local" (made by llamadesk), "folder" (a folder the user added), "ollama", "lmstudio"
    source: str
    architecture: str
    parameters: int
    size_label: str
    quantization: str
    file_size: int  # all parts of a split model together
    context_length: int
    has_chat_template: bool
    origin: dict[str, Any] = field(default_factory=dict)  # repo + revision, checkpoint, package or folder
    eval_results: list[dict[str, Any]] = field(default_factory=list)  # from `llamadesk eval --save`
    fits: bool = True  # weights + KV cache of a default context fit in the free memory now
    memory_needed: int = 0  # weights + KV cache of a 4096-token context
    memory_reserved: int = 0  # kept free for the system whatever the model
    memory_available: int = 0
    parts: int = 1
    deletable: bool = False  # `models rm` deletes files only llamadesk created or downloaded
    kind: str = "model"  # or "adapter": a LoRA adapter, applied to its base with --lora
    base: str | None = None  # an adapter's base model, as the adapter records it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A model before its file is read: where it is and where it came from."""

    name: str
    locate: Callable[[], Path]  # lazy: locating Gemma assembles it the first time
    source: str
    origin: dict[str, Any]
    deletable: bool
    # The pulled record a "hub" candidate stands for: its listed name may carry a prefix, so
    # removal finds the record by this, not by name.
    record: PulledModel | None = None


def inspect_model(first: Path) -> GGUFSummary:
    """inspect_gguf, with the parameters and sizes of a split model's other parts added in.

    Only what the listing shows is checked here (a file that cannot run is refused when it loads).
    """
    return inspect_gguf(first, loadable=False)  # summarize counts a split model's every part


def describe_origin(entry: LibraryEntry) -> str:
    """Where a model came from, in one short phrase (the CLI's table and the UI show the same)."""
    origin = entry.origin
    if "app" in origin:
        return f"{origin['app']} {origin.get('model', '')}".strip()
    if "repo" in origin:
        return f"{origin['repo']}@{str(origin.get('commit') or '')[:8]}"
    if "checkpoint" in origin:
        return f"made from {origin['checkpoint']}"
    if "adapter" in origin:
        return f"made from {origin['adapter']}"
    if "folder" in origin:
        return f"folder {origin['folder']}"
    if "package" in origin:
        return f"package {origin['package']}"
    return "-"


def read_eval_results(path: Path) -> list[dict[str, Any]]:
    """The evaluations `llamadesk eval --save` wrote beside a model; [] if none."""
    from llamadesk.quantize.evaluation import saved_evaluations  # the sidecar's format is quantize's

    return saved_evaluations(path)


def _origin_from_metadata(summary: GGUFSummary) -> dict[str, Any]:
    for key in ORIGIN_KEYS:
        value = summary.metadata.get(key)
        if isinstance(value, str) and value:
            return {"checkpoint": value}
    return {}


def _starter_candidates() -> list[Candidate]:
    return [
        Candidate(name, lambda n=name: starter_path(n), "starter", {"package": starter.distribution}, deletable=False)
        for name, starter in STARTER_MODELS.items()
    ]


def _pulled_candidates(registry: Registry) -> list[Candidate]:
    out = []
    for pulled in registry.pulled:

        def locate(p=pulled) -> Path:
            from llamadesk.app.hub.cache import cached_file  # huggingface_hub: imported only for pulled models

            path = cached_file(p.repo, p.files[0], p.commit)
            if path is None:
                raise LlamadeskError(f"{p.name} ({p.repo}) is no longer in the Hugging Face cache; pull it again")
            return path

        origin = {"repo": pulled.repo, "revision": pulled.revision, "commit": pulled.commit, "files": pulled.files}
        out.append(Candidate(pulled.name, locate, "hub", origin, deletable=pulled.downloaded, record=pulled))
    return out


def _made_candidates(registry: Registry) -> list[Candidate]:
    here = [p for p in listable_ggufs(models_dir(), recursive=False) if p.name != GEMMA_FILE]
    # convert/ and quantize/ may also write where the user asked (-o); their record brings those in.
    elsewhere = [Path(m.path) for m in registry.made if Path(m.path).parent != models_dir() and Path(m.path).is_file()]
    return [
        Candidate(model_stem(path.name), lambda p=path: p, "local", registry.made_origin(path) or {}, deletable=True)
        for path in here + elsewhere
    ]


def _folder_candidates(registry: Registry) -> list[Candidate]:
    """The GGUFs of the added folders, each file once: a folder and its subfolder both added (or a
    link to a file in another added folder) listed the same model twice, the second as FOLDER-NAME."""
    seen: set[Path] = set()
    out = []
    for folder in registry.folders:
        if not Path(folder).is_dir():
            continue
        for path in listable_ggufs(Path(folder), recursive=True):
            file = path.resolve()
            if file in seen:
                continue
            seen.add(file)
            origin = {"folder": folder}
            out.append(Candidate(model_stem(path.name), lambda p=path: p, "folder", origin, deletable=False))
    return out


def other_app_stores(registry: Registry) -> list[OtherAppStore]:
    """The other apps' stores the library lists: those the user added, then those found by themselves."""
    added = [OtherAppStore(s.app, Path(s.path)) for s in registry.stores if Path(s.path).is_dir()]
    found = default_stores() if registry.discover_other_apps else []
    seen: set[Path] = set()
    out = []
    for store in added + found:
        if store.path.resolve() not in seen:
            seen.add(store.path.resolve())
            out.append(store)
    return out


def _other_app_candidates(registry: Registry) -> list[Candidate]:
    out = []
    for store in other_app_stores(registry):
        for model in models_in(store):

            def locate(m=model) -> Path:
                if m.path is None:  # the store's file is wrong: skipped with this reason (bad input, exit 2)
                    raise BadInputError(m.problem or "cannot be used")
                return m.path

            out.append(Candidate(model.name, locate, store.app, model.origin, deletable=False))
    return out


# Where models come from, in order of precedence for names.
CANDIDATE_PLACES: tuple[Callable[[Registry], list[Candidate]], ...] = (
    lambda registry: _starter_candidates(),
    lambda registry: _pulled_candidates(registry),
    lambda registry: _made_candidates(registry),
    lambda registry: _folder_candidates(registry),
    lambda registry: _other_app_candidates(registry),
)


def _candidates(registry: Registry) -> list[Candidate]:
    """Every model in the library, in order of precedence for names: starters, pulled, made, folders,
    other apps' stores."""
    return _unique_names([c for place in CANDIDATE_PLACES for c in place(registry)])


def _named_early(registry: Registry, name: str) -> tuple[Candidate | None, list[Candidate]]:
    """The candidate named exactly `name`, looking no further than needed: earlier places win a
    name, so `-m smollm2` never walks the folders a user added (one of them may be slow, or
    change while it is walked). Without one, every candidate, to look further in."""
    found: list[Candidate] = []
    for place in CANDIDATE_PLACES:
        found += place(registry)
        named = {c.name: c for c in _unique_names(found)}
        if name in named:
            return named[name], []
    return None, _unique_names(found)


def _unique_names(candidates: list[Candidate]) -> list[Candidate]:
    """Earlier places win a name; a later model with the same name gets its origin as a prefix."""
    seen: set[str] = set()
    out = []
    for c in candidates:
        name = c.name
        if name in seen:
            prefix = Path(c.origin["folder"]).name if c.source == "folder" else c.source  # "ollama-", "lmstudio-"
            name = f"{prefix}-{c.name}"
            n = 2
            while name in seen:
                name, n = f"{prefix}-{c.name}-{n}", n + 1
        seen.add(name)
        out.append(dataclasses.replace(c, name=name))
    return out


def _file_fields(candidate: Candidate, path: Path, summary: GGUFSummary) -> dict[str, object]:
    """What every entry, model or adapter, shows of its file."""
    return dict(
        name=candidate.name,
        path=str(path),
        source=candidate.source,
        architecture=summary.architecture,
        parameters=summary.parameters,
        size_label=summary.size_label,
        quantization=summary.quantization,
        file_size=summary.file_size,
        deletable=candidate.deletable,
    )


def _adapter_entry(candidate: Candidate, path: Path, summary: GGUFSummary) -> LibraryEntry:
    return LibraryEntry(
        **_file_fields(candidate, path, summary),
        context_length=0,
        has_chat_template=False,
        origin=candidate.origin,
        kind="adapter",
        base=summarize_adapter(path).base_name,
    )


def _entry(candidate: Candidate, machine: MachineFacts) -> LibraryEntry:
    path = candidate.locate()
    summary = inspect_model(path)
    if summary.metadata.get("general.type") == "adapter":
        return _adapter_entry(candidate, path, summary)
    fit = memory_fit(summary, machine)
    origin = candidate.origin or _origin_from_metadata(summary)
    return LibraryEntry(
        **_file_fields(candidate, path, summary),
        context_length=summary.context_length,
        has_chat_template=summary.has_chat_template,
        origin=origin,
        eval_results=read_eval_results(path),
        fits=fit.fits,
        memory_needed=fit.needed,
        memory_reserved=fit.reserve,
        memory_available=fit.available,
        parts=len(model_parts(path, summary.metadata)),
    )


def names_in_use() -> set[str]:
    """Every name the library answers to now (without reading any model file)."""
    return {c.name for c in _candidates(load_registry())}


@dataclass(frozen=True)
class SkippedModel:
    """A library entry whose file could not be read, and why (one line, for a note)."""

    name: str
    reason: str


def read_library(adapters: bool = False) -> tuple[list[LibraryEntry], list[SkippedModel]]:
    """Every model in the library, and the ones skipped because their file cannot be read.

    With `adapters`, LoRA adapters are listed too (kind "adapter"); they are not models to load.

    A damaged or hostile file in an added folder must not hide the rest of the library: every way
    a file can be wrong ends as a LlamadeskError (the GGUF readers make sure of it) or an OSError.
    """
    machine = machine_facts()
    entries, skipped = [], []
    for candidate in _candidates(load_registry()):
        try:
            entry = _entry(candidate, machine)
            if adapters or entry.kind == "model":
                entries.append(entry)
        except LlamadeskError as err:
            skipped.append(SkippedModel(candidate.name, str(err)))
        except OSError as err:
            skipped.append(SkippedModel(candidate.name, f"cannot read it ({err.strerror or err})"))
    return entries, skipped


def list_adapters() -> list[LibraryEntry]:
    """The LoRA adapters in the library (each with the base it records)."""
    return [e for e in read_library(adapters=True)[0] if e.kind == "adapter"]


def list_models() -> list[LibraryEntry]:
    """Every model in the library; one that cannot be read is skipped rather than hiding the rest."""
    return read_library()[0]


def looks_like_path(spec: str) -> bool:
    return spec.endswith(".gguf") or "/" in spec or "\\" in spec or spec.startswith(".")


def _pulled_by_repo(registry: Registry, spec: str) -> PulledModel | None:
    """The pulled model given as `REPO:QUANT` (or `REPO` when only one was pulled); two that match
    are refused, naming both."""
    repo, _, quant = spec.partition(":")
    matches = [
        p
        for p in registry.pulled
        if p.repo.lower() == repo.lower() and (not quant or (p.quantization or "").lower() == quant.lower())
    ]
    if len(matches) > 1 and quant:
        names = ", ".join(printable(p.name) for p in matches[:MAX_NAMES_SHOWN])
        raise BadInputError(f"{spec} matches {len(matches)} pulled models: {names}; use a name")
    return matches[0] if len(matches) == 1 else None


def find_candidate(registry: Registry, spec: str) -> Candidate | None:
    """The library model `spec` names: a name as listed, NAME for Ollama's NAME:latest, or
    `REPO:QUANT` of a pulled model. Shared by `-m` and `models rm`, so both take the same names."""
    early, everything = _named_early(registry, spec)
    if early is not None:
        return early
    candidates = {c.name: c for c in everything}
    if f"{spec}:latest" in candidates:  # Ollama's clients say `llama3.2` for `llama3.2:latest`
        return candidates[f"{spec}:latest"]
    pulled = _pulled_by_repo(registry, spec)
    return next((c for c in candidates.values() if pulled is not None and c.record is pulled), None)


def resolve_library_name(spec: str) -> Path | None:
    """The GGUF file of the library model named `spec` (a name or `REPO:QUANT`), or None.

    Never a path: the server resolves names from requests with this, so a request cannot name a
    file on the machine.
    """
    # Starters win their names, so they need no library record: a damaged library.json must not
    # stop `doctor` or `chat -m smollm2`.
    if spec in STARTER_MODELS:
        return starter_path(spec)
    found = find_candidate(load_registry(), spec)
    return found.locate() if found is not None else None


def resolve_model(spec: str) -> Path:
    """The GGUF file `-m spec` means; raises BadInputError naming what is available otherwise."""
    found = resolve_library_name(spec)
    if found is not None:
        return found
    path = Path(spec).expanduser()
    if looks_like_path(spec) or path.exists():
        if not path.exists():
            raise BadInputError(f"{spec}: no such file; give a path to a .gguf file or a model name")
        return path
    known = ", ".join(c.name for c in _candidates(load_registry()))
    raise BadInputError(f"unknown model '{spec}'; available: {known} (or give a path to a .gguf file)")


# --- changing the library -------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """What `models rm NAME` will do: the files it deletes and what it only forgets."""

    name: str
    deletes: tuple[Path, ...]
    summary: str  # one line for the confirmation prompt
    apply: Callable[[], list[Path]]


def _folder_key(folder: str) -> str:
    """A folder as `models add` writes it (absolute, resolved), for entries written by hand too
    (`/x/ggufs/`, `~/ggufs`, a relative path)."""
    return str(Path(folder).expanduser().resolve())


def _forget_folder(folder: str) -> Removal:
    def apply() -> list[Path]:
        with editing_registry() as registry:
            registry.folders = [f for f in registry.folders if _folder_key(f) != folder]
            registry.stores = [s for s in registry.stores if _folder_key(s.path) != folder]
        return []

    return Removal(folder, (), f"stop listing the models in {folder} (no files are deleted)", apply)


MAX_NAMES_SHOWN = 20  # in a message: a folder of 10,000 files made it one 50 KB line


def plan_removal(name: str) -> Removal:
    """How removing `name` would go; raises BadInputError for what llamadesk must not delete."""
    registry = load_registry()
    as_folder = _folder_key(name) if name not in STARTER_MODELS else None
    if as_folder in [_folder_key(f) for f in registry.folders + [s.path for s in registry.stores]]:
        return _forget_folder(as_folder)
    candidate = find_candidate(registry, name)
    if candidate is None:
        candidates = [c.name for c in _candidates(registry)]
        shown_names = [printable(n) for n in candidates[:MAX_NAMES_SHOWN]]
        more = len(candidates) - len(shown_names)
        known = ", ".join(shown_names) + (f" and {more} more (`llamadesk models`)" if more > 0 else "")
        raise BadInputError(f"no model named '{printable(name)}' in the library; models: {known}")
    name = candidate.name
    if candidate.source == "starter":
        raise BadInputError(f"{name} is a starter model that ships with llamadesk; it cannot be removed")
    if candidate.source == "folder":
        folder = candidate.origin["folder"]
        raise BadInputError(
            f"{name} is in {folder}, a folder you added; llamadesk deletes only files it created or "
            f"downloaded: delete the file yourself, or stop listing the folder with `llamadesk models rm {folder}`"
        )
    if candidate.source in APP_NAMES:
        app, store = APP_NAMES[candidate.source], candidate.origin["store"]
        remove = f"`ollama rm {name}`" if app == "Ollama" else "LM Studio"
        raise BadInputError(
            f"{name} belongs to {app} ({store}); llamadesk deletes only files it created or downloaded: "
            f"remove it with {remove}, or stop listing the store with `llamadesk models rm {store}` "
            "(found by itself: `llamadesk models discover off`)"
        )
    if candidate.source == "hub" and candidate.record is not None:
        return _plan_pulled_removal(candidate.record, name)
    first = candidate.locate()
    return _plan_local_removal(first, _checkpoint_left_unused(registry, first, candidate.origin))


# What a folder of llamadesk's models that refuses a deletion probably is, in `models rm`'s line.
MADE_FOLDER_IS = "read-only, or another user's"


def _forget_then_delete(
    name: str, forget: Callable[[Registry], None], deletions: list[tuple[Path, Callable[[], list[Path]]]]
) -> list[Path]:
    """Write the library record without the model, then run `deletions` (each file with the call that
    deletes it). Deleting first left, on a full disk, a record naming files that were gone; now a
    record that cannot be written leaves the model whole."""
    try:
        with editing_registry() as registry:
            forget(registry)
    except LlamadeskError as err:
        error = BadInputError if isinstance(err, BadInputError) else LlamadeskError
        raise error(f"{name} was not removed and nothing was deleted: {err}") from None
    except OSError as err:
        raise LlamadeskError(
            f"{name} was not removed and nothing was deleted: {registry_path()} could not be written "
            f"({err.strerror or err})"
        ) from None
    return _delete_each(name, deletions)


def _delete_each(name: str, deletions: list[tuple[Path, Callable[[], list[Path]]]]) -> list[Path]:
    """Run every deletion, each on its own: once the record is gone nothing leads to a file left
    behind, so every one that could not be deleted is named, and the others still go."""
    removed: list[Path] = []
    left: list[str] = []
    for path, delete in deletions:
        try:
            removed += delete()
        except OSError as err:
            left.append(f"{path} ({err.strerror or err})")
        except LlamadeskError:  # a folder that os.access said could be written refused after all
            left.append(f"{path} (its folder refused the deletion)")
    if left:
        shown_left = ", ".join(printable(line) for line in left[:MAX_NAMES_SHOWN])
        raise LlamadeskError(
            f"{name} is no longer in the library, but {len(left)} of its files could not be deleted: "
            f"{shown_left}; delete {'it' if len(left) == 1 else 'them'} yourself"
        )
    return removed


def _refuse_undeletable_cache_files(snapshot_files: list[Path]) -> None:
    """Before the record changes: a cache folder that refuses a deletion leaves the model whole.
    A blob's folder is checked even where another snapshot still links to the blob (which then
    stays): refusing that rare case is safe, and remove_cached_files checks exactly again."""
    from llamadesk.app.hub.cache import CACHE_FOLDER_IS  # see _pulled_candidates

    for snapshot_file in snapshot_files:
        refuse_undeletable(snapshot_file, CACHE_FOLDER_IS)
        refuse_undeletable(snapshot_file.resolve(), CACHE_FOLDER_IS)


def _eval_files(models: list[Path]) -> list[Path]:
    """The saved evaluations (quantize's MODEL.gguf.eval.json) that exist beside these model files."""
    from llamadesk.quantize.evaluation import eval_file

    return [sidecar for model in models if (sidecar := eval_file(model)).is_file()]


def _plan_pulled_removal(pulled: PulledModel, name: str) -> Removal:
    from llamadesk.app.hub.cache import CACHE_FOLDER_IS, cached_file, remove_cached_files  # see _pulled_candidates

    located = [(f, p) for f in pulled.files if (p := cached_file(pulled.repo, f, pulled.commit)) is not None]
    paths = [p for _, p in located]

    def forget(registry: Registry) -> None:
        # The record itself, not every record of its name: library.json edited by hand may
        # give two the same name (listed as NAME and hub-NAME).
        registry.pulled = [p for p in registry.pulled if p != pulled]

    def apply() -> list[Path]:
        if not pulled.downloaded:
            return _forget_then_delete(name, forget, [])
        _refuse_undeletable_cache_files(paths)
        # `eval --save`'s results beside a snapshot's file go with it: left, they kept the
        # snapshot's folder (and a stale result for a model no longer there) in the cache.
        sidecars = [(sidecar, lambda f=sidecar: delete_files([f], CACHE_FOLDER_IS)) for sidecar in _eval_files(paths)]
        deletions = [
            (path, lambda f=file: remove_cached_files(pulled.repo, pulled.commit, [f])) for file, path in located
        ]
        return _forget_then_delete(name, forget, sidecars + deletions)

    if pulled.downloaded:
        text = f"delete {name} ({pulled.repo}, {len(paths)} file(s)) from the Hugging Face cache"
        return Removal(name, tuple(paths), text, apply)
    text = f"forget {name}; its files were in the Hugging Face cache before llamadesk pulled them, so they stay"
    return Removal(name, (), text, apply)


def _forget_made(first: Path, why: str) -> Removal:
    """Removing a made model's record only: its file is not certain to be the one llamadesk wrote."""

    def apply() -> list[Path]:
        with editing_registry() as registry:
            registry.made = [m for m in registry.made if Path(m.path) != first]
        return []

    return Removal(model_stem(first.name), (), f"forget {first} ({why}); no file is deleted", apply)


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(4) == b"GGUF"
    except OSError:
        return False


def _parts_to_delete(first: Path) -> list[Path]:
    """`first` and the other parts of the split model it starts, each only if its own header says
    it is that part of that many: a file merely named like a part is someone else's."""
    try:
        parts = model_parts(first, open_header(first).metadata)
    except BadInputError:  # damaged since llamadesk wrote it: that file alone
        return [first]
    confirmed = [first]
    for number, part in enumerate(parts[1:], start=1):
        try:
            metadata = open_header(part).metadata
        except BadInputError:
            continue
        if metadata.get("split.no") == number and metadata.get("split.count") == len(parts):
            confirmed.append(part)
    return confirmed


@dataclass(frozen=True)
class _PulledCheckpoint:
    """The checkpoint `pull --convert` downloaded into the Hugging Face cache for a model it made."""

    repo: str
    commit: str
    files: tuple[tuple[str, Path], ...]  # (the file's path in the repo, its snapshot path)

    def describe(self) -> str:
        size = sum(path.resolve().stat().st_size for _, path in self.files if path.exists())
        return (
            f"the checkpoint it was made from ({self.repo}, {len(self.files)} file(s), {format_bytes(size)}) "
            "from the Hugging Face cache"
        )

    def deletions(self) -> list[tuple[Path, Callable[[], list[Path]]]]:
        from llamadesk.app.hub.cache import remove_cached_files  # see _pulled_candidates

        return [(path, lambda f=name: remove_cached_files(self.repo, self.commit, [f])) for name, path in self.files]


def _checkpoint_left_unused(registry: Registry, made: Path, origin: dict[str, Any]) -> _PulledCheckpoint | None:
    """The checkpoint `pull --convert` downloaded to make `made`, when no other library model was
    made from it: gigabytes that only a second conversion would read, which nothing else led the
    user to once the model is gone. Only the files llamadesk downloaded (the cache's marks, as for
    a pulled model), never those of a model pulled from the same commit. None when there is none."""
    from llamadesk.app.hub.cache import COMMIT_ID, cached_file, cached_repo_files, downloaded_by_llamadesk

    repo, commit = origin.get("checkpoint"), origin.get("commit")
    if not (isinstance(repo, str) and is_repo_id(repo) and isinstance(commit, str) and COMMIT_ID.fullmatch(commit)):
        return None  # made from a local checkpoint (a path), or a record written by hand
    made_from_it = [m for m in registry.made if (m.origin.get("checkpoint"), m.origin.get("commit")) == (repo, commit)]
    if any(Path(m.path) != made for m in made_from_it):
        return None
    pulled = {f for p in registry.pulled if (p.repo, p.commit) == (repo, commit) for f in p.files}
    files = []
    try:
        for repo_file in cached_repo_files(repo, commit):
            path = cached_file(repo, repo_file.path, commit)
            if repo_file.path not in pulled and path is not None and downloaded_by_llamadesk(path):
                files.append((repo_file.path, path))
    except (LlamadeskError, OSError):  # a cache that cannot be read: the model still goes, the files stay
        return None
    return _PulledCheckpoint(repo, commit, tuple(files)) if files else None


def _plan_local_removal(first: Path, checkpoint: _PulledCheckpoint | None = None) -> Removal:
    # Older versions recorded `convert -o x.gguf` as the relative "x.gguf": found from another
    # folder it named another file (a person's own was deleted once). Nor is a file that is no
    # longer a GGUF the model llamadesk wrote. Either way only the record goes.
    if not first.is_absolute():
        return _forget_made(first, "recorded without its folder, so which file it is is not known")
    if first.exists() and not _is_gguf(first):
        return _forget_made(first, "it is no longer a GGUF file, so not the model llamadesk wrote")
    files = [p for p in _parts_to_delete(first) if p.exists()] + _eval_files([first])
    cached = [path for _, path in checkpoint.files] if checkpoint is not None else []

    def forget(registry: Registry) -> None:
        registry.made = [m for m in registry.made if Path(m.path) != first]

    def apply() -> list[Path]:
        present = [f for f in files if f.is_symlink() or f.exists()]
        # Every folder checked first: one that refuses leaves the files and the record as they were.
        for file in present:
            refuse_undeletable(file, MADE_FOLDER_IS)
        _refuse_undeletable_cache_files(cached)
        deletions = [(file, lambda f=file: delete_files([f], MADE_FOLDER_IS)) for file in present]
        if checkpoint is not None:
            deletions += checkpoint.deletions()
        return _forget_then_delete(model_stem(first.name), forget, deletions)

    summary = f"delete {', '.join(str(f) for f in files)}"
    if checkpoint is not None:
        summary += f", and {checkpoint.describe()}"
    return Removal(model_stem(first.name), tuple(files + cached), summary, apply)


def add_folder(folder: str) -> tuple[Path, int, bool, str | None]:
    """Add a folder of GGUFs, or another app's store, to the library.

    Returns (folder, models in it, whether it was new, the app whose store it is or None).
    """
    path = Path(folder).expanduser()
    if not path.exists():
        raise BadInputError(f"{folder}: no such folder")
    if not path.is_dir():
        raise BadInputError(f"{folder} is a file; give the folder that holds your .gguf files")
    resolved = path.resolve()
    if resolved == models_dir().resolve():
        raise BadInputError(f"{folder} is llamadesk's own models folder; its models are listed already")
    app = detect_app(resolved)
    # Counted by their first bytes, not their names: a `.gguf` (or a blob) that is not one is no model.
    if app is not None:
        count = sum(m.path is not None and _starts_as_gguf(m.path) for m in models_in(OtherAppStore(app, resolved)))
    else:
        count = sum(_starts_as_gguf(found) for found in listable_ggufs(resolved, recursive=True))
    with editing_registry() as registry:  # after the counting: the lock is held only for the edit
        if app is not None:
            if str(resolved) in [s.path for s in registry.stores]:
                return resolved, count, False, app
            registry.stores.append(AddedStore(app, str(resolved)))
        else:
            if str(resolved) in registry.folders:
                return resolved, count, False, None
            registry.folders.append(str(resolved))
    return resolved, count, True, app


def _starts_as_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(GGUF_MAGIC)) == GGUF_MAGIC
    except OSError:
        return False


def set_discovery(enabled: bool) -> list[OtherAppStore]:
    """Turn the listing of other apps' stores found by themselves on or off; returns those found now."""
    with editing_registry() as registry:
        registry.discover_other_apps = enabled
    return default_stores()


__all__ = [
    "LibraryEntry",
    "list_models",
    "read_library",
    "SkippedModel",
    "names_in_use",
    "resolve_model",
    "looks_like_path",
    "plan_removal",
    "add_folder",
    "set_discovery",
    "other_app_stores",
    "inspect_model",
    "read_eval_results",
]
