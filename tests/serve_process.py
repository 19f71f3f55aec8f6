"""`llamadesk serve` as a real subprocess on a free loopback port, for tests with real HTTP clients."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import LLAMADESK

# Pinned so that replies are reproducible and the shared test machine is not oversubscribed: every
# setting that changes what the model says (flash attention: on, as before the CPU default turned it
# off; tests/test_engine.py checks seeded replies repeat with it off too).
PINNED_FLAGS = ("--threads", "2", "--ctx", "2048", "--flash-attn", "on", "--kv-type", "f16", "--batch", "512")
MODEL = "smollm2"
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
STARTUP_SECONDS = 90


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Start the server (stdout and stderr to a file, so a long run never fills a pipe) and wait
    until GET /health answers; stop it with SIGTERM afterwards."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llamadesk-serve-", suffix=".log")[1])
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(LLAMADESK), "serve", "--host", "127.0.0.1", "--port", str(port), "-m", MODEL, *PINNED_FLAGS, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llamadesk serve exited with {process.returncode}: {served.log_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{served.url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llamadesk serve did not answer in {STARTUP_SECONDS} s: {served.log_text()}")
            time.sleep(0.2)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


def wait_until(predicate, timeout: float, interval: float = 0.02) -> float:
    """Seconds until `predicate()` held; raises AssertionError after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
