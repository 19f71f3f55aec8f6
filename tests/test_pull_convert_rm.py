"""`models rm` of a model `pull --convert` made: the checkpoint downloaded for it goes too, once no model needs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli_process
from tests.fixtures.family_checkpoints import family_checkpoint
from tests.gguf_samples import tiny_gguf_bytes
from tests.hub_standin import HubStandin, StandinFile, pull_test_env

REPO = "org/Tiny-Qwen2"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = family_checkpoint("qwen2")
    files = {
        p.name: StandinFile(p.read_bytes(), lfs=p.suffix == ".safetensors")
        for p in folder.iterdir()
        if p.is_file() and p.name != "llamadesk_fixture.json"
    }
    # A GGUF in the same repo and commit, pulled on its own: never part of the checkpoint's removal.
    files["Tiny-Q4_K_M.gguf"] = tiny_gguf_bytes(tmp_path_factory.mktemp("gguf"), "Tiny-Q4_K_M.gguf", "Q4_K_M")
    with HubStandin() as standin:
        standin.add_repo(REPO, files)
        yield standin


def _cli(env, *args):
    done = run_cli_process(*args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _summary(env, name: str) -> str:
    """What `models rm NAME` asks before it removes (the prompt needs a terminal; the plan does not)."""
    code = "import sys\nfrom llamadesk.app.library import catalog\nprint(catalog.plan_removal(sys.argv[1]).summary)"
    done = subprocess.run(
        [sys.executable, "-c", code, name], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _snapshot_files(env) -> set[str]:
    return {p.name for p in Path(env["HF_HOME"]).rglob("*") if "snapshots" in p.parts and not p.is_dir()}


def _blobs(env) -> set[str]:
    return {p.name for p in Path(env["HF_HOME"]).rglob("*") if "blobs" in p.parts and p.is_file()}


def test_the_last_model_made_from_a_pulled_checkpoint_takes_it_out_of_the_cache(hub, tmp_path, gemma_path):
    env = pull_test_env(hub, tmp_path, gemma_path)
    _cli(env, "pull", f"{REPO}:Q4_K_M")
    gguf_only = _snapshot_files(env)
    _cli(env, "pull", REPO, "--convert", "Q8_0")
    _cli(env, "pull", REPO, "--convert", "F16")
    checkpoint = _snapshot_files(env) - gguf_only
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= checkpoint
    blobs_before = _blobs(env)

    # Another model made from it still could be converted again: the checkpoint stays.
    assert "checkpoint" not in _summary(env, "Tiny-Qwen2-Q8_0")
    _cli(env, "models", "rm", "Tiny-Qwen2-Q8_0", "--yes")
    assert _snapshot_files(env) == gguf_only | checkpoint

    # The last one: the confirmation says so, and the checkpoint's files and blobs go, the GGUF's stay.
    assert f"the checkpoint it was made from ({REPO}, " in _summary(env, "Tiny-Qwen2-F16")
    _cli(env, "models", "rm", "Tiny-Qwen2-F16", "--yes")
    assert _snapshot_files(env) == gguf_only
    assert len(_blobs(env)) < len(blobs_before)
    names = [m["name"] for m in json.loads(_cli(env, "models", "--json").stdout)]
    assert not [n for n in names if n.startswith("Tiny-Qwen2")] and any("Tiny-Q4_K_M" in n for n in names)
    [gguf] = [p for p in Path(env["HF_HOME"]).rglob("Tiny-Q4_K_M.gguf") if "snapshots" in p.parts]
    assert gguf.read_bytes()[:4] == b"GGUF"  # the pulled GGUF's link and blob are whole


def test_a_checkpoint_that_was_in_the_cache_before_llamadesk_stays(hub, tmp_path, gemma_path):
    env = pull_test_env(hub, tmp_path, gemma_path)
    _cli(env, "pull", REPO, "--convert", "Q8_0")
    checkpoint = _snapshot_files(env)
    # As if another program (transformers) had downloaded these blobs: no mark of llamadesk's.
    for mark in Path(env["HF_HOME"]).rglob("*.llamadesk-downloaded"):
        mark.unlink()
    _cli(env, "models", "rm", "Tiny-Qwen2-Q8_0", "--yes")
    assert _snapshot_files(env) == checkpoint
