"""`llamadesk pull` and `models rm` against a Hub stand-in that misbehaves: what the cache keeps,
what the library records, and the one line a user gets (hub hunt F4, F5, F9-F11, F15, F17, F18,
F21, F22, F24, F25, F27)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LLAMADESK, one_line_error, run_cli_process
from tests.gguf_samples import tiny_gguf_bytes
from tests.hub_standin import HubStandin, StandinFile, pull_test_env


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    files = {q: tiny_gguf_bytes(folder, f"Tiny-{q}.gguf", q) for q in ("Q4_K_M", "Q8_0")}
    files["big"] = tiny_gguf_bytes(folder, "Big-Q4_K_M.gguf", "Q4_K_M", floats=3 * 1024 * 1024)
    for i in (1, 2):
        files[f"split{i}"] = tiny_gguf_bytes(folder, f"S-Q4_K_M-0000{i}-of-00002.gguf", "Q4_K_M", split=(i, 2))
    return files


@pytest.fixture
def hub():
    with HubStandin() as standin:
        yield standin


@pytest.fixture
def env(hub, tmp_path, gemma_path) -> dict[str, str]:
    return pull_test_env(hub, tmp_path, gemma_path)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_cli_process(*args, env=env, timeout=120)


def pull_json(env: dict, *args: str) -> dict:
    done = cli(env, "pull", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def blobs_of(env: dict, repo: str) -> list[Path]:
    folder = Path(env["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}" / "blobs"
    return sorted(p for p in folder.glob("*") if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", p.name))


def library(env: dict) -> dict:
    path = Path(env["LLAMADESK_HOME"]) / "data" / "library.json"
    return json.loads(path.read_text()) if path.exists() else {}


def rm(env: dict, name: str) -> subprocess.CompletedProcess:
    done = cli(env, "models", "rm", name, "--yes")
    assert done.returncode == 0, done.stderr
    return done


def fail_gets_of(hub: HubStandin, filename: str) -> None:
    """Every GET of `filename` answers 500 (the Hub failing mid-pull), until the override is removed."""

    def answer(handler, match, query):
        handler._error(500, "ServerError", "try later")

    hub.overrides.append((("GET",), re.compile(rf".*/resolve/[^/]+/{re.escape(filename)}$"), answer))


def test_a_split_pull_finished_by_a_second_run_is_still_llamadesks_to_delete(env, hub, samples):
    """F27: the part the first run downloaded is found cached by the second; both are llamadesk's."""
    hub.add_repo("s/Split-GGUF", {f"S-Q4_K_M-0000{i}-of-00002.gguf": samples[f"split{i}"] for i in (1, 2)})
    fail_gets_of(hub, "S-Q4_K_M-00002-of-00002.gguf")
    assert cli(env, "pull", "s/Split-GGUF").returncode == 1
    assert len(blobs_of(env, "s/Split-GGUF")) == 1  # part 1 is complete and checked
    hub.overrides.clear()
    result = pull_json(env, "s/Split-GGUF")
    assert library(env)["pulled"][0]["downloaded"] is True
    assert "2 file(s) deleted" in rm(env, result["name"]).stdout or not blobs_of(env, "s/Split-GGUF")
    assert blobs_of(env, "s/Split-GGUF") == []


@pytest.mark.parametrize("change", ["readme", "reupload"])
def test_rm_after_the_hub_moved_on_leaves_no_blob_behind(env, hub, samples, change):
    """F17: pulling again after a new commit retires the earlier commit's files llamadesk downloaded."""
    repo = hub.add_repo(
        "t/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": samples["Q4_K_M"], "README.md": StandinFile(b"a", lfs=False)}
    )
    first = pull_json(env, "t/Tiny-GGUF:Q4_K_M")
    repo.commit_id = "1" * 40
    if change == "readme":
        repo.files["README.md"] = StandinFile(b"b", lfs=False)
    else:  # the same file uploaded again with other bytes
        repo.files["Tiny-Q4_K_M.gguf"] = StandinFile(samples["Q4_K_M"] + b"\0" * 64)
    second = pull_json(env, "t/Tiny-GGUF:Q4_K_M")
    assert second["commit"] != first["commit"] and not Path(first["path"]).exists()
    assert len(blobs_of(env, "t/Tiny-GGUF")) == 1
    rm(env, second["name"])
    assert blobs_of(env, "t/Tiny-GGUF") == []


