"""`llamadesk pull` against the Hub stand-in: choosing, splits, resume, checksums, auth, offline, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LLAMADESK, PINNED_FLAGS, PINNED_SAMPLING_FLAGS, one_line_error, run_cli_process
from tests.gguf_samples import split_gguf, tiny_gguf_bytes
from tests.hub_standin import STANDIN_TOKEN, HubStandin, StandinFile, pull_test_env

QUANTS = ("Q2_K", "Q4_K_M", "Q8_0", "F16")
SPLIT_REPO = "big/Split-Model-GGUF"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    files = {f"Tiny-{q}.gguf": tiny_gguf_bytes(folder, f"Tiny-{q}.gguf", q) for q in QUANTS}
    # Bigger than huggingface-hub's 10 MiB download chunk, the granularity at which it resumes.
    files["Tiny-Q4_K_M-big.gguf"] = tiny_gguf_bytes(folder, "Tiny-Q4_K_M-big.gguf", "Q4_K_M", floats=4 * 1024 * 1024)
    for i in (1, 2, 3):
        name = f"Split-Q4_K_M-0000{i}-of-00003.gguf"
        files[name] = tiny_gguf_bytes(folder, name, "Q4_K_M", split=(i, 3))
    return files


@pytest.fixture(scope="module")
def hub(samples):
    with HubStandin() as standin:
        standin.add_repo(
            "tiny/Tiny-GGUF", {f"Tiny-{q}.gguf": samples[f"Tiny-{q}.gguf"] for q in QUANTS}, downloads=500, likes=7
        )
        standin.add_repo("tiny/Big-GGUF", {"Tiny-Q4_K_M.gguf": samples["Tiny-Q4_K_M-big.gguf"]})
        standin.add_repo(
            SPLIT_REPO,
            {n: samples[n] for n in samples if n.startswith("Split-")}
            | {"README.md": StandinFile(b"# split\n", lfs=False)},
            downloads=20,
        )
        standin.add_repo(
            "tiny/Damaged-GGUF", {"Tiny-Q4_K_M.gguf": StandinFile(samples["Tiny-Q4_K_M.gguf"], damaged_in_transit=True)}
        )
        standin.add_repo("corp/Gated-GGUF", {"Tiny-Q4_K_M.gguf": samples["Tiny-Q4_K_M.gguf"]}, gated=True)
        standin.add_repo(
            "evil/Traversal-GGUF",
            {"good-Q4_K_M.gguf": samples["Tiny-Q4_K_M.gguf"]},
            listed_only=["../../evil-Q8_0.gguf", "/etc/evil-Q8_0.gguf"],
        )
        standin.add_repo("evil/Only-Traversal-GGUF", {}, listed_only=["../../../evil-Q4_K_M.gguf"])
        standin.add_repo(
            "org/Checkpoint",
            {
                "config.json": StandinFile(b"{}", lfs=False),
                "model.safetensors": b"\0" * 64,
                "tokenizer.json": StandinFile(b"{}", lfs=False),
            },
        )
        yield standin


@pytest.fixture
def env(hub, tmp_path, gemma_path) -> dict[str, str]:
    return pull_test_env(hub, tmp_path, gemma_path)


def pull(env: dict, *args: str, **extra) -> subprocess.CompletedProcess:
    return run_cli_process("pull", *args, env={**env, **extra}, timeout=120)


def pull_json(env: dict, *args: str) -> dict:
    done = pull(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cache_files(env: dict) -> list[Path]:
    return sorted(p for p in Path(env["HF_HOME"]).rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def models(env: dict) -> dict[str, dict]:
    done = run_cli_process("models", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)}


def test_default_pull_takes_the_best_quantization_that_fits(env, hub, samples):
    before = len(hub.file_requests("Tiny-Q8_0.gguf"))
    result = pull_json(env, "tiny/Tiny-GGUF")
    assert result["quantization"] == "Q8_0"  # best quality that fits; F16 is never the default
    assert Path(result["path"]).read_bytes() == samples["Tiny-Q8_0.gguf"]
    assert len(hub.file_requests("Tiny-Q8_0.gguf")) == before + 1
    assert str(Path(result["path"])).startswith(env["HF_HOME"])  # in huggingface-hub's cache, not copied
    listed = models(env)["Tiny-Q8_0"]
    assert listed["origin"]["repo"] == "tiny/Tiny-GGUF" and listed["origin"]["commit"] == result["commit"]
    assert listed["source"] == "hub" and listed["quantization"] == "Q8_0" and listed["deletable"] is True


def test_pull_by_quantization_or_file_name(env, samples):
    assert pull_json(env, "tiny/Tiny-GGUF:q2_k")["quantization"] == "Q2_K"
    by_file = pull_json(env, "tiny/Tiny-GGUF:Tiny-F16.gguf")
    assert by_file["quantization"] == "F16"
    assert Path(by_file["path"]).read_bytes() == samples["Tiny-F16.gguf"]
    missing = one_line_error(pull(env, "tiny/Tiny-GGUF:Q5_K_M"), 2)
    assert "has no Q5_K_M" in missing and "Q4_K_M" in missing


def test_split_model_downloads_every_part(env, hub, samples):
    result = pull_json(env, SPLIT_REPO)
    assert result["parts"] == 3 and result["path"].endswith("Split-Q4_K_M-00001-of-00003.gguf")
    folder = Path(result["path"]).parent
    for i in (1, 2, 3):
        name = f"Split-Q4_K_M-0000{i}-of-00003.gguf"
        assert (folder / name).read_bytes() == samples[name]  # beside the first, where llama.cpp looks
    entry = models(env)["Split-Q4_K_M"]
    assert entry["parts"] == 3
    assert entry["parameters"] == 3 * 4096  # every part's tensors counted
    assert entry["file_size"] == sum(len(samples[f"Split-Q4_K_M-0000{i}-of-00003.gguf"]) for i in (1, 2, 3))


def test_dropped_connection_resumes_with_a_range_request(env, hub, samples):
    name = "Tiny-Q4_K_M.gguf"
    size = len(samples["Tiny-Q4_K_M-big.gguf"])
    hub.drop_connection_after("tiny/Big-GGUF", name, size * 3 // 4)
    before = len(hub.file_requests(name))
    result = pull_json(env, "tiny/Big-GGUF")
    assert Path(result["path"]).read_bytes() == samples["Tiny-Q4_K_M-big.gguf"]
    gets = hub.file_requests(name)[before:]
    assert len(gets) == 2 and "range" not in gets[0].headers
    # huggingface-hub keeps what it received in whole 10 MiB chunks and asks for the rest.
    assert gets[1].headers["range"] == f"bytes={10 * 1024 * 1024}-"


def test_interrupted_pull_resumes_where_it_stopped(env, hub, samples):
    name = "Tiny-Q4_K_M.gguf"
    data = samples["Tiny-Q4_K_M-big.gguf"]
    reached, release = hub.stall_after("tiny/Big-GGUF", name, len(data) * 3 // 4)
    kept = 10 * 1024 * 1024  # huggingface-hub writes whole 10 MiB chunks
    process = subprocess.Popen(
        [str(LLAMADESK), "pull", "tiny/Big-GGUF"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reached.wait(60)
        partials = []
        for _ in range(600):  # the client writes what it received; wait for it (bounded: 30 s)
            partials = [p for p in cache_files(env) if p.name.endswith(".llamadesk-partial")]
            if partials and partials[0].stat().st_size == kept:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "run the same `llamadesk pull` again to resume" in stderr
    assert len(partials) == 1 and partials[0].stat().st_size == kept
    assert not [p for p in cache_files(env) if "snapshots" in p.parts]  # nothing under a final name

    before = len(hub.file_requests(name))
    result = pull_json(env, "tiny/Big-GGUF")
    resumed = hub.file_requests(name)[before:]
    assert [r.headers.get("range") for r in resumed] == [f"bytes={kept}-"]
    assert Path(result["path"]).read_bytes() == data
    assert not partials[0].exists()


def test_damaged_download_is_rejected_and_removed(env):
    line = one_line_error(pull(env, "tiny/Damaged-GGUF"), 1)
    assert "failed its checksum" in line and "removed" in line
    assert cache_files(env) == [] or all(
        "blobs" not in p.parts and "snapshots" not in p.parts for p in cache_files(env)
    )
    assert "Tiny-Q4_K_M" not in models(env)


def test_gated_repo_says_how_to_log_in_and_works_with_a_token(env):
    line = one_line_error(pull(env, "corp/Gated-GGUF"), 1)
    assert "gated" in line and "hf auth login" in line and "HF_TOKEN" in line
    result = pull_json({**env, "HF_TOKEN": STANDIN_TOKEN}, "corp/Gated-GGUF")
    assert result["quantization"] == "Q4_K_M"
    # `hf auth login` stores the token in HF_HOME/token; huggingface-hub reads it from there.
    logged_in = {**env, "HF_HOME": env["HF_HOME"] + "-logged-in"}
    Path(logged_in["HF_HOME"]).mkdir()
    (Path(logged_in["HF_HOME"]) / "token").write_text(STANDIN_TOKEN)
    assert pull_json(logged_in, "corp/Gated-GGUF")["downloaded"] is True


def test_unknown_repo(env):
    line = one_line_error(pull(env, "nobody/Does-Not-Exist"), 2)
    assert "no repo nobody/Does-Not-Exist on the Hub" in line


def test_offline_mode_uses_the_cache_and_names_what_is_missing(env, hub):
    pull_json(env, "tiny/Tiny-GGUF:Q4_K_M")
    requests_before = len(hub.requests)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    again = pull_json(offline, "tiny/Tiny-GGUF:Q4_K_M")
    assert again["downloaded"] is False and Path(again["path"]).is_file()
    missing = one_line_error(pull(offline, "tiny/Tiny-GGUF:Q8_0"), 1)
    assert "offline" in missing and "Q8_0" in missing and "cached: Q4_K_M" in missing
    nothing = one_line_error(pull(offline, "tiny/Big-GGUF"), 1)
    assert "nothing of tiny/Big-GGUF is in the cache" in nothing and "HF_HUB_OFFLINE" in nothing
    assert len(hub.requests) == requests_before  # offline means offline


def test_unsafe_file_names_from_the_server_are_never_used(env, hub, tmp_path):
    result = pull_json(env, "evil/Traversal-GGUF")
    assert result["name"] == "good-Q4_K_M"
    for spec in ("evil/Traversal-GGUF:../../evil-Q8_0.gguf", "evil/Traversal-GGUF:/etc/evil-Q8_0.gguf"):
        assert "neither a quantization nor a file name" in one_line_error(pull(env, spec), 2)
    only = one_line_error(pull(env, "evil/Only-Traversal-GGUF"), 2)
    assert "no GGUF files" in only and "unsafe" in only
    assert not [r for r in hub.requests if "evil-" in r.path]
    assert not list(tmp_path.rglob("evil-*")) and not list(tmp_path.parent.rglob("evil-Q*.gguf"))


@pytest.mark.parametrize(
    "spec",
    ["", "no spaces/allowed here", "a/b/c", "owner/name--x", "../../etc/passwd", "owner/name:", "owner/name.git"],
)
def test_malformed_repo_ids(env, hub, spec):
    before = len(hub.requests)
    one_line_error(pull(env, spec), 2)
    assert len(hub.requests) == before


def test_full_disk_leaves_nothing_behind(env, hub, samples):
    from huggingface_hub.file_download import repo_folder_name

    blob_name = StandinFile(samples["Tiny-Q4_K_M.gguf"]).sha256
    blobs = Path(env["HF_HOME"]) / "hub" / repo_folder_name(repo_id="tiny/Tiny-GGUF", repo_type="model") / "blobs"
    blobs.mkdir(parents=True)
    # The kernel's always-full device: every write to the partial file fails with ENOSPC.
    (blobs / f"{blob_name}.llamadesk-partial").symlink_to("/dev/full")
    line = one_line_error(pull(env, "tiny/Tiny-GGUF:Q4_K_M"), 1)
    assert "disk filled up" in line and "free some space" in line
    assert list(blobs.iterdir()) == []
    assert not [p for p in cache_files(env) if "snapshots" in p.parts]


def test_checkpoint_repo_is_offered_for_conversion(env):
    line = one_line_error(pull(env, "org/Checkpoint"), 2)
    assert "no GGUF files, only a checkpoint" in line and "llamadesk pull org/Checkpoint --convert Q4_K_M" in line
    assert "unknown quantization type" in one_line_error(pull(env, "org/Checkpoint", "--convert", "Q9_Z"), 2)


@pytest.mark.parametrize(
    "quant, refusal",
    [
        ("IQ2_XS", "IQ2_XS needs an importance matrix"),
        ("iq1_s", "IQ1_S needs an importance matrix"),
        ("Q2_K_S", "Q2_K_S needs an importance matrix"),
        ("Q9_Z", "unknown quantization type 'Q9_Z'"),
        ("auto", "unknown quantization type 'auto'"),
    ],
)
def test_convert_to_a_type_pull_cannot_make_is_refused_before_downloading(env, hub, quant, refusal):
    # An importance-matrix type was refused by the quantizer only after the whole checkpoint had
    # come down and been converted.
    before = len(hub.requests)
    line = one_line_error(pull(env, "org/Checkpoint", "--convert", quant), 2)
    assert refusal in line
    if "importance matrix" in refusal:
        assert "--convert F16" in line and "`llamadesk imatrix Checkpoint-F16 --text FILE" in line
        assert f"`llamadesk quantize Checkpoint-F16 -t {quant.upper()} --imatrix Checkpoint-F16.imatrix`" in line
    assert len(hub.requests) == before and cache_files(env) == []


def test_list_shows_variants_without_downloading(env, hub):
    before = len(hub.file_requests("Split-Q4_K_M-00001-of-00003.gguf"))
    done = pull(env, SPLIT_REPO, "--list", "--json")
    assert done.returncode == 0, done.stderr
    variants = json.loads(done.stdout)
    assert [v["quantization"] for v in variants] == ["Q4_K_M"] and len(variants[0]["files"]) == 3
    assert len(hub.file_requests("Split-Q4_K_M-00001-of-00003.gguf")) == before


@pytest.mark.slow
def test_pulled_split_model_chats_by_its_library_name(hub, env, smollm2_path, tmp_path):
    # The real SmolLM2, split in two parts like big Hub models: llama.cpp gets the first part's
    # path in the snapshot folder and finds the second beside it.
    parts = split_gguf(smollm2_path, tmp_path / "SmolLM2-135M-Instruct-Q4_1.gguf", max_tensors=150)
    assert len(parts) == 2
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {p.name: p.read_bytes() for p in parts})
    result = pull_json(env, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_1")
    assert result["name"] == "SmolLM2-135M-Instruct-Q4_1" and result["parts"] == 2
    done = run_cli_process(
        "chat",
        "-m",
        result["name"],
        *PINNED_FLAGS,
        *PINNED_SAMPLING_FLAGS,
        "--max-tokens",
        "24",
        "What is the capital of France?",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    entry = models(env)[result["name"]]
    assert entry["parameters"] == 134515008 and entry["has_chat_template"] and entry["parts"] == 2
    by_repo = run_cli_process(
        "info", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_1", "--json", env=env
    )  # REPO:QUANT resolves too
    assert by_repo.returncode == 0 and json.loads(by_repo.stdout)["path"] == result["path"], by_repo.stderr


def test_rm_deletes_what_llamadesk_downloaded_and_only_forgets_what_was_cached_before(env, samples):
    ours = pull_json(env, "tiny/Tiny-GGUF:Q2_K")
    blob = Path(ours["path"]).resolve()
    assert blob.is_file() and "blobs" in blob.parts
    done = run_cli_process("models", "rm", ours["name"], "--yes", env=env)
    assert done.returncode == 0 and "deleted" in done.stdout, done.stderr
    assert not blob.exists() and not Path(ours["path"]).exists()
    assert ours["name"] not in models(env)

    # Another tool put this file in the Hugging Face cache first: llamadesk lists it, never deletes it.
    fetch = "from huggingface_hub import hf_hub_download as d; print(d('tiny/Tiny-GGUF', 'Tiny-Q8_0.gguf'))"
    theirs = subprocess.run(
        [str(LLAMADESK.with_name("python")), "-c", fetch],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert theirs.returncode == 0, theirs.stderr
    found = pull_json(env, "tiny/Tiny-GGUF:Q8_0")
    assert found["downloaded"] is False and found["path"] == theirs.stdout.strip()
    assert models(env)["Tiny-Q8_0"]["deletable"] is False
    done = run_cli_process("models", "rm", "Tiny-Q8_0", "--yes", env=env)
    assert done.returncode == 0 and "no files deleted" in done.stdout
    assert Path(found["path"]).read_bytes() == samples["Tiny-Q8_0.gguf"]


def test_search_lists_gguf_repos_most_downloaded_first(env):
    done = run_cli_process("search", "gguf", "--json", env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    repos = [m["repo"] for m in found]
    assert repos[:2] == ["tiny/Tiny-GGUF", SPLIT_REPO]  # 500 downloads, then 20
    assert "org/Checkpoint" not in repos  # no GGUF files
    first = found[0]
    assert (first["downloads"], first["likes"], first["updated"][:10]) == (500, 7, "2026-01-15")
    assert [m["repo"] for m in json.loads(run_cli_process("search", "split", "--json", env=env).stdout)] == [SPLIT_REPO]
    table = run_cli_process("search", "tiny", env=env)
    assert table.returncode == 0 and "DOWNLOADS" in table.stdout and "tiny/Tiny-GGUF" in table.stdout


def test_convert_downloads_the_checkpoint_into_the_cache(env, hub):
    # pull's part is fetching the checkpoint files, checked, into the Hugging Face cache; this
    # checkpoint's empty config is then refused by convert/ with one line.
    refused = pull(env, "org/Checkpoint", "--convert", "Q8_0")
    assert "config.json" in one_line_error(refused, 2)
    snapshot_files = {p.name for p in Path(env["HF_HOME"]).rglob("*") if "snapshots" in p.parts and p.is_file()}
    assert snapshot_files == {"config.json", "model.safetensors", "tokenizer.json"}
    assert not list((Path(env["LLAMADESK_HOME"]) / "data" / "models").glob("Checkpoint*"))


@pytest.mark.slow
def test_pull_convert_turns_a_real_checkpoint_into_a_model_that_chats(hub, env, smollm2_path):
    from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

    folder = smollm2_hf_checkpoint(smollm2_path)
    hub.add_repo(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        {
            p.name: StandinFile(p.read_bytes(), lfs=p.suffix == ".safetensors")
            for p in folder.iterdir()
            if p.is_file() and p.name != "llamadesk_fixture.json"
        },
    )
    done = pull(env, "HuggingFaceTB/SmolLM2-135M-Instruct", "--convert", "Q4_0")
    assert done.returncode == 0, done.stderr
    entries = models(env)
    [name] = [n for n, e in entries.items() if e["origin"].get("checkpoint") == "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert entries[name]["quantization"] == "Q4_0" and entries[name]["deletable"] is True
    answer = run_cli_process(
        "chat",
        "-m",
        name,
        *PINNED_FLAGS,
        *PINNED_SAMPLING_FLAGS,
        "--max-tokens",
        "24",
        "What is the capital of France?",
        env=env,
    )
    assert answer.returncode == 0, answer.stderr
    assert "Paris" in answer.stdout
