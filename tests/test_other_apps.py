"""Ollama's store and LM Studio's folder in the library: listed under those apps' names without a
byte copied, found by themselves unless turned off, never deleted, usable at once through serve."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import ollama
import pytest

from llamadesk.app.library.other_apps import ollama_models, ollama_name
from tests.conftest import run_cli
from tests.gguf_samples import tiny_gguf_bytes
from tests.other_app_stores import (
    add_blob_file,
    lmstudio_folder,
    ollama_manifest,
    ollama_store,
    write_blob,
    write_manifest,
)
from tests.serve_process import serving

OLLAMA_NAME = "smollm2:135m"
HUB_NAME = "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_1"
LMSTUDIO_NAME = "SmolLM2-135M-Instruct-Q4_1"


@pytest.fixture(scope="module")
def user_home(tmp_path_factory, smollm2_path) -> Path:
    """A user's home where Ollama and LM Studio have each downloaded SmolLM2 (the real starter GGUF)."""
    home = tmp_path_factory.mktemp("user-home")
    ollama_store(home, smollm2_path)
    lmstudio_folder(home, smollm2_path)
    return home


@pytest.fixture
def llamadesk_home(tmp_path, gemma_path) -> Path:
    home = tmp_path / "llamadesk-home"
    (home / "data" / "models").mkdir(parents=True)
    (home / "data" / "models" / gemma_path.name).symlink_to(gemma_path)  # shared, not re-assembled
    return home


def cli(llamadesk_home: Path, user_home: Path, *args: str):
    env = {"LLAMADESK_HOME": str(llamadesk_home), "HOME": str(user_home), "OLLAMA_MODELS": ""}
    return run_cli(*args, env=env)


def listed(llamadesk_home: Path, user_home: Path) -> dict[str, dict]:
    done = cli(llamadesk_home, user_home, "models", "--json")
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)}


def blob_of(store: Path, where: str) -> Path:
    manifest = json.loads((store / "manifests" / where).read_text())
    digest = manifest["layers"][0]["digest"].removeprefix("sha256:")
    return store / "blobs" / f"sha256-{digest}"


def test_ollama_names_its_models_as_ollama_shows_them():
    assert ollama_name("registry.ollama.ai", "library", "llama3.2", "1b") == "llama3.2:1b"
    assert ollama_name("registry.ollama.ai", "someone", "tuned", "latest") == "someone/tuned:latest"
    assert ollama_name("hf.co", "bartowski", "Repo-GGUF", "Q4_K_M") == "hf.co/bartowski/Repo-GGUF:Q4_K_M"


def test_ollama_and_lm_studio_models_are_found_and_listed_where_they_lie(
    llamadesk_home, user_home, smollm2_path, gemma_path
):
    models = listed(llamadesk_home, user_home)
    store = user_home / ".ollama" / "models"
    blob = blob_of(store, "registry.ollama.ai/library/smollm2/135m")
    for name in (OLLAMA_NAME, HUB_NAME):
        entry = models[name]
        assert entry["path"] == str(blob) and entry["source"] == "ollama" and entry["deletable"] is False
        assert entry["architecture"] == "llama" and entry["quantization"] == "Q4_1" and entry["has_chat_template"]
        assert entry["file_size"] == smollm2_path.stat().st_size
    assert models[OLLAMA_NAME]["origin"] == {
        "app": "Ollama",
        "store": str(store),
        "model": "registry.ollama.ai/library/smollm2/135m",
    }
    lm = models[LMSTUDIO_NAME]
    repo = "lmstudio-community/SmolLM2-135M-Instruct-GGUF"
    assert lm["source"] == "lmstudio" and lm["origin"]["model"] == repo and lm["deletable"] is False
    assert lm["path"] == str(user_home / ".lmstudio" / "models" / repo / "SmolLM2-135M-Instruct-Q4_1.gguf")
    assert not any("mmproj" in name for name in models)  # a vision projector is not a model
    assert [p.name for p in (llamadesk_home / "data" / "models").iterdir()] == [gemma_path.name]  # nothing copied
    table = cli(llamadesk_home, user_home, "models").stdout
    assert "Ollama registry.ollama.ai/library/smollm2/135m" in table and f"LM Studio {repo}" in table