def test_a_blob_is_named_by_the_listed_hash_not_by_the_etag(env, hub, samples):
    """F4: two files that a proxy gives one ETag are two blobs, each with its own bytes."""
    hub.add_repo(
        "t/Tiny-GGUF",
        {f"Tiny-{q}.gguf": StandinFile(samples[q], etag="same-etag") for q in ("Q4_K_M", "Q8_0")},
    )
    pull_json(env, "t/Tiny-GGUF:Q8_0")
    result = pull_json(env, "t/Tiny-GGUF:Q4_K_M")
    assert result["downloaded"] is True and Path(result["path"]).read_bytes() == samples["Q4_K_M"]


@pytest.mark.parametrize("body", [b"<html>sign in</html>", b""])
@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_a_file_that_is_not_a_gguf_is_refused_and_removed(env, hub, body, json_flag):
    """F5: one line, exit 2 with or without --json, nothing recorded, nothing left in the cache."""
    hub.add_repo("odd/NotGGUF-GGUF", {"model-Q4_K_M.gguf": body})
    line = one_line_error(cli(env, "pull", "odd/NotGGUF-GGUF", *json_flag), 2)
    assert "is not a GGUF model" in line and "convert" not in line and "removed" in line
    assert library(env).get("pulled", []) == []
    assert blobs_of(env, "odd/NotGGUF-GGUF") == []


def test_a_damaged_library_record_fails_the_pull_before_any_download(env, hub, samples):
    """F24."""
    hub.add_repo("t/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": samples["Q4_K_M"]})
    (Path(env["LLAMADESK_HOME"]) / "data" / "library.json").write_text("{not json")
    line = one_line_error(cli(env, "pull", "t/Tiny-GGUF"), 1)
    assert "library" in line and "fix or delete it" in line
    assert hub.file_requests("Tiny-Q4_K_M.gguf") == []


def test_a_damaged_plain_git_file_is_caught_by_its_blob_id(env, hub, samples):
    """F22: files stored in git (no LFS sha256) are checked against the listing's git blob id."""
    hub.add_repo("t/Git-GGUF", {"Tiny-Q4_K_M.gguf": StandinFile(samples["Q4_K_M"], lfs=False, damaged_in_transit=True)})
    line = one_line_error(cli(env, "pull", "t/Git-GGUF"), 1)
    assert "failed its checksum" in line
    assert blobs_of(env, "t/Git-GGUF") == []
    hub.repos["t/Git-GGUF"].files["Tiny-Q4_K_M.gguf"] = StandinFile(samples["Q4_K_M"], lfs=False)
    assert Path(pull_json(env, "t/Git-GGUF")["path"]).read_bytes() == samples["Q4_K_M"]


def test_a_size_other_than_announced_is_one_line(env, hub, samples):
    """F18: no huggingface-hub advice about force_download=True."""
    data = samples["Q4_K_M"]
    hub.add_repo("t/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": StandinFile(data, linked_size=str(len(data) + 1000))})
    line = one_line_error(cli(env, "pull", "t/Tiny-GGUF"), 1)
    assert "came back with" in line and "force_download" not in line


def test_a_255_byte_file_name_is_pulled(env, hub, samples):
    """F9: the snapshot link's temporary name no longer adds to the file's own."""
    name = "L" * (255 - len("-Q4_K_M.gguf")) + "-Q4_K_M.gguf"
    hub.add_repo("t/Long-GGUF", {name: samples["Q4_K_M"]})
    result = pull_json(env, "t/Long-GGUF")
    assert Path(result["path"]).name == name and Path(result["path"]).read_bytes() == samples["Q4_K_M"]


def test_names_with_c1_or_bidi_characters_are_never_offered(env, hub, samples):
    """F10."""
    hub.add_repo("t/Evil-GGUF", {"evil\u009b2J\u202e-Q4_K_M.gguf": samples["Q4_K_M"]})
    line = one_line_error(cli(env, "pull", "t/Evil-GGUF"), 2)
    assert "\u009b" not in line and "\u202e" not in line


