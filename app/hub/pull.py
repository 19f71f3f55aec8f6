"""`pull`: choose a GGUF in a Hub repo, download it (every part of a split one) and add it to the library.

Plain functions that print nothing but the download's progress (huggingface-hub's bar, or the
tqdm class the caller passes) and a line on stderr while a checksum is computed, so the terminal
UI can run a pull in a worker the same way the CLI does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.gguf_header import GGUF_MAGIC
from llamadesk.app.core.gguf_naming import (
    GGUFVariant,
    best_fitting_variant,
    gguf_variants,
    model_stem,
    variant_for_request,
)
from llamadesk.app.core.machine import MachineFacts, machine_facts
from llamadesk.app.core.paths import models_dir
from llamadesk.app.hub.cache import (
    cached_commit,
    cached_file,
    cached_repo_files,
    check_revision,
    downloaded_by_llamadesk,
    remove_cached_files,
)
from llamadesk.app.hub.download import ProgressBar, fetch_file
from llamadesk.app.hub.repo import RepoListing, is_safe_repo_path, list_repo, parse_pull_spec, shown_name
from llamadesk.app.library.catalog import inspect_model, names_in_use
from llamadesk.app.library.checkpoint_conversion import check_convert_type, convert_checkpoint
from llamadesk.app.library.fit import memory_for_weights
from llamadesk.app.library.registry import PulledModel, editing_registry, load_registry, record_made_model
from llamadesk.convert.source_location import files_to_download
from llamadesk.quantize.quant_types import QuantType

DEFAULT_REVISION = "main"


# Files of an HF checkpoint that a conversion reads (weights, config, tokenizer).
@dataclass(frozen=True)
class PullResult:
    name: str
    repo: str
    commit: str
    quantization: str | None
    paths: tuple[Path, ...]
    downloaded: bool  # False: everything was in the cache already

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "repo": self.repo,
            "commit": self.commit,
            "quantization": self.quantization,
            "path": str(self.paths[0]),
            "parts": len(self.paths),
            "downloaded": self.downloaded,
        }


def offline_mode() -> bool:
    return constants.is_offline_mode()


def _labels(variants: list[GGUFVariant]) -> str:
    return ", ".join(v.label for v in variants)


def choose_variant(listing: RepoListing, choice: str | None, machine: MachineFacts | None) -> GGUFVariant:
    """The variant `choice` names, or the best one that fits `machine` when choice is None."""
    repo, variants = listing.repo, listing.variants
    if choice is not None and (not is_safe_repo_path(choice) or choice in listing.unsafe_names):
        raise BadInputError(
            f"{shown_name(choice)} is neither a quantization nor a file name llamadesk will download from {repo}; "
            f"run `llamadesk pull {repo} --list` to see its GGUF files"
        )
    if not variants:
        more = ["..."] if len(listing.unsafe_names) > 5 else []
        names = [shown_name(name) for name in listing.unsafe_names[:5]] + more
        skipped = f" (skipped unsafe file names: {', '.join(names)})" if listing.unsafe_names else ""
        if listing.checkpoint_files:
            raise BadInputError(
                f"{repo} has no GGUF files, only a checkpoint ({', '.join(listing.checkpoint_files)}); "
                f"convert it with `llamadesk pull {repo} --convert Q4_K_M`{skipped}"
            )
        raise BadInputError(f"{repo} has no GGUF files and no checkpoint llamadesk can convert{skipped}")
    if choice is not None:
        _refuse_ambiguous(repo, variants, choice)
        found = variant_for_request(variants, choice)
        if found is None:
            raise BadInputError(f"{repo} has no {choice}; it has {_labels(variants)}")
        return found
    budget = memory_for_weights(machine) if machine is not None else None
    best = best_fitting_variant(variants, budget)
    if best is None:
        smallest = min(variants, key=lambda v: v.size or 0)
        raise BadInputError(
            f"none of {repo}'s GGUF files fits in this machine's free memory ({format_bytes(budget or 0)} for "
            f"weights; the smallest, {smallest.label}, is {format_bytes(smallest.size or 0)}); "
            f"pick one with {repo}:QUANT to download it anyway"
        )
    return best


def _refuse_ambiguous(repo: str, variants: list[GGUFVariant], choice: str) -> None:
    """A `:QUANT` that two files share (a 1B and a 3B in one repo) must be named by file instead."""
    if any(f.path == choice or f.path.rsplit("/", 1)[-1] == choice for v in variants for f in v.files):
        return
    matching = [v for v in variants if (v.quantization or "").upper() == choice.upper()]
    if len(matching) > 1:
        files = ", ".join(shown_name(v.first.path, 80) for v in matching[:5])
        raise BadInputError(f"{repo} has {len(matching)} {choice} files ({files}); name one with {repo}:FILE")


def _library_name(variant: GGUFVariant, repo: str) -> str:
    """The variant's file stem, or OWNER-stem when another model already has that name."""
    registry = load_registry()
    stem = model_stem(variant.first.path)
    for pulled in registry.pulled:
        if pulled.repo == repo and pulled.files == [f.path for f in variant.files]:
            return pulled.name
    taken = names_in_use()
    # A name starting with '-' reads as an option on the command line (`chat -m --help-Q4_K_M`).
    if stem not in taken and not stem.startswith("-"):
        return stem
    owner = repo.split("/", 1)[0] if "/" in repo else repo
    name, n = f"{owner}-{stem}", 2
    while name in taken:
        name, n = f"{owner}-{stem}-{n}", n + 1
    return name