def test_discovery_can_be_turned_off_and_an_added_store_is_listed_either_way(llamadesk_home, user_home):
    done = cli(llamadesk_home, user_home, "models", "discover", "off")
    assert done.returncode == 0, done.stderr
    models = listed(llamadesk_home, user_home)
    assert OLLAMA_NAME not in models and LMSTUDIO_NAME not in models
    store = user_home / ".ollama" / "models"
    added = cli(llamadesk_home, user_home, "models", "add", str(store))
    assert added.returncode == 0 and f"added Ollama's store {store} (2 GGUF model(s) in it)" in added.stdout
    models = listed(llamadesk_home, user_home)
    assert OLLAMA_NAME in models and LMSTUDIO_NAME not in models
    again = cli(llamadesk_home, user_home, "models", "add", str(store))
    assert "already in the library" in again.stdout
    on = cli(llamadesk_home, user_home, "models", "discover", "on")
    assert "LM Studio" in on.stdout and "Ollama" in on.stdout
    assert {OLLAMA_NAME, LMSTUDIO_NAME} <= set(listed(llamadesk_home, user_home))


def test_other_apps_models_are_never_deleted_and_a_store_can_be_forgotten(llamadesk_home, user_home):
    store = user_home / ".ollama" / "models"
    blob = blob_of(store, "registry.ollama.ai/library/smollm2/135m")
    refused = cli(llamadesk_home, user_home, "models", "rm", OLLAMA_NAME, "--yes")
    assert refused.returncode == 2 and "`ollama rm smollm2:135m`" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    refused = cli(llamadesk_home, user_home, "models", "rm", LMSTUDIO_NAME, "--yes")
    assert refused.returncode == 2 and "LM Studio" in refused.stderr
    assert blob.is_file()
    cli(llamadesk_home, user_home, "models", "discover", "off")
    cli(llamadesk_home, user_home, "models", "add", str(store))
    forgotten = cli(llamadesk_home, user_home, "models", "rm", str(store), "--yes")
    assert forgotten.returncode == 0 and "no files deleted" in forgotten.stdout
    assert OLLAMA_NAME not in listed(llamadesk_home, user_home) and blob.is_file()


def test_an_lm_studio_folder_added_by_hand_is_read_as_lm_studio(llamadesk_home, user_home, tmp_path):
    cli(llamadesk_home, user_home, "models", "discover", "off")
    moved = tmp_path / "elsewhere" / "lm-studio" / "models"  # the folder of LM Studio before 0.3
    shutil.copytree(user_home / ".lmstudio" / "models", moved)
    added = cli(llamadesk_home, user_home, "models", "add", str(moved))
    assert added.returncode == 0 and "added LM Studio's store" in added.stdout
    assert listed(llamadesk_home, user_home)[LMSTUDIO_NAME]["source"] == "lmstudio"


