"""--rpc: a model split across two llama.cpp RPC servers on 127.0.0.1, with a real -DGGML_RPC=on build.

The project's .venv keeps the plain build, so these tests run llamadesk from this checkout with a
second, cached environment whose llama-cpp-python has the RPC backend (packaging/rpc-build.sh).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import PINNED_FLAGS, REPO, run_cli

# Everything conftest pins but the GPU layers, which go to the RPC servers.
PINNED_RPC_FLAGS = PINNED_FLAGS[:6] + PINNED_FLAGS[8:]

CLI = "import sys; from llamadesk.app.cli import main; sys.exit(main())"
DRIVER = """
import json, sys, psutil
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.devices import backend_devices
from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece
path, servers, pids = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3].split(",")]
rss = lambda: [psutil.Process(p).memory_info().rss for p in pids]
before = rss()
pinned = dict(n_threads=1, n_batch=512, kv_cache_type="f16", flash_attn=True)  # all but the GPU layers
with Engine.load(path, LoadSettings(n_ctx=512, rpc_servers=servers, **pinned)) as engine:
    loaded = rss()
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    text = "".join(e.text for e in engine.stream_chat(messages, Sampling(temperature=0, max_tokens=24))
                   if isinstance(e, TextPiece))
    devices = [d.name for d in backend_devices()]
    settings = engine.settings
print(json.dumps({"before": before, "loaded": loaded, "text": text, "devices": devices,
                  "n_gpu_layers": settings.n_gpu_layers, "reason": settings.reasons["n_gpu_layers"]}))
"""


@pytest.fixture(scope="module")
def rpc_python() -> str:
    done = subprocess.run(
        ["bash", str(REPO / "packaging" / "rpc-build.sh"), sys.executable], capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def rpc_env(tmp_path_factory) -> dict[str, str]:
    """PYTHONPATH that imports llamadesk.* from this checkout (the package-dir mapping, as links)."""
    root = tmp_path_factory.mktemp("rpc-path")
    (root / "llamadesk").mkdir()
    for name in ("app", "convert", "quantize"):
        (root / "llamadesk" / name).symlink_to(REPO / name)
    return {**os.environ, "PYTHONPATH": str(root)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else "server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no RPC server on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def two_servers(rpc_python, rpc_env):
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [rpc_python, "-c", CLI, "rpc-server", "--port", str(p), "--threads", "1"],
            env=rpc_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ports
    ]
    try:
        for port, server in zip(ports, servers, strict=False):
            wait_for_port(port, server)
        yield ports, servers
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_model_split_across_two_rpc_servers_answers(rpc_python, rpc_env, two_servers, smollm2_path) -> None:
    ports, servers = two_servers
    endpoints = ",".join(f"127.0.0.1:{p}" for p in ports)
    done = subprocess.run(
        [rpc_python, "-c", DRIVER, str(smollm2_path), endpoints, ",".join(str(s.pid) for s in servers)],
        env=rpc_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Paris" in result["text"]
    assert result["devices"][:1] == ["CPU"] and sorted(result["devices"][1:]) == ["RPC0", "RPC1"]
    assert result["n_gpu_layers"] == 999 and f"127.0.0.1:{ports[0]}" in result["reason"]
    # Both servers took a share of the weights: SmolLM2's 30 layers are ~66 MB, split in two.
    grown = [after - before for before, after in zip(result["before"], result["loaded"], strict=False)]
    assert all(g > 15 * 1024**2 for g in grown), grown


@pytest.mark.slow
def test_chat_and_doctor_take_rpc_servers_from_the_command_line(rpc_python, rpc_env, two_servers, smollm2_path) -> None:
    ports, _ = two_servers
    endpoints = ",".join(f"127.0.0.1:{p}" for p in ports)
    chat = subprocess.run(
        [
            rpc_python,
            "-c",
            CLI,
            "chat",
            "-m",
            str(smollm2_path),
            "--rpc",
            endpoints,
            "--ctx",
            "512",
            *PINNED_RPC_FLAGS,
            "--temperature",
            "0",
            "--seed",
            "0",
            "--max-tokens",
            "24",
            "What is the capital of France?",
        ],
        env=rpc_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chat.returncode == 0 and "Paris" in chat.stdout, chat.stderr
    doctor = subprocess.run(
        [rpc_python, "-c", CLI, "doctor", "--json", "-m", str(smollm2_path), "--rpc", endpoints],
        env=rpc_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["build"]["rpc"] is True
    assert [d["name"] for d in report["build"]["devices"] if d["name"].startswith("RPC")] == ["RPC0", "RPC1"]
    assert report["settings"]["n_gpu_layers"] == 999
    assert report["warnings"] == []  # no "GPU unused" or "no GPU found" for RPC devices


@pytest.mark.slow
def test_an_unreachable_or_foreign_server_is_a_clear_error_not_an_abort(rpc_python, rpc_env, smollm2_path) -> None:
    # Nothing listens: ggml itself would abort the process; llamadesk checks first.
    port = free_port()
    done = subprocess.run(
        [rpc_python, "-c", CLI, "chat", "-m", str(smollm2_path), "--rpc", f"127.0.0.1:{port}", "hi"],
        env=rpc_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and f"cannot reach the RPC server at 127.0.0.1:{port}" in done.stderr
    assert "llamadesk rpc-server" in done.stderr and len(done.stderr.strip().splitlines()) == 1

    # Something that hangs up on HELLO, as a server of another llama.cpp version does.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(64)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        done = subprocess.run(
            [rpc_python, "-c", CLI, "chat", "-m", str(smollm2_path), "--rpc", f"127.0.0.1:{port}", "hi"],
            env=rpc_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        listener.close()
    assert done.returncode == 1 and "another llama.cpp version" in done.stderr, done.stderr


def test_the_plain_build_says_how_to_get_rpc() -> None:
    done = run_cli("chat", "--rpc", "127.0.0.1:50052", "hi")
    assert done.returncode == 1 and 'CMAKE_ARGS="-DGGML_RPC=on"' in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    bad = run_cli("chat", "--rpc", "localhost", "hi")
    assert bad.returncode == 2 and "host:port" in bad.stderr