def test_a_name_starting_with_a_dash_gets_the_owner_prefix_and_the_hint_is_quoted(env, hub, samples):
    """F10: `chat -m --help-Q4_K_M` would read as an option; a name with spaces would split."""
    hub.add_repo("odd/Dash-GGUF", {"--help-Q4_K_M.gguf": samples["Q4_K_M"], "my model-Q8_0.gguf": samples["Q8_0"]})
    done = cli(env, "pull", "odd/Dash-GGUF:Q4_K_M")
    assert done.returncode == 0, done.stderr
    assert "chat with it: llamadesk chat -m odd---help-Q4_K_M" in done.stdout
    done = cli(env, "pull", "odd/Dash-GGUF:Q8_0")
    assert "chat with it: llamadesk chat -m 'my model-Q8_0'" in done.stdout


def test_a_quantization_two_files_share_must_be_named_by_file(env, hub, samples):
    """F21."""
    hub.add_repo("m/Llama-GGUF", {"L-1B-Q4_K_M.gguf": samples["Q4_K_M"], "L-3B-Q4_K_M.gguf": samples["Q4_K_M"]})
    line = one_line_error(cli(env, "pull", "m/Llama-GGUF:Q4_K_M"), 2)
    assert (
        "2 Q4_K_M files" in line and "L-1B-Q4_K_M.gguf" in line and "REPO:FILE" in line.replace("m/Llama-GGUF", "REPO")
    )
    assert pull_json(env, "m/Llama-GGUF:L-3B-Q4_K_M.gguf")["name"] == "L-3B-Q4_K_M"


def test_offline_list_shows_what_the_cache_holds(env, hub, samples):
    """F25 / readme B5: no request, no advice to set the variable that is set."""
    hub.add_repo("t/Tiny-GGUF", {f"Tiny-{q}.gguf": samples[q] for q in ("Q4_K_M", "Q8_0")})
    pull_json(env, "t/Tiny-GGUF:Q4_K_M")
    before = len(hub.requests)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    done = cli(offline, "pull", "t/Tiny-GGUF", "--list", "--json")
    assert done.returncode == 0, done.stderr
    assert [v["quantization"] for v in json.loads(done.stdout)] == ["Q4_K_M"]
    line = one_line_error(cli(offline, "pull", "t/Other-GGUF", "--list"), 1)
    assert "offline mode is on" in line and "unset HF_HUB_OFFLINE" in line
    assert len(hub.requests) == before


