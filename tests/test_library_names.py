"""Names in the library and `models rm`: prefixed pulled names, `REPO:QUANT` and `NAME` for
`NAME:latest`, hand-written records, a library.json behind a link, folders that change while they
are walked (hub hunt F3, F12, F13, F16, F21, F28; README hunt B6)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli_process
from tests.gguf_samples import tiny_gguf_bytes
from tests.other_app_stores import add_blob_file, ollama_manifest, write_manifest


@pytest.fixture
def home(tmp_path, gemma_path) -> Path:
    home = tmp_path / "home"
    (home / "data" / "models").mkdir(parents=True)
    (home / "data" / "models" / gemma_path.name).symlink_to(gemma_path)
    return home


def cli(home: Path, *args: str, full_disk: bool = False, **extra: str):
    env = {"LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "1", **extra}
    return run_cli_process(*args, env=env, full_disk=full_disk)


def listed(home: Path) -> dict[str, dict]:
    done = cli(home, "models", "--json")
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)}


def cached_pull(home: Path, tmp_path: Path, name: str, repo: str, file: str, quant: str = "Q4_K_M") -> dict:
    """A pulled record and its file in the Hugging Face cache, laid out as huggingface-hub does."""
    data = tiny_gguf_bytes(tmp_path, f"{name}.gguf", quant)
    storage = home / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    pointer = storage / "snapshots" / commit / file
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    return {
        "name": name,
        "repo": repo,
        "revision": "main",
        "commit": commit,
        "files": [file],
        "quantization": quant,
        "downloaded": True,
    }


def write_library(home: Path, **records) -> Path:
    path = home / "data" / "library.json"
    path.write_text(json.dumps({"schema_version": 1, **records}))
    return path


def test_rm_of_a_prefixed_pulled_name_removes_that_model(home, tmp_path):
    """F3: an AssertionError "internal error"; a pulled model named like a starter too."""
    first = cached_pull(home, tmp_path, "mymodel", "a/One-GGUF", "One-Q4_K_M.gguf")
    second = cached_pull(home, tmp_path, "mymodel", "b/Two-GGUF", "Two-Q4_K_M.gguf")
    starter_named = cached_pull(home, tmp_path, "smollm2", "c/Three-GGUF", "Three-Q4_K_M.gguf")
    write_library(home, pulled=[first, second, starter_named])
    assert {"mymodel", "hub-mymodel", "hub-smollm2"} <= set(listed(home))
    for name in ("hub-mymodel", "hub-smollm2"):
        done = cli(home, "models", "rm", name, "--yes")
        assert done.returncode == 0, done.stderr
    remaining = json.loads((home / "data" / "library.json").read_text())["pulled"]
    assert remaining == [first]
    assert not list((home / "hf" / "hub" / "models--b--Two-GGUF" / "blobs").iterdir())


def test_rm_takes_repo_quant_of_a_pulled_model_and_name_for_name_latest(home, tmp_path):
    """B6: `models rm` resolves names as `-m` does."""
    pulled = cached_pull(home, tmp_path, "Tiny-Q4_K_M", "t/Tiny-GGUF", "Tiny-Q4_K_M.gguf")
    write_library(home, pulled=[pulled])
    done = cli(home, "models", "rm", "t/Tiny-GGUF:Q4_K_M", "--yes")
    assert done.returncode == 0 and "removed Tiny-Q4_K_M" in done.stdout, done.stderr

    store = tmp_path / "ollama"
    layer = add_blob_file(store, tmp_path / "Tiny-Q4_K_M.gguf")
    write_manifest(store, "registry.ollama.ai/library/tiny/latest", ollama_manifest(store, layer))
    refused = cli(home, "models", "rm", "tiny", "--yes", OLLAMA_MODELS=str(store))
    assert refused.returncode == 2 and "belongs to Ollama" in refused.stderr, refused.stderr
    assert "`ollama rm tiny:latest`" in refused.stderr


def test_repo_quant_that_two_pulled_models_share_is_refused_by_name(home, tmp_path):
    """F21: it was "no such file"."""
    one = cached_pull(home, tmp_path, "L-1B-Q4_K_M", "m/L-GGUF", "L-1B-Q4_K_M.gguf")
    two = cached_pull(home, tmp_path, "L-3B-Q4_K_M", "m/L-GGUF", "L-3B-Q4_K_M.gguf")
    write_library(home, pulled=[one, two])
    done = cli(home, "doctor", "-m", "m/L-GGUF:Q4_K_M", "--threads", "1")
    assert done.returncode == 2 and "matches 2 pulled models: L-1B-Q4_K_M, L-3B-Q4_K_M" in done.stderr, done.stderr


@pytest.mark.parametrize("read_only", ["snapshots and blobs", "blobs"])
def test_rm_in_a_read_only_cache_names_what_it_cannot_delete_and_removes_nothing(home, tmp_path, read_only):
    # It ended on a bare "Permission denied: PATH"; with blobs/ alone read-only, the snapshot's link
    # was gone by then: the model could not be run any more, and its blob stayed.

    from tests.conftest import LLAMADESK, one_line_error
    from tests.permissions import run_bound_by_file_modes

    pulled = cached_pull(home, tmp_path, "Tiny-Q4_K_M", "t/Tiny-GGUF", "Tiny-Q4_K_M.gguf")
    record = write_library(home, pulled=[pulled])
    before = record.read_bytes()
    storage = home / "hf" / "hub" / "models--t--Tiny-GGUF"
    pointer = storage / "snapshots" / pulled["commit"] / "Tiny-Q4_K_M.gguf"
    blob = pointer.resolve()
    cache_files = sorted(storage.rglob("*"))
    refusing = blob.parent if read_only == "blobs" else pointer.parent
    folders = [blob.parent] + ([pointer.parent, pointer.parent.parent] if read_only != "blobs" else [])
    for folder in folders:
        folder.chmod(0o555)
    try:
        done = run_bound_by_file_modes(
            [str(LLAMADESK), "models", "rm", "Tiny-Q4_K_M", "--yes"],
            {**os.environ, "LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "1"},
        )
    finally:
        for folder in folders:
            folder.chmod(0o755)
    # An environment that fails, not bad input (README, Robustness): exit 1.
    undeletable = blob if read_only == "blobs" else pointer
    assert one_line_error(done, 1) == (
        f"llamadesk: {undeletable} cannot be deleted: folder {refusing} is not writable (a read-only Hugging Face "
        "cache, or another user's); nothing was removed: make it writable, or remove the model as the user who owns it"
    )
    assert sorted(storage.rglob("*")) == cache_files and pointer.read_bytes() == blob.read_bytes()
    assert record.read_bytes() == before
    assert "Tiny-Q4_K_M" in listed(home)


def test_rm_of_a_pulled_model_on_a_full_disk_deletes_nothing_and_the_model_stays(home, tmp_path):
    # The cache's files went first, then library.json could not be written: its record named files that were gone.
    from tests.conftest import one_line_error

    record = write_library(home, pulled=[cached_pull(home, tmp_path, "Tiny-Q4_K_M", "t/Tiny-GGUF", "Tiny-Q4_K_M.gguf")])
    before = record.read_bytes()
    storage = home / "hf" / "hub" / "models--t--Tiny-GGUF"
    cache_files = {p: p.read_bytes() for p in storage.rglob("*") if p.is_file()}
    done = cli(home, "models", "rm", "Tiny-Q4_K_M", "--yes", full_disk=True)
    assert one_line_error(done, 1).startswith(
        f"llamadesk: Tiny-Q4_K_M was not removed and nothing was deleted: {record} could not be written: "
    )
    assert {p: p.read_bytes() for p in storage.rglob("*") if p.is_file()} == cache_files
    assert record.read_bytes() == before and "Tiny-Q4_K_M" in listed(home)


@pytest.mark.parametrize(
    "field, value, why",
    [
        ("repo", "../../..", "not a Hub repo id"),
        ("repo", "a/b/c", "not a Hub repo id"),
        ("revision", "../x", "revision"),
    ],
)
def test_a_hand_written_pulled_record_the_hub_cannot_take_is_one_line(home, tmp_path, field, value, why):
    """F12: an internal error (HFValidationError) hid the whole library."""
    record = cached_pull(home, tmp_path, "x", "t/Tiny-GGUF", "Tiny-Q4_K_M.gguf") | {field: value}
    write_library(home, pulled=[record])
    done = cli(home, "models")
    assert done.returncode == 1 and why in done.stderr and "internal error" not in done.stderr, done.stderr
    assert "fix or delete it" in done.stderr


@pytest.mark.parametrize("written", ["trailing-slash", "relative"])
def test_a_hand_written_folder_entry_can_be_removed_by_its_path(home, tmp_path, written):
    """F13."""
    folder = tmp_path / "ggufs"
    folder.mkdir()
    tiny_gguf_bytes(folder, "Mine-Q4_K_M.gguf")
    entry = str(folder) + "/" if written == "trailing-slash" else os.path.relpath(folder)
    write_library(home, folders=[entry])
    assert "Mine-Q4_K_M" in listed(home)
    done = cli(home, "models", "rm", str(folder), "--yes")
    assert done.returncode == 0 and "no files deleted" in done.stdout, done.stderr
    assert json.loads((home / "data" / "library.json").read_text())["folders"] == []


def test_a_linked_library_record_stays_linked_when_changed(home, tmp_path):
    """F28: the link was replaced by a plain file; the linked file stopped being used."""
    target = tmp_path / "dotfiles" / "library.json"
    target.parent.mkdir()
    target.write_text(json.dumps({"schema_version": 1, "folders": []}))
    (home / "data" / "library.json").symlink_to(target)
    folder = tmp_path / "ggufs"
    folder.mkdir()
    assert cli(home, "models", "add", str(folder)).returncode == 0
    assert (home / "data" / "library.json").is_symlink()
    assert json.loads(target.read_text())["folders"] == [str(folder.resolve())]


def test_a_subfolder_that_vanishes_during_the_walk_is_passed_over(tmp_path, monkeypatch):
    """F16: `models` failed with "No such file or directory" for a folder the user never named."""
    from llamadesk.app.library.gguf_listing import listable_ggufs

    (tmp_path / "gone").mkdir()
    tiny_gguf_bytes(tmp_path, "Mine-Q4_K_M.gguf")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "gone":
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert [p.name for p in listable_ggufs(tmp_path, recursive=True)] == ["Mine-Q4_K_M.gguf"]


def test_a_starter_is_found_without_walking_added_folders(home, tmp_path, monkeypatch):
    """F16: `-m smollm2` failed because of an unrelated added folder."""
    from llamadesk.app.library import catalog

    folder = tmp_path / "ggufs"
    folder.mkdir()
    write_library(home, folders=[str(folder)])
    monkeypatch.setenv("LLAMADESK_HOME", str(home))

    def walked(registry):
        raise AssertionError("the added folders were walked")

    monkeypatch.setattr(catalog, "CANDIDATE_PLACES", (*catalog.CANDIDATE_PLACES[:3], walked, walked))
    assert catalog.resolve_library_name("smollm2").name.endswith(".gguf")


def test_a_starter_runs_with_a_damaged_library_record(home):
    """F29 (in part): `doctor` gave up on a damaged library.json although its model is a starter."""
    (home / "data" / "library.json").write_text("[]")
    done = cli(home, "doctor", "--threads", "1")
    assert done.returncode == 0, done.stderr
    refused = cli(home, "models")
    assert refused.returncode == 1 and "fix or delete it" in refused.stderr


def test_rm_of_a_pulled_model_deletes_its_saved_evaluations_too(home, tmp_path):
    """`eval --save` writes MODEL.gguf.eval.json beside the snapshot's file; rm left it, and with it
    the snapshot's folder and a result for a model no longer there."""
    pulled = cached_pull(home, tmp_path, "Tiny-Q4_K_M", "t/Tiny-GGUF", "Tiny-Q4_K_M.gguf")
    write_library(home, pulled=[pulled])
    snapshot = home / "hf" / "hub" / "models--t--Tiny-GGUF" / "snapshots" / pulled["commit"]
    (snapshot / "Tiny-Q4_K_M.gguf.eval.json").write_text("[]")
    done = cli(home, "models", "rm", "Tiny-Q4_K_M", "--yes")
    assert done.returncode == 0, done.stderr
    assert not snapshot.exists()
