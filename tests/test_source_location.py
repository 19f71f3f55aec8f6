"""`convert SRC`: which SRC is a folder, which a Hub repo id, and how a download's failures read.

Downloads run in-process against the Hub stand-in (tests/hub_standin.py), so huggingface-hub raises
its real exception types; failures the stand-in cannot produce (a server error, a refused
connection) are raised from the listing call by a fake, and a full disk from the download's.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.convert import source_location
from llamadesk.convert.source_location import download_repo, files_to_download, looks_like_repo_id, resolve_source
from tests.hub_standin import HubStandin, StandinFile

CONFIG = StandinFile(b'{"model_type": "llama"}', lfs=False)
TOKENIZER = StandinFile(b"{}", lfs=False)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The stand-in, with this process's huggingface-hub pointed at it and at an empty cache."""
    with HubStandin() as standin:
        monkeypatch.setattr(constants, "ENDPOINT", standin.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", standin.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield standin


def one_line(caught: pytest.ExceptionInfo, kind: type[Exception]) -> str:
    assert caught.type is kind
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- what SRC is ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "a--b/model",
        "owner/a..b",
        "owner/model.git",
        "owner",
        "owner/model/extra",
        "-owner/model",
        "owner/model-",
        "/abs/x",
    ],
)
def test_names_the_hub_refuses_are_not_repo_ids(source):
    assert not looks_like_repo_id(source)


def test_a_repo_id_shaped_path_that_exists_is_not_a_repo_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_repo_id("owner/model")
    (tmp_path / "owner" / "model").mkdir(parents=True)
    assert not looks_like_repo_id("owner/model")


def test_a_path_that_cannot_be_checked_is_not_taken_for_a_repo_id(monkeypatch):
    # Tests run as root here, where no permission makes stat() fail; a user's folder without
    # search permission would raise PermissionError just like this.
    class UnreadablePath(type(Path())):
        def exists(self, *args, **kwargs) -> bool:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(source_location, "Path", UnreadablePath)
    assert not looks_like_repo_id("owner/model")


def test_without_weights_only_config_and_tokenizer_are_wanted():
    listed = ["config.json", "tokenizer.json", "model.onnx", "sub/model.safetensors", "model-x/../../y.safetensors"]
    assert files_to_download(listed) == ["config.json", "tokenizer.json"]
    assert files_to_download(["params.json", "consolidated.00.pth", "consolidated.01.pth"]) == [
        "params.json",
        "consolidated.00.pth",
        "consolidated.01.pth",
    ]


def test_resolve_source_returns_a_folder_and_expands_the_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ckpt").mkdir()
    assert resolve_source("~/ckpt") == tmp_path / "ckpt"
    assert resolve_source(str(tmp_path / "ckpt")) == tmp_path / "ckpt"


def test_resolve_source_refuses_a_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(BadInputError) as caught:
        resolve_source(str(tmp_path / "model.safetensors"))
    assert one_line(caught, BadInputError).endswith(
        ": a file; give the checkpoint's folder (with config.json or params.json)"
    )


def test_resolve_source_refuses_an_unknown_users_home():
    with pytest.raises(BadInputError) as caught:
        resolve_source("~no-such-user-llamadesk/model")
    assert one_line(caught, BadInputError) == '"~no-such-user-llamadesk/model": no such user\'s home folder'


def test_resolve_source_refuses_a_name_too_long_for_the_file_system():
    source = "x" * 300
    with pytest.raises(BadInputError) as caught:
        resolve_source(source)
    message = one_line(caught, BadInputError)
    assert message.startswith('"xxxxxxxxx') and message.endswith(
        f": not a usable path ({os.strerror(errno.ENAMETOOLONG)})"
    )
    assert len(message) < 100  # the name is cut short


def test_resolve_source_refuses_what_is_neither_folder_nor_repo_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInputError) as caught:
        resolve_source("./no-such-folder")
    assert one_line(caught, BadInputError) == '"./no-such-folder": no such folder, and not a Hub repo id (owner/name)'


# -- downloads --------------------------------------------------------------------------------------