def test_rm_deletes_the_blob_of_a_cache_reached_through_a_link(env, hub, samples, tmp_path):
    """F11."""
    hub.add_repo("t/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": samples["Q4_K_M"]})
    (tmp_path / "real-cache").mkdir()
    (tmp_path / "cache").symlink_to(tmp_path / "real-cache")
    env = {**env, "HF_HOME": str(tmp_path / "cache" / "hf")}
    result = pull_json(env, "t/Tiny-GGUF")
    rm(env, result["name"])
    assert blobs_of(env, "t/Tiny-GGUF") == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_download_stopped_by_sigterm_or_sighup_exits_with_that_signal(env, hub, samples, sig, code):
    """F15: 143 and 129 as the README says, not Ctrl-C's 130; the resume hint stays."""
    data = samples["big"]
    hub.add_repo("t/Big-GGUF", {"Big-Q4_K_M.gguf": data})
    reached, release = hub.stall_after("t/Big-GGUF", "Big-Q4_K_M.gguf", len(data) // 2)
    process = subprocess.Popen(
        [str(LLAMADESK), "pull", "t/Big-GGUF"], env={**os.environ, **env}, stderr=subprocess.PIPE, text=True
    )
    try:
        assert reached.wait(60)
        time.sleep(0.5)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    assert "run the same `llamadesk pull` again to resume" in stderr


def test_two_pulls_of_one_file_at_once_take_turns(env, hub, samples):
    """F14: both wrote one partial; the later failed with a bare "No such file or directory"."""
    data = samples["big"]
    hub.add_repo("t/Big-GGUF", {"Big-Q4_K_M.gguf": data})
    reached, release = hub.stall_after("t/Big-GGUF", "Big-Q4_K_M.gguf", len(data) // 2)
    command = [str(LLAMADESK), "pull", "t/Big-GGUF", "--json"]
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env_all = {**os.environ, **env}
        started.append(
            subprocess.Popen(command, env=env_all, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        return started[-1]

    try:
        first = start()
        assert reached.wait(60)
        second = start()
        for _ in range(200):  # the second has asked for the file's metadata and waits on the lock
            if len(hub.file_requests("Big-Q4_K_M.gguf", "HEAD")) >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        release.set()  # the first's connection drops; it resumes and finishes
        outputs = [p.communicate(timeout=120) for p in (first, second)]
    finally:
        release.set()
        for process in started:
            if process.poll() is None:
                process.kill()
    assert first.returncode == 0 and second.returncode == 0, outputs
    results = [json.loads(out) for out, _ in outputs]
    assert [r["downloaded"] for r in results] == [True, False]
    assert Path(results[1]["path"]).read_bytes() == data


def test_models_names_the_space_unfinished_downloads_hold(env):
    """F23: a pull given up on kept its partial file in a hidden cache folder, shown nowhere."""
    blobs = Path(env["HF_HOME"]) / "hub" / "models--t--Big-GGUF" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / ("a" * 64 + ".llamadesk-partial")).write_bytes(b"\0" * 1024**2)
    done = cli(env, "models", "--json")
    assert done.returncode == 0 and json.loads(done.stdout), done.stderr
    assert "note: 1.0 MiB of unfinished downloads" in done.stderr and "(t/Big-GGUF)" in done.stderr
    assert "*.llamadesk-partial" in done.stderr


def test_a_cache_folder_that_refuses_the_download_says_so_not_that_the_download_came_back_short(env, hub, samples):
    # A blobs folder of another user's (or on a read-only mount): the partial file could not be
    # opened, and the line said the download "came back with 0 bytes ...; pull again".
    from tests.permissions import drop_permission_overrides_at_exec

    hub.add_repo("t/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": samples["Q4_K_M"]})
    cache = Path(env["HF_HOME"]) / "hub"
    blobs = cache / "models--t--Tiny-GGUF" / "blobs"
    blobs.mkdir(parents=True)
    blobs.chmod(0o555)
    try:
        done = subprocess.run(
            [str(LLAMADESK), "pull", "t/Tiny-GGUF:Q4_K_M"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
            preexec_fn=drop_permission_overrides_at_exec,
        )
    finally:
        blobs.chmod(0o755)
    line = one_line_error(done, 1)
    assert line.startswith(f"llamadesk: the Hugging Face cache {cache} cannot be written (Permission denied: {blobs}/")
    assert line.endswith("; make it writable (or set HF_HOME to another folder) and pull again")
    assert list(blobs.iterdir()) == [] and library(env).get("pulled", []) == []
    assert pull_json(env, "t/Tiny-GGUF:Q4_K_M")["downloaded"] is True  # writable again: the pull goes through


def test_a_download_past_the_file_size_limit_is_not_blamed_on_the_file_system(env, hub, samples):
    # Under `ulimit -f` the line said "the file system ... cannot hold a file as large as ... (FAT32
    # stops at 4 GiB)" and to free some space, on a disk with room and no FAT32 anywhere.
    import resource

    hub.add_repo("t/Big-GGUF", {"Big-Q4_K_M.gguf": samples["big"]})

    def small_files_only() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024**2, 1024**2))

    done = subprocess.run(
        [str(LLAMADESK), "pull", "t/Big-GGUF:Q4_K_M"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        preexec_fn=small_files_only,
    )
    blobs = Path(env["HF_HOME"]) / "hub" / "models--t--Big-GGUF" / "blobs"
    assert one_line_error(done, 1) == (
        "llamadesk: Big-Q4_K_M.gguf grew past the largest file this process may write (`ulimit -f`) or the file "
        f"system of {blobs} holds (FAT32 stops at 4 GiB); the partial download was removed; raise the limit "
        "(or set HF_HOME to a folder on another disk) and pull again"
    )
    assert list(blobs.iterdir()) == []
