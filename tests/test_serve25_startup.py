"""`serve`: a port or host it cannot listen on, and two -m files with one name, are one line and
exit 2 before any model is loaded.

A taken port was found by uvicorn after --preload and the "serving on" line: its own ERROR line and
exit 3. Two -m files with the same stem served one of them silently (and --preload loaded the other).
"""

from __future__ import annotations

import socket

import pytest

from llamadesk.app.commands.serve import _served_models, _url
from llamadesk.app.core.errors import BadInputError
from tests.conftest import assert_one_clear_line, run_cli_process
from tests.serve_process import free_port

KEY = {"LLAMADESK_API_KEY": "test-key-0123456789abcdef"}  # a non-loopback --host needs one


def _serve(*args: str, env: dict | None = None):
    return run_cli_process("serve", "--threads", "1", *args, timeout=120, env=env)


def test_a_taken_port_is_refused_before_the_model_loads(smollm2_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A preload the memory budget refuses: had the model been loaded first, that would be the message.
        result = _serve("--port", str(port), "-m", str(smollm2_path), "--preload", "--memory-budget", "1M")
    assert_one_clear_line(result, 2, f"port {port} on 127.0.0.1 is in use", "--port")


@pytest.mark.parametrize(
    ("host", "needle"),
    [("no-such-host.invalid", "no such address"), ("192.0.2.1", "not an address of this machine")],
)
def test_a_host_that_cannot_be_listened_on_is_one_line(host, needle):
    assert_one_clear_line(_serve("--host", host, "--port", str(free_port()), env=KEY), 2, f"--host {host}", needle)


def test_two_files_served_under_one_name_are_refused(tmp_path, smollm2_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "g.gguf", tmp_path / "b" / "g.gguf"
    first.symlink_to(smollm2_path)
    second.write_bytes(b"")  # refused before its header is read
    with pytest.raises(BadInputError, match=r"-m .*a/g\.gguf and -m .*b/g\.gguf would both be served as 'g'"):
        _served_models([str(first), str(second)])
    assert_one_clear_line(
        _serve("--port", str(free_port()), "-m", str(first), "-m", str(second), "--preload"), 2, "rename one"
    )


def test_one_file_named_twice_is_served_once(tmp_path, smollm2_path):
    link = tmp_path / "smollm2.gguf"
    link.symlink_to(smollm2_path)
    # The library's smollm2 and a link to its file: one model, kept where it was first named.
    assert _served_models(["smollm2", str(link), "smollm2"]) == {"smollm2": smollm2_path}


def test_an_ipv6_address_is_bracketed_in_the_url():
    assert _url("::1", 11435) == "http://[::1]:11435"
    assert _url("127.0.0.1", 11435) == "http://127.0.0.1:11435"
