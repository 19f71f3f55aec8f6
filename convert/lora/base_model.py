"""The base model an adapter belongs to: its hyperparameters and the shape of every weight.

The base can be a checkpoint folder (only config.json is read), a GGUF (only its header is read),
or a Hub repo id (only config.json is fetched). Every adapter tensor is checked against these
shapes before anything is written, so an adapter for another model or width is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.gguf_file import open_header, summarize
from llamadesk.app.core.value_ranges import shown
from llamadesk.convert.architectures import HF_ARCHITECTURES, supported_architectures
from llamadesk.convert.gguf_metadata import model_name
from llamadesk.convert.model_config import ModelConfig, read_hf_config
from llamadesk.convert.plan import expected_shapes
from llamadesk.convert.source_files import folder_files
from llamadesk.convert.source_location import looks_like_repo_id


@dataclass
class AdapterBase:
    """What an adapter is checked against and what its GGUF records about the base."""

    config: ModelConfig
    name: str
    n_vocab: int
    n_ff: int
    shapes: dict[str, tuple[int, ...]]  # GGUF weight name -> numpy shape (rows, columns)
    repo_id: str | None = None
    folder: Path | None = None  # the checkpoint folder, when the base was given as one
    gguf_file: Path | None = None  # the GGUF, when the base was given as one

    @property
    def source_files(self) -> list[Path]:
        """The base's files an adapter conversion reads, which its output must not replace."""
        if self.folder is not None:
            return folder_files(self.folder)
        return [self.gguf_file] if self.gguf_file is not None else []

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.config.architecture.gguf_arch]

    @property
    def hf_architecture(self) -> str:
        """The transformers class name of the base's family (what gguf_tensor_name is keyed by)."""
        return hf_architecture_of(self.config)


def hf_architecture_of(config: ModelConfig) -> str:
    if config.architecture_name in HF_ARCHITECTURES:
        return config.architecture_name
    return next(name for name, family in HF_ARCHITECTURES.items() if family == config.architecture)


