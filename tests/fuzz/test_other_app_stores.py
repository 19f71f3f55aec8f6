"""Hostile and broken copies of other apps' stores: Ollama's manifests and blobs, LM Studio's folder.

These are files another program (or whoever can write to the user's home) made, read every time
the library is listed. Every case runs in its own forked child (tests/fuzz/harness.py) and lists a
store holding one good model and one hostile thing. What each must get: the listing never fails
(exit 0), the good model is listed, a model is listed only with a regular file inside its store,
and a skipped one has a one-line reason. Then `models --json` over one store holding every mutant
at once: exit 0, no traceback, a note per skipped model. Seeds are fixed.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.fuzz.harness import call_case, cli_case, problems, run_cases
from tests.gguf_samples import tiny_gguf_bytes
from tests.other_app_stores import ollama_manifest, write_blob, write_manifest

pytestmark = pytest.mark.timeout(600)
HERE = "tests.fuzz.test_other_app_stores"
PRELOAD = ("llamadesk.app.cli", "llamadesk.app.library.catalog", HERE)
GOOD = "registry.ollama.ai/library/good/latest"
HOSTILE = "registry.ollama.ai/library/hostile/t"
BYTE_MUTANTS = 120
VALUES = [None, True, -1, 2**64, 1e308, "", "x" * 10_000, [], {}, [[[]]], "../../../../etc/passwd"]
DIGESTS = [
    "sha256:" + "g" * 64,
    "sha256:" + "A" * 64,
    "sha256:" + "0" * 63,
    "sha256:../../../../../etc/passwd",
    "sha256:" + "0" * 64 + "/../../x",
    "sha512:" + "0" * 128,
    "/etc/passwd",
    "sha256:" + "0" * 64 + "\n",
]


# -- what the children run ---------------------------------------------------------------------


def list_store(app: str, store: str) -> None:
    """List the store as the library does; check what it promises; print the names found."""
    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.library.catalog import inspect_model
    from llamadesk.app.library.other_apps import lmstudio_models, ollama_models

    root = Path(store).resolve()
    models = ollama_models(root) if app == "ollama" else lmstudio_models(root)
    listed, skipped, unreadable = [], [], []
    for model in models:
        if model.path is None:
            assert model.problem and "\n" not in model.problem, model
            skipped.append(model.name)
            continue
        assert model.path.resolve().is_relative_to(root) and model.path.is_file(), model
        try:
            inspect_model(model.path)  # the library reads the header next; it must refuse cleanly
        except (LlamadeskError, OSError):
            unreadable.append(model.name)
            continue
        listed.append(model.name)
    print(json.dumps({"listed": listed, "skipped": skipped, "unreadable": unreadable}))


# -- building the cases --------------------------------------------------------------------------


_GOOD_GGUF: list[bytes] = []


def good_gguf(scratch: Path) -> bytes:
    if not _GOOD_GGUF:
        scratch.mkdir(parents=True, exist_ok=True)
        _GOOD_GGUF.append(tiny_gguf_bytes(scratch, "good.gguf", "Q8_0"))
    return _GOOD_GGUF[0]


def good_store(root: Path) -> tuple[Path, dict, dict]:
    store = root / "models"
    layer = write_blob(store, good_gguf(root.parent / "scratch"))
    manifest = ollama_manifest(store, layer)
    write_manifest(store, GOOD, manifest)
    return store, manifest, layer


def structured_mutants(manifest: dict, layer: dict) -> dict[str, dict]:
    """Every field of the model layer and the layer list replaced with a value of the wrong kind."""
    out: dict[str, dict] = {}
    for i, value in enumerate(VALUES):
        out[f"layers-{i}"] = {**manifest, "layers": value}
        out[f"layer-{i}"] = {**manifest, "layers": [value, *manifest["layers"][1:]]}
        for key in ("mediaType", "digest", "size"):
            out[f"{key}-{i}"] = {**manifest, "layers": [{**manifest["layers"][0], key: value}]}
    for i, digest in enumerate(DIGESTS):
        out[f"digest-hostile-{i}"] = {**manifest, "layers": [{**manifest["layers"][0], "digest": digest}]}
    out["two-models"] = {**manifest, "layers": [manifest["layers"][0], manifest["layers"][0]]}
    out["many-layers"] = {**manifest, "layers": [manifest["layers"][1]] * 5000}
    out["size-too-big"] = {**manifest, "layers": [{**manifest["layers"][0], "size": layer["size"] + 1}]}
    out["size-bool"] = {**manifest, "layers": [{**manifest["layers"][0], "size": True}]}
    return out


def byte_mutants(manifest: dict, seed: int = 17) -> dict[str, bytes]:
    data = json.dumps(manifest).encode()
    rng = random.Random(seed)
    out = {}
    for n in range(BYTE_MUTANTS):
        mutant = bytearray(data)
        kind = n % 3
        if kind == 0:
            mutant = mutant[: rng.randrange(len(mutant))]
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                mutant[rng.randrange(len(mutant))] = rng.randrange(256)
        else:
            at = rng.randrange(len(mutant))
            mutant[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        out[f"bytes-{n}"] = bytes(mutant)
    out["deep"] = b'{"layers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    out["huge"] = b'{"layers": [], "pad": "' + b"x" * (1024**2) + b'"}'
    out["not-utf8"] = b'{"layers": "\xff\xfe"}'
    out["empty"] = b""
    return out


def structural_cases(root: Path, layer: dict, manifest: dict) -> list[Path]:
    """Stores whose files are the wrong kind of thing; each returns its store folder."""
    stores = []

    def fresh(name: str) -> Path:
        store, _, _ = good_store(root / name)
        stores.append(store)
        return store

    store = fresh("manifest-fifo")
    os.mkfifo(store / "manifests" / "registry.ollama.ai" / "library" / "good" / "fifo")
    store = fresh("manifest-link-to-dev-zero")
    os.symlink("/dev/zero", store / "manifests" / "registry.ollama.ai" / "library" / "good" / "zero")
    store = fresh("manifest-dir-loop")
    os.symlink(store / "manifests", store / "manifests" / "registry.ollama.ai" / "loop")
    store = fresh("manifests-too-deep")
    (store / "manifests" / "registry.ollama.ai" / "library" / "deep" / "a" / "b" / "c").mkdir(parents=True)
    store = fresh("odd-names")
    write_manifest(store, "registry.ollama.ai/library/we ird/t", manifest)
    write_manifest(store, "registry.ollama.ai/library/ünï/t", manifest)
    write_manifest(store, "registry.ollama.ai/library/-dash/t", manifest)
    store = fresh("blob-fifo")
    zero = {"digest": "sha256:" + "1" * 64, "size": 0}
    os.mkfifo(store / "blobs" / f"sha256-{'1' * 64}")
    write_manifest(store, HOSTILE, {**manifest, "layers": [{**manifest["layers"][0], **zero}]})
    store = fresh("blob-dir")
    (store / "blobs" / f"sha256-{'2' * 64}").mkdir()
    dir_layer = {"digest": "sha256:" + "2" * 64, "size": 4096}
    write_manifest(store, HOSTILE, {**manifest, "layers": [{**manifest["layers"][0], **dir_layer}]})
    store = fresh("blob-link-outside")
    outside = root / "outside.gguf"
    outside.write_bytes((store / "blobs" / f"sha256-{layer['digest'][7:]}").read_bytes())
    os.symlink(outside, store / "blobs" / f"sha256-{'3' * 64}")
    out_layer = {"digest": "sha256:" + "3" * 64, "size": layer["size"]}
    write_manifest(store, HOSTILE, {**manifest, "layers": [{**manifest["layers"][0], **out_layer}]})
    store = fresh("blob-not-gguf")
    junk = write_blob(store, b"not a gguf at all" * 100)
    write_manifest(store, HOSTILE, {**manifest, "layers": [{**manifest["layers"][0], **junk}]})
    return stores


def lmstudio_cases(root: Path) -> list[Path]:
    folders = []
    for name in ("link-outside", "fifo", "dir-named-gguf", "junk", "link-dir"):
        folder = root / f"lmstudio-{name}" / "models"
        repo = folder / "pub" / "Repo-GGUF"
        repo.mkdir(parents=True)
        (repo / "Good-Q8_0.gguf").write_bytes(good_gguf(root / "scratch"))
        folders.append(folder)
    outside = root / "outside-lm.gguf"
    outside.write_bytes(good_gguf(root / "scratch"))
    os.symlink(outside, folders[0] / "pub" / "Repo-GGUF" / "Secret.gguf")
    os.mkfifo(folders[1] / "pub" / "Repo-GGUF" / "Fifo.gguf")
    (folders[2] / "pub" / "Repo-GGUF" / "Dir.gguf").mkdir()
    (folders[3] / "pub" / "Repo-GGUF" / "Junk.gguf").write_bytes(b"\x00" * 100)
    os.symlink(root, folders[4] / "pub" / "Linked-GGUF")
    return folders


def test_hostile_ollama_manifests_and_blobs_never_break_the_listing(tmp_path):
    base, manifest, layer = good_store(tmp_path / "base")
    mutants: dict[str, dict | bytes] = {**structured_mutants(manifest, layer), **byte_mutants(manifest)}
    cases, combined = [], tmp_path / "combined" / "models"
    good_store(tmp_path / "combined")
    for case_id, mutant in mutants.items():
        store, _, _ = good_store(tmp_path / case_id)
        write_manifest(store, HOSTILE, mutant if isinstance(mutant, bytes) else json.dumps(mutant).encode())
        write_manifest(combined, f"registry.ollama.ai/library/hostile/{case_id}", mutant)
        cases.append(call_case(case_id, f"{HERE}:list_store", "ollama", store))
    for store in structural_cases(tmp_path / "structural", layer, manifest):
        cases.append(call_case(f"structural-{store.parent.name}", f"{HERE}:list_store", "ollama", store))
    for folder in lmstudio_cases(tmp_path / "lm"):
        cases.append(call_case(folder.parent.name, f"{HERE}:list_store", "lmstudio", folder))
    home = tmp_path / "llamadesk-home"
    user = combined.parent.parent / "user"
    (user / ".ollama").mkdir(parents=True)
    (user / ".ollama" / "models").symlink_to(combined)
    env = {"LLAMADESK_HOME": str(home), "HOME": str(user), "OLLAMA_MODELS": ""}
    cases.append(cli_case("models-json-all-at-once", "models", "--json", env=env, timeout=120))
    results = run_cases(cases, tmp_path, preload=PRELOAD)

    everything = results.pop("models-json-all-at-once")
    assert problems(everything, codes=(0,)) is None, everything["stderr"][-2000:]
    names = [m["name"] for m in json.loads(everything["stdout"])]
    assert "good:latest" in names
    notes = [line for line in everything["stderr"].splitlines() if line.strip()]
    assert all(line.startswith("llamadesk: skipped ") for line in notes), notes[:5]
    # (The driver keeps the first 20 kB of stderr, so the notes are not counted here: the cases
    # above check each model's fate one by one.)
    assert notes and not [n for n in names if n.startswith("hostile:digest-")]

    bad = {case_id: why for case_id, r in results.items() if (why := problems(r, codes=(0,)))}
    assert not bad, f"{len(bad)} of {len(results)} cases broke the listing:\n" + "\n".join(
        f"  {case_id}: {why}" for case_id, why in list(bad.items())[:10]
    )
    found = {case_id: json.loads(r["stdout"]) for case_id, r in results.items()}
    ollama_ids = [c for c in found if not c.startswith("lmstudio-")]
    assert all("good:latest" in found[c]["listed"] for c in ollama_ids)
    assert all("Good-Q8_0" in found[c]["listed"] for c in found if c.startswith("lmstudio-"))
    listed_hostile = [c for c in ollama_ids if "hostile:t" in found[c]["listed"]]
    # A mutant may still be a valid manifest (a flipped byte inside a media type other than the
    # model's): then it names the good blob, which is fine. None of the hostile digests may pass.
    assert not [c for c in listed_hostile if c.startswith(("digest-", "structural-", "layers-", "size-"))]
    assert found["structural-blob-not-gguf"]["unreadable"] == ["hostile:t"]  # the GGUF reader's turn
    assert "Secret" not in found["lmstudio-link-outside"]["listed"] and "Linked" not in str(found["lmstudio-link-dir"])
    print(
        f"other apps' stores: {len(results)} hostile cases, none broke the listing; "
        f"{len(listed_hostile)} byte mutants were still valid manifests of the good blob"
    )