def _register(name: str, repo: str, revision: str, commit: str, variant: GGUFVariant, downloaded: bool) -> None:
    """Record the pull under `name`; an earlier pull of the same files from another commit (the
    repo moved on) is replaced, and its files go from the cache when llamadesk downloaded them,
    since no record would name them any more."""
    with editing_registry() as registry:
        earlier = registry.pulled_named(name)
        registry.pulled = [p for p in registry.pulled if p.name != name]
        registry.pulled.append(
            PulledModel(
                name=name,
                repo=repo,
                revision=revision,
                commit=commit,
                files=[f.path for f in variant.files],
                quantization=variant.quantization,
                # Files of the same commit a pull made before marks were written stay llamadesk's.
                downloaded=downloaded or bool(earlier and earlier.downloaded and earlier.commit == commit),
            )
        )
        still_named = any(p.repo == repo and p.commit == earlier.commit for p in registry.pulled) if earlier else True
    if earlier is not None and earlier.downloaded and earlier.repo == repo and not still_named:
        remove_cached_files(earlier.repo, earlier.commit, earlier.files)


def _check_is_gguf(repo: str, commit: str, variant: GGUFVariant, first: Path) -> None:
    """The pulled file must be a GGUF llamadesk can read; else it is removed (when llamadesk
    downloaded it) and never recorded, so it does not sit in the library failing every listing."""
    try:
        with first.open("rb") as file:
            starts_as_gguf = file.read(len(GGUF_MAGIC)) == GGUF_MAGIC
        problem = None if starts_as_gguf else "it does not start as a GGUF file does"
        if problem is None:
            inspect_model(first)
    except (LlamadeskError, OSError) as err:
        problem = str(err)
    if problem is None:
        return
    removed = ""
    if downloaded_by_llamadesk(first):
        remove_cached_files(repo, commit, [f.path for f in variant.files])
        removed = "; the download was removed"
    raise BadInputError(
        f"the file {shown_name(variant.first.path, 120)} from {repo} is not a GGUF model llamadesk can use "
        f"({problem}){removed}; choose another file with `llamadesk pull {repo} --list`"
    )


def _downloaded_by_llamadesk(paths: list[Path] | tuple[Path, ...]) -> bool:
    """Only a model whose every part llamadesk downloaded, in this run or an earlier one that was
    stopped, is llamadesk's to delete later."""
    return bool(paths) and all(downloaded_by_llamadesk(p) for p in paths)


def _pull_offline(repo: str, choice: str | None, revision: str, machine: MachineFacts | None) -> PullResult:
    """Offline mode: the files must be in the cache already; say exactly what is missing."""
    commit = cached_commit(repo, revision)
    if commit is None:
        raise LlamadeskError(
            f"offline mode is on (HF_HUB_OFFLINE) and nothing of {repo} is in the cache; "
            "unset HF_HUB_OFFLINE and pull again to download it"
        )
    cached = cached_repo_files(repo, commit)
    listing = RepoListing(repo, commit, tuple(cached), (), gated=False)
    try:
        variant = choose_variant(listing, choice, machine)
    except BadInputError as err:
        wanted = choice or "a GGUF file that fits this machine"
        have = _labels(listing.variants) or "no GGUF files"
        raise LlamadeskError(
            f"offline mode is on (HF_HUB_OFFLINE) and the cache has no {wanted} from {repo} (cached: {have}); "
            "unset HF_HUB_OFFLINE to download it"
        ) from err
    paths = tuple(p for f in variant.files if (p := cached_file(repo, f.path, commit)) is not None)
    _check_is_gguf(repo, commit, variant, paths[0])
    name = _library_name(variant, repo)
    _register(name, repo, revision, commit, variant, downloaded=_downloaded_by_llamadesk(paths))
    return PullResult(name, repo, commit, variant.quantization, paths, downloaded=False)