def _hf_shapes(config: ModelConfig, n_vocab: int, n_ff: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    family_kinds = {*config.architecture.required, gguf.MODEL_TENSOR.OUTPUT}
    for kind, shape in expected_shapes(config, n_vocab, n_ff).items():
        if kind not in family_kinds:
            continue
        template = gguf.TENSOR_NAMES[kind]
        if kind == gguf.MODEL_TENSOR.OUTPUT and config.tie_embeddings:
            continue  # llama.cpp reuses token_embd: there is no output weight to adapt
        for bid in range(config.n_layer) if "{bid}" in template else [None]:
            shapes[template.format(bid=bid) + ".weight"] = shape
    return shapes


def base_from_folder(folder: Path, repo_id: str | None = None) -> AdapterBase:
    config = read_hf_config(folder)
    if not config.n_vocab or not config.n_ff:
        raise BadInputError(f"{folder}/config.json: no vocab_size or intermediate_size; the base config is incomplete")
    name = repo_id or model_name(config, folder)
    shapes = _hf_shapes(config, config.n_vocab, config.n_ff)
    return AdapterBase(config, name, config.n_vocab, config.n_ff, shapes, repo_id, folder)


def base_from_gguf(path: Path) -> AdapterBase:
    header = open_header(path)
    summary = summarize(path, header)
    if header.metadata.get("general.type") == "adapter":
        raise BadInputError(f"{path} is an adapter, not a base model; give the model the adapter was trained on")
    # Adapters are trained on transformers' layout: the base's HF family says how its weights were reordered.
    hf_name = next(
        (n for n, a in HF_ARCHITECTURES.items() if gguf.MODEL_ARCH_NAMES[a.gguf_arch] == summary.architecture), None
    )
    if hf_name is None:
        raise BadInputError(
            f"{path}: a {shown(summary.architecture)} model; "
            f"llamadesk converts adapters for {supported_architectures()}"
        )
    shapes = {t.name: tuple(reversed(t.shape)) for t in header.tensors}
    n_ff = int(summary.metadata.get(f"{summary.architecture}.feed_forward_length") or 0)
    config = ModelConfig(
        architecture_name=hf_name,
        architecture=HF_ARCHITECTURES[hf_name],
        n_vocab=summary.n_vocab,
        n_embd=summary.n_embd,
        n_layer=summary.n_layers,
        n_head=summary.n_head,
        n_head_kv=summary.n_head_kv,
        head_dim=summary.head_dim_k,
        n_ff=n_ff,
        rms_eps=1e-6,
        context_length=summary.context_length,
        rope_theta=10000.0,
        tie_embeddings="output.weight" not in shapes,
    )
    return AdapterBase(config, summary.name, summary.n_vocab, n_ff, shapes, gguf_file=path)


def _hub_config(repo_id: str) -> Path:
    """The folder holding the repo's config.json: from huggingface-hub's cache, else fetched alone."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings would bury the one line llamadesk prints
    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent
    try:
        return Path(hf_hub_download(repo_id, "config.json")).parent
    except GatedRepoError:
        raise BadInputError(
            f"{repo_id}: a gated repo; accept its license on the Hub and log in, or give the base with --base"
        ) from None
    except RepositoryNotFoundError:
        raise BadInputError(f"{repo_id}: no such repo on the Hub; give the adapter's base with --base") from None
    except EntryNotFoundError:
        raise BadInputError(f"{repo_id}: the repo has no config.json; give the adapter's base with --base") from None
    except Exception as err:  # the network's errors, or the Hub's: either way the base is unknown now
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LlamadeskError(
            f"{repo_id}: could not fetch the base model's config.json ({why[:200]}); "
            "give the base with --base FOLDER or GGUF"
        ) from None


def _base_here(given: str) -> AdapterBase | None:
    """The base `given` names when it is on this machine (a folder, a GGUF, huggingface-hub's cache)."""
    path = Path(given).expanduser()
    if path.is_dir():
        return base_from_folder(path)
    if path.is_file():
        return base_from_gguf(path)
    if looks_like_repo_id(given):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(given, "config.json")
        if isinstance(cached, str):
            return base_from_folder(Path(cached).parent, repo_id=given)
    return None


def _recorded_family(recorded: str) -> gguf.MODEL_ARCH | None:
    """The GGUF architecture of the base the adapter records, when that is here and readable."""
    try:
        found = _base_here(recorded)
    except LlamadeskError:  # the trainer's path may hold anything now; the given base decides then
        return None
    return found.config.architecture.gguf_arch if found else None


def _check_same_family(base: AdapterBase, recorded: str | None, adapter_folder: Path) -> None:
    """An adapter recorded as trained on one family is refused for a base of another (same widths or not)."""
    family = _recorded_family(recorded) if recorded else None
    if family is not None and family != base.config.architecture.gguf_arch:
        raise BadInputError(
            f"{adapter_folder}: the adapter was trained on a {gguf.MODEL_ARCH_NAMES[family]} model ({shown(recorded)}) "
            f"but {base.name} is a {base.arch_name} model; give the base it was trained on"
        )


def resolve_base(base: str | None, recorded: str | None, adapter_folder: Path) -> AdapterBase:
    """The base from --base, else from the adapter's base_model_name_or_path when that resolves."""
    given = base or recorded
    if not given:
        raise BadInputError(
            f"{adapter_folder}: the adapter does not name its base model; give it with --base FOLDER, GGUF or repo id"
        )
    found = _base_here(given)
    if found is not None:
        if base:
            _check_same_family(found, recorded, adapter_folder)
        return found
    if looks_like_repo_id(given):
        found = base_from_folder(_hub_config(given), repo_id=given)
        if base:
            _check_same_family(found, recorded, adapter_folder)
        return found
    if base:
        raise BadInputError(f"{shown(base)}: no such folder or GGUF, and not a Hub repo id (owner/name)")
    raise BadInputError(
        f"{adapter_folder}: its base model {shown(recorded)} is not here; give it with --base FOLDER, GGUF or repo id"
    )