def test_a_damaged_store_lists_the_good_models_and_says_why_it_skips_the_rest(llamadesk_home, tmp_path):
    """Every way a manifest or blob can be wrong, beside one good model: the good one is listed,
    each bad one is skipped with one line, and nothing outside the store is ever opened."""
    user = tmp_path / "user"
    store = user / ".ollama" / "models"
    good = write_blob(store, tiny_gguf_bytes(tmp_path, "good.gguf", "Q8_0"))
    write_manifest(store, "registry.ollama.ai/library/good/latest", ollama_manifest(store, good))
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(tiny_gguf_bytes(tmp_path, "secret.gguf"))
    secret = add_blob_file(tmp_path / "other-store", outside)
    (store / "blobs" / f"sha256-{secret['digest'][7:]}").symlink_to(outside)
    short = dict(good, size=good["size"] + 1)
    bad = {
        "truncated": ollama_manifest(store, short),
        "traversal": ollama_manifest(store, {"digest": "sha256:../../../../secret.gguf", "size": 1}),
        "missing-blob": ollama_manifest(store, {"digest": "sha256:" + "0" * 64, "size": 1}),
        "link-outside": ollama_manifest(store, secret),
        "adapter": ollama_manifest(store, good, ({"mediaType": "application/vnd.ollama.image.adapter", **good},)),
        "no-model-layer": {"layers": [{"mediaType": "application/vnd.ollama.image.tensor", **good}]},
        "layers-not-a-list": {"layers": {"0": good}},
        "size-not-a-number": ollama_manifest(store, dict(good, size="9")),
        "not-json": b"\x00\xff not json",
        "deep": b'{"layers": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    }
    for tag, manifest in bad.items():
        write_manifest(store, f"registry.ollama.ai/library/bad/{tag}", manifest)
    os.symlink("/etc/passwd", store / "manifests" / "registry.ollama.ai" / "library" / "bad" / "linked")
    (store / "manifests" / "registry.ollama.ai" / "library" / "bad" / "a-folder").mkdir()
    models = {m.name: m for m in ollama_models(store)}
    assert models["good:latest"].path == store.resolve() / "blobs" / f"sha256-{good['digest'][7:]}"
    assert set(models) == {"good:latest"} | {f"bad:{tag}" for tag in bad}  # no link, no folder
    for tag in bad:
        model = models[f"bad:{tag}"]
        assert model.path is None and model.problem and "\n" not in model.problem, (tag, model)
    assert "unfinished" in models["bad:truncated"].problem and "outside" in models["bad:link-outside"].problem
    assert "LoRA" in models["bad:adapter"].problem and "sha256:<64" in models["bad:traversal"].problem
    done = run_cli(
        "models", "--json", env={"LLAMADESK_HOME": str(llamadesk_home), "HOME": str(user), "OLLAMA_MODELS": ""}
    )
    assert done.returncode == 0
    assert "good:latest" in [m["name"] for m in json.loads(done.stdout)]
    skipped = [line for line in done.stderr.splitlines() if line.startswith("llamadesk: skipped bad:")]
    assert len(skipped) == len(bad), done.stderr
    # Asked for by name, one of them is bad input, as a file that is not a GGUF is (it was exit 1).
    env = {"LLAMADESK_HOME": str(llamadesk_home), "HOME": str(user), "OLLAMA_MODELS": ""}
    asked = run_cli("chat", "-m", "bad:truncated", "--threads", "1", "hi", env=env)
    assert asked.returncode == 2 and "the download is unfinished or damaged" in asked.stderr, asked.stderr


def test_ollama_models_resolve_by_name_and_by_ollama_s_latest_alias(llamadesk_home, tmp_path, monkeypatch):
    from llamadesk.app.library.catalog import resolve_library_name

    user = tmp_path / "user"
    store = user / ".ollama" / "models"
    layer = write_blob(store, tiny_gguf_bytes(tmp_path, "t.gguf"))
    write_manifest(store, "registry.ollama.ai/library/tiny/latest", ollama_manifest(store, layer))
    for name, value in {"LLAMADESK_HOME": str(llamadesk_home), "HOME": str(user), "OLLAMA_MODELS": ""}.items():
        monkeypatch.setenv(name, value)
    blob = store.resolve() / "blobs" / f"sha256-{layer['digest'][7:]}"
    assert resolve_library_name("tiny:latest") == blob
    assert resolve_library_name("tiny") == blob  # Ollama's clients leave out :latest
    assert resolve_library_name(str(blob)) is None  # a path is never a library name


@pytest.mark.slow
def test_serve_answers_ollama_clients_with_the_user_s_ollama_models(user_home):
    with serving(env={"HOME": str(user_home), "OLLAMA_MODELS": ""}) as served:
        client = ollama.Client(host=served.url, timeout=120)
        assert {OLLAMA_NAME, HUB_NAME, LMSTUDIO_NAME} <= {m.model for m in client.list().models}
        reply = client.chat(
            model=OLLAMA_NAME,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            options={"num_predict": 8, "temperature": 0},
        )
        assert reply.message.content and reply.done_reason in ("stop", "length")
        started = served.log_text()  # the operator is told which other apps' models are exposed
        assert "also serving the models of Ollama (" in started and "LM Studio (" in started, started


def test_adding_a_store_counts_only_the_models_that_are_ggufs(llamadesk_home, tmp_path):
    # "5 GGUF model(s)" of a store whose fifth blob was text, listed as skipped.
    from tests.gguf_samples import tiny_gguf_bytes

    user = tmp_path / "user"
    store = tmp_path / "elsewhere" / "models"
    model = write_blob(store, tiny_gguf_bytes(tmp_path, "t.gguf"))
    text = write_blob(store, b"not a model at all")
    write_manifest(store, "registry.ollama.ai/library/real/latest", ollama_manifest(store, model))
    write_manifest(store, "registry.ollama.ai/library/text/latest", ollama_manifest(store, text))
    added = cli(llamadesk_home, user, "models", "add", str(store))
    assert added.returncode == 0 and "(1 GGUF model(s) in it)" in added.stdout, added.stdout + added.stderr


def test_eval_and_imatrix_write_nothing_into_ollama_s_store(user_home, llamadesk_home, tmp_path):
    # eval --save and imatrix wrote MODEL.eval.json and MODEL.imatrix beside the blob, in Ollama's folder.
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 100)
    blobs = user_home / ".ollama" / "models" / "blobs"
    before = sorted(p.name for p in blobs.iterdir())
    saved = cli(llamadesk_home, user_home, "eval", OLLAMA_NAME, "--text", str(text), "--ctx", "64", "--save")
    assert saved.returncode == 2 and "in Ollama's store, where llamadesk writes nothing" in saved.stderr
    matrix = cli(llamadesk_home, user_home, "imatrix", OLLAMA_NAME, "--text", str(text), "--ctx", "64")
    assert matrix.returncode == 2 and "give -o FILE" in matrix.stderr
    assert sorted(p.name for p in blobs.iterdir()) == before