def pull_model(
    spec: str, revision: str | None = None, machine: MachineFacts | None = None, progress: ProgressBar | None = None
) -> PullResult:
    """Pull `REPO[:QUANT|:FILE]` into the Hugging Face cache and the library; see the module docstring.

    `progress`: a tqdm class to report download progress with (default: huggingface-hub's bar).
    """
    request = parse_pull_spec(spec)
    revision = check_revision(revision or DEFAULT_REVISION)
    machine = machine if machine is not None else machine_facts()
    load_registry()  # a damaged library.json fails here, before gigabytes are downloaded
    if offline_mode():
        return _pull_offline(request.repo, request.choice, revision, machine)
    listing = list_repo(request.repo, revision)
    variant = choose_variant(listing, request.choice, machine)
    paths, fetched = [], []
    for file in variant.files:
        path, got = fetch_file(request.repo, file, listing.commit, revision, progress)
        paths.append(path)
        fetched.append(got)
    _check_is_gguf(request.repo, listing.commit, variant, paths[0])
    name = _library_name(variant, request.repo)
    _register(name, request.repo, revision, listing.commit, variant, downloaded=_downloaded_by_llamadesk(paths))
    return PullResult(name, request.repo, listing.commit, variant.quantization, tuple(paths), downloaded=any(fetched))


def list_variants(spec: str, revision: str | None = None) -> list[GGUFVariant]:
    """The GGUF variants a repo offers (for `pull --list` and the UI's picker)."""
    request = parse_pull_spec(spec)
    if offline_mode():
        return _cached_variants(request.repo, check_revision(revision or DEFAULT_REVISION))
    return list_repo(request.repo, check_revision(revision) if revision else None).variants


def _cached_variants(repo: str, revision: str) -> list[GGUFVariant]:
    """Offline, `--list` shows what the cache holds of the repo (the Hub cannot be asked)."""
    commit = cached_commit(repo, revision)
    variants = gguf_variants(cached_repo_files(repo, commit)) if commit is not None else []
    if not variants:
        raise LlamadeskError(
            f"offline mode is on (HF_HUB_OFFLINE) and the cache holds no GGUF files of {repo}; "
            "unset HF_HUB_OFFLINE to list what the Hub has"
        )
    return variants


def _check_pull_convert_type(quant_type: str, repo: str) -> QuantType:
    """The type `pull --convert` can make without an importance matrix; refused before any download,
    since quantizing refused such a type only after the whole checkpoint came down and was converted."""
    f16_model = f"{repo.rsplit('/', 1)[-1]}-F16"

    def advice(quant: QuantType) -> str:
        return (
            f"{quant.name} needs an importance matrix, which pull --convert cannot make; pull with --convert F16, "
            f"then run `llamadesk imatrix {f16_model} --text FILE -o {f16_model}.imatrix` and "
            f"`llamadesk quantize {f16_model} -t {quant.name} --imatrix {f16_model}.imatrix` "
            "(`llamadesk quantize --help` explains)"
        )

    return check_convert_type(quant_type, advice)


def pull_and_convert(spec: str, quant_type: str, revision: str | None = None, force: bool = False) -> Path:
    """Download a repo's checkpoint (checked like any pull) and convert it to a GGUF in the library."""
    request = parse_pull_spec(spec)
    quant = _check_pull_convert_type(quant_type, request.repo)
    revision = check_revision(revision or DEFAULT_REVISION)
    output = models_dir() / f"{request.repo.rsplit('/', 1)[-1]}-{quant.name}.gguf"
    if output.exists() and not force:
        raise BadInputError(f"{output} already exists; pass --force to convert again")
    listing = list_repo(request.repo, revision)
    if not listing.checkpoint_files:
        raise BadInputError(f"{request.repo} holds no checkpoint (config.json and weights) to convert")
    needed = set(files_to_download([f.path for f in listing.files]))  # convert/ says what it reads
    wanted = [f for f in listing.files if f.path in needed]
    paths = [fetch_file(request.repo, f, listing.commit, revision)[0] for f in wanted]
    checkpoint_dir = paths[0].parent
    convert_checkpoint(checkpoint_dir, output, quant, force=force, name=request.repo)
    record_made_model(output, {"checkpoint": request.repo, "revision": revision, "commit": listing.commit})
    return output


__all__ = ["PullResult", "pull_model", "pull_and_convert", "list_variants", "choose_variant", "gguf_variants"]