def test_a_repo_id_downloads_config_tokenizer_and_one_weight_format(hub):
    hub.add_repo(
        "someone/tiny",
        {
            "config.json": CONFIG,
            "tokenizer.json": TOKENIZER,
            "model.safetensors": b"\0" * 64,
            "pytorch_model.bin": b"an older copy of the weights",
            "onnx/model.onnx": b"not for llama.cpp",
        },
    )
    folder = resolve_source("someone/tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (folder / "config.json").read_bytes() == CONFIG.data
    assert hub.file_requests("model.safetensors") and not hub.file_requests("pytorch_model.bin")


@pytest.mark.parametrize(
    "repo_id, revision, repo_options, expected",
    [
        ("someone/missing", None, None, "someone/missing: no such repo (or revision) on the Hub; check the name"),
        ("someone/tiny", "v9", {}, "someone/tiny: no such repo (or revision) on the Hub; check the name"),
        (
            "someone/tiny",
            None,
            {"gated": True},
            "someone/tiny: a gated repo; accept its license on the Hub and log in with `hf auth login`",
        ),
    ],
    ids=["no such repo", "no such revision", "gated"],
)
def test_hub_refusals_become_one_line_for_the_user(hub, repo_id, revision, repo_options, expected):
    if repo_options is not None:
        hub.add_repo("someone/tiny", {"config.json": CONFIG, "model.safetensors": b"\0" * 8}, **repo_options)
    with pytest.raises(BadInputError) as caught:
        download_repo(repo_id, revision)
    assert one_line(caught, BadInputError) == expected


def test_a_repo_without_weights_is_refused_before_downloading(hub):
    hub.add_repo("someone/onnx-only", {"config.json": CONFIG, "model.onnx": b"x", "model.gguf": b"GGUF"})
    with pytest.raises(BadInputError) as caught:
        download_repo("someone/onnx-only")
    assert (
        one_line(caught, BadInputError)
        == "someone/onnx-only: the repo has no PyTorch or safetensors weights to convert"
    )
    assert not [r for r in hub.requests if "/resolve/" in r.path]


def test_a_name_the_hubs_rules_refuse_is_bad_input():
    name = "a" * 97 + "/model"  # each part may have 96 characters
    with pytest.raises(BadInputError) as caught:
        download_repo(name)
    assert one_line(caught, BadInputError).startswith(f"{name}: Repo id must use alphanumeric chars")


def server_error() -> HfHubHTTPError:
    request = httpx2.Request("GET", "https://huggingface.co/api/models/someone/tiny/tree/main")
    return HfHubHTTPError(
        "503 Server Error: Service Unavailable\nthe detail", response=httpx2.Response(503, request=request)
    )


@pytest.mark.parametrize(
    "error, expected",
    [
        (server_error(), "the Hub answered with an error (503 Server Error: Service Unavailable); try again later"),
        (
            httpx2.ConnectError("[Errno 111] Connection refused"),
            "could not download ([Errno 111] Connection refused); check",
        ),
        (TimeoutError(), "could not download (TimeoutError); check the network and try again"),
    ],
    ids=["server error", "connection refused", "timeout without a message"],
)
def test_network_and_server_failures_are_one_line_and_not_the_users_fault(monkeypatch, error, expected):
    def failing(self, repo_id, revision=None, **kwargs):
        raise error

    monkeypatch.setattr(HfApi, "list_repo_files", failing)
    with pytest.raises(LlamadeskError) as caught:
        download_repo("someone/tiny")
    assert one_line(caught, LlamadeskError).startswith(f"someone/tiny: {expected}")


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "stopped: the disk is full; free some space"),
        (OSError(errno.EFBIG, "File too large"), "stopped: a file grew past the largest this process may write"),
    ],
    ids=["disk full", "file-size limit"],
)
def test_a_download_the_disk_cannot_hold_is_not_called_a_network_failure(hub, monkeypatch, error, expected):
    # It said "could not download ([Errno 28] No space left on device); check the network and try again".
    import huggingface_hub

    def filling(*args, **kwargs):
        raise error

    hub.add_repo("someone/tiny", {"config.json": CONFIG, "model.safetensors": b"\0" * 8})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", filling)
    with pytest.raises(LlamadeskError) as caught:
        download_repo("someone/tiny")
    line = one_line(caught, LlamadeskError)
    assert line.startswith(f"someone/tiny: the download into {constants.HF_HUB_CACHE} {expected}"), line
    assert line.endswith("(or set HF_HOME to a folder on another disk) and try again")


def test_a_cache_not_ours_to_write_is_said_with_what_to_do(hub, tmp_path):
    from tests.permissions import permissions_enforced

    hub.add_repo("someone/tiny", {"config.json": CONFIG, "model.safetensors": b"\0" * 8})
    cache = Path(constants.HF_HUB_CACHE)
    cache.mkdir(parents=True)
    cache.chmod(0o555)
    try:
        with permissions_enforced(), pytest.raises(LlamadeskError) as caught:
            download_repo("someone/tiny")
    finally:
        cache.chmod(0o755)
    line = one_line(caught, LlamadeskError)
    assert line.startswith(f"someone/tiny: the Hugging Face cache {cache} cannot be written (Permission denied: "), line
    assert line.endswith("; make it writable (or set HF_HOME to another folder) and try again")


def test_an_unforeseen_error_is_not_disguised_as_a_network_failure(monkeypatch):
    bug = ZeroDivisionError("a bug of our own")

    def failing(self, repo_id, revision=None, **kwargs):
        raise bug

    monkeypatch.setattr(HfApi, "list_repo_files", failing)
    with pytest.raises(ZeroDivisionError) as caught:
        download_repo("someone/tiny")
    assert caught.value is bug


def test_an_answer_no_hub_would_send_is_one_line_of_bad_input(hub):
    # A hostile mirror or a captive proxy: the repo's info answer is not JSON.
    hub.add_repo("someone/tiny", {"config.json": CONFIG, "model.safetensors": b"\0" * 8}, raw_info=b"garbage")
    with pytest.raises(BadInputError) as caught:
        download_repo("someone/tiny")
    message = one_line(caught, BadInputError)
    assert message.startswith(f"someone/tiny: the Hub at {hub.url} sent an answer that is not what a Hub sends (")
    assert message.endswith("); check HF_ENDPOINT, or try again later")


@pytest.mark.parametrize("listing", [[1, 2], "config.json", None, ["config.json", b"model.safetensors"]])
def test_a_file_list_that_is_not_a_list_of_names_is_bad_input(monkeypatch, listing):
    monkeypatch.setattr(HfApi, "list_repo_files", lambda self, repo_id, revision=None, **kwargs: listing)
    with pytest.raises(BadInputError) as caught:
        download_repo("someone/tiny")
    assert "(TypeError); check HF_ENDPOINT" in one_line(caught, BadInputError)


@pytest.mark.parametrize("error", [KeyError("siblings"), TypeError("'int' object is not iterable"), RecursionError()])
def test_a_malformed_answer_found_while_parsing_is_bad_input(monkeypatch, error):
    def failing(self, repo_id, revision=None, **kwargs):
        raise error

    monkeypatch.setattr(HfApi, "list_repo_files", failing)
    with pytest.raises(BadInputError) as caught:
        download_repo("someone/tiny")
    assert f"({type(error).__name__}); check HF_ENDPOINT" in one_line(caught, BadInputError)
