"""A Hub (or proxy, or mirror) that answers badly: `search` and `pull` end in one line, never hang,
never print what the server sends raw (hub hunt F1, F2, F6-F8, F19, F20, F26)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest
from huggingface_hub import constants

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.hub import http_client
from tests.conftest import run_cli_process
from tests.gguf_samples import tiny_gguf_bytes
from tests.hub_standin import HubStandin


@pytest.fixture
def hub(tmp_path):
    with HubStandin() as standin:
        standin.add_repo("tiny/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": tiny_gguf_bytes(tmp_path, "t.gguf")}, downloads=5)
        yield standin


@pytest.fixture
def env(hub, tmp_path) -> dict[str, str]:
    (tmp_path / "home" / "data").mkdir(parents=True)
    return {**hub.env(tmp_path / "hf"), "LLAMADESK_HOME": str(tmp_path / "home")}


def cli(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_cli_process(*args, env=env, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("llamadesk:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return lines[0]


def override(hub: HubStandin, methods: tuple[str, ...], path: str, answer) -> None:
    hub.overrides.append((methods, re.compile(path), answer))


def test_search_reads_one_page_however_many_next_links_follow(env, hub):
    """F1: empty pages that each link to another were followed forever."""
    link = {"Content-Type": "application/json", "Link": f'<{hub.url}/api/models?p=1>; rel="next"'}
    override(hub, ("GET",), r"^/api/models$", lambda h, m, q: h._send(200, b"[]", link))
    done = cli(env, "search", "x", timeout=30)
    assert done.returncode == 0 and "no GGUF repos match" in done.stdout, done.stderr
    assert len([r for r in hub.requests if r.path == "/api/models"]) == 1


def test_search_drops_results_whose_id_is_not_a_repo_id(env, hub):
    """F2: an id with terminal escapes is no result; a real one still shows."""
    hostile = {"id": "evil/\x1b]0;PWNED\x07\x1b[2JRED-GGUF", "downloads": 1, "likes": 0, "tags": ["gguf"]}
    real = {"id": "tiny/Tiny-GGUF", "downloads": 5, "likes": 0, "tags": ["gguf"]}
    body = json.dumps([hostile, real]).encode()
    override(hub, ("GET",), r"^/api/models$", lambda h, m, q: h._send(200, body, {"Content-Type": "application/json"}))
    done = cli(env, "search", "x")
    assert done.returncode == 0 and "\x1b" not in done.stdout and "tiny/Tiny-GGUF" in done.stdout


def test_models_shows_escapes_in_file_names_as_visible_characters(env, tmp_path):
    """F2: a file name from an archive must not retitle the window or clear the screen."""
    folder = tmp_path / "ggufs"
    folder.mkdir()
    (folder / "\x1b]0;PWNED\x07\x1b[31mred-Q4_K_M.gguf").write_bytes(tiny_gguf_bytes(tmp_path, "x.gguf"))
    assert cli(env, "models", "add", str(folder)).returncode == 0
    done = cli(env, "models")
    assert done.returncode == 0 and "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "^[]0;PWNED^G^[[31mred-Q4_K_M" in done.stdout


@pytest.mark.parametrize("where", ["api", "head"])
def test_a_redirect_loop_is_one_line_not_an_internal_error(env, hub, where):
    """F6."""
    path = r"^/api/models/" if where == "api" else r"^/tiny/Tiny-GGUF/resolve/"
    override(hub, ("GET", "HEAD"), path, lambda h, m, q: h._send(307, b"", {"Location": h.path}))
    line = one_line_error(cli(env, "pull", "tiny/Tiny-GGUF:Q4_K_M"), 1)
    assert "redirects in a loop" in line


def test_a_redirect_loop_on_search_is_one_line(env, hub):
    override(hub, ("GET",), r"^/api/models$", lambda h, m, q: h._send(302, b"", {"Location": h.path}))
    assert "redirects in a loop" in one_line_error(cli(env, "search", "tiny"), 1)


@pytest.mark.parametrize("command", [("search", "tiny"), ("pull", "tiny/Tiny-GGUF:Q4_K_M")])
def test_a_429_asking_for_a_long_wait_ends_at_once(env, hub, command):
    """F7: huggingface-hub slept for whatever Retry-After said, five times, without a word."""
    path = r"^/api/models$" if command[0] == "search" else r"^/tiny/Tiny-GGUF/resolve/"
    override(hub, ("GET",), path, lambda h, m, q: h._send(429, b"slow down", {"Retry-After": "3600"}))
    started = time.monotonic()
    line = one_line_error(cli(env, *command), 1)
    assert "limiting requests (429)" in line and "60 min" in line
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("token", ["hf_abc\u00a0def", "\u201chf_abc\u201d"])
def test_a_token_with_a_character_no_token_has_is_named_as_the_problem(env, token):
    """F19: it was blamed on the Hub and HF_ENDPOINT."""
    line = one_line_error(cli({**env, "HF_TOKEN": token}, "search", "tiny"), 2)
    assert "HF_TOKEN" in line and "copy it again" in line and "HF_ENDPOINT" not in line


@pytest.mark.parametrize(
    "variable, value",
    [
        ("HF_ENDPOINT", "http://127.0.0.1:99999"),
        ("HF_ENDPOINT", "http://[::1"),
        ("HF_ENDPOINT", "localhost:8080"),
        ("HF_HUB_DOWNLOAD_TIMEOUT", "abc"),
    ],
)
def test_a_hub_setting_huggingface_hub_cannot_read_is_one_line_naming_it(env, variable, value):
    """F20: an internal error with junk on stdout, even for `models --json` with a pulled model."""
    bad = {**env, variable: value}
    for command in (("search", "tiny"), ("pull", "tiny/Tiny-GGUF")):
        done = cli(bad, *command)
        assert variable in one_line_error(done, 2) and done.stdout == ""
    assert cli(bad, "--help").returncode == 0
    library = {
        "pulled": [
            {
                "name": "Tiny-Q4_K_M",
                "repo": "tiny/Tiny-GGUF",
                "revision": "main",
                "commit": "a" * 40,
                "files": ["Tiny-Q4_K_M.gguf"],
                "quantization": "Q4_K_M",
                "downloaded": True,
            }
        ]
    }
    (env_home := __import__("pathlib").Path(env["LLAMADESK_HOME"]) / "data" / "library.json").write_text(
        json.dumps(library)
    )
    assert env_home.exists()
    listed = cli({**bad, "HF_HUB_OFFLINE": "1"}, "models", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "smollm2" in [m["name"] for m in json.loads(listed.stdout)] and variable in listed.stderr


@pytest.fixture
def hub_in_process(hub, monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    return hub


def test_an_api_answer_over_the_size_cap_is_refused(hub_in_process, monkeypatch):
    """F8: the whole answer was read and parsed (memory ~4x its size)."""
    from llamadesk.app.hub.repo import list_repo

    monkeypatch.setattr(http_client, "API_MAX_BYTES", 1024**2)
    body = b'{"padding": "' + b"x" * (2 * 1024**2) + b'"}'
    for length in (True, False):  # announced, or sent chunked without a length

        def answer(h, m, q, length=length):
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            if length:
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                return
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            h.wfile.write(b"0\r\n\r\n")

        hub_in_process.overrides[:] = [(("GET",), re.compile(r"^/api/models/"), answer)]
        with pytest.raises(LlamadeskError, match="is over 1 MB, which no Hub sends"):
            list_repo("tiny/Tiny-GGUF")


def test_an_api_answer_that_trickles_ends_at_the_deadline(hub_in_process, monkeypatch):
    """F26: one byte at a time, each read in time, the whole answer never."""
    from llamadesk.app.hub.repo import list_repo

    monkeypatch.setattr(http_client, "API_DEADLINE_S", 1.0)
    stop = threading.Event()
    body = json.dumps(hub_in_process.repos["tiny/Tiny-GGUF"].info(True)).encode()

    def trickle(h, m, q):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for byte in body:
            if stop.wait(0.2):
                return
            try:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
            except OSError:
                return

    hub_in_process.overrides.append((("GET",), re.compile(r"^/api/models/"), trickle))
    started = time.monotonic()
    try:
        with pytest.raises(LlamadeskError, match="did not send its whole answer in 1 s"):
            list_repo("tiny/Tiny-GGUF")
    finally:
        stop.set()
    assert time.monotonic() - started < 10
