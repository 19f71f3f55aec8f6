"""Shared fixtures: an isolated llamadesk home, the real starter models, a CLI runner."""

from __future__ import annotations

import atexit
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Every test (and every CLI subprocess it starts) uses a throwaway home, never the user's data.
_HOME = tempfile.mkdtemp(prefix="llamadesk-test-home-")
os.environ["LLAMADESK_HOME"] = _HOME
# It holds the assembled gemma starter (~240 MB): gone with the session, or every run leaves one.
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
# ... and a throwaway user home: models that Ollama or LM Studio keep in the real one are found by
# themselves (library/other_apps.py) and would show up in every library listing a test looks at.
# What the suite builds once and reuses (reference tools, checkpoints) stays in the real home.
_REAL_CACHE = Path.home() / ".cache" / "llamadesk-dev"
os.environ.setdefault("LLAMADESK_TOOLS_CACHE", str(_REAL_CACHE))
os.environ.setdefault("LLAMADESK_FIXTURE_CACHE", str(_REAL_CACHE / "fixtures"))
# pip's cache holds the llama-cpp-python wheel it compiled (~5 min): the packaging test installs from it.
os.environ.setdefault("PIP_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pip"))
_USER_HOME = tempfile.mkdtemp(prefix="llamadesk-test-user-")
os.environ["HOME"] = _USER_HOME
os.environ["OLLAMA_MODELS"] = ""  # Ollama's own override, honoured like Ollama does
atexit.register(shutil.rmtree, _USER_HOME, ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent

# A non-interactive shell starts background jobs with SIGINT ignored, and children inherit that:
# the Ctrl-C tests would see a llamadesk that cannot be interrupted. The tests act as a user at a
# terminal, so Ctrl-C works for them and for what they start.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
LLAMADESK = Path(sys.executable).with_name("llamadesk")

# What a model says depends on how it runs: left automatic, a busy machine gets fewer threads, a
# tight memory budget a q8_0 KV cache (SmolLM2 then answers "What is the capital of France?" in
# French), a GPU build offloads. Tests that assert what a model says load it with all of these
# fixed, so the answer is the same on every machine and under any load.
PINNED_LOAD = {"n_threads": 1, "n_batch": 512, "kv_cache_type": "f16", "n_gpu_layers": 0, "flash_attn": True}
PINNED_FLAGS = ("--threads", "1", "--batch", "512", "--kv-type", "f16", "--gpu-layers", "0", "--flash-attn", "on")
PINNED_SAMPLING_FLAGS = ("--temperature", "0", "--seed", "0")  # greedy; the seed for completeness


@pytest.fixture(scope="session")
def llamadesk_home() -> Path:
    return Path(_HOME)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from llamadesk.app.library.starters import starter_path

    return starter_path("smollm2")


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    from llamadesk.app.library.starters import starter_path

    return starter_path("gemma3-270m")


@pytest.fixture(scope="session")
def smollm2_engine(smollm2_path):
    """One loaded SmolLM2 for the whole session (loading costs ~0.3 s and 100 MB), pinned (PINNED_LOAD)."""
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    with Engine.load(smollm2_path, LoadSettings(n_ctx=4096, **PINNED_LOAD)) as engine:
        yield engine


def run_cli_process(
    *args: str, input: str | None = None, timeout: float = 300, env: dict | None = None, full_disk: bool = False
) -> subprocess.CompletedProcess:
    """Run the installed `llamadesk` console script as a user would: for exit codes, signals,
    packaging, and anything that needs a fresh process (huggingface-hub reads HF_* at import).

    `full_disk`: no file may grow in that process (RLIMIT_FSIZE 0), a full disk's twin for it alone."""
    return subprocess.run(
        [str(LLAMADESK), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        preexec_fn=_no_file_may_grow if full_disk else None,
    )


def _no_file_may_grow() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


class _Output(io.TextIOWrapper):
    """A captured stdout/stderr that, like a pipe, is not a terminal and has a byte buffer."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8", errors="replace")


def run_cli(
    *args: str, input: str | None = None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`llamadesk ARGS` in this process: the same entry point, argv in, exit code and output out.

    ~0.5-1 s faster per call than a subprocess (no interpreter start, imports already done), and a
    failure shows the Python frame. `timeout` is accepted for run_cli_process's callers and left to
    pytest-timeout here. Environment variables in `env` are set for the call and restored after.
    """
    from llamadesk.app.cli import main

    saved_env = {name: os.environ.get(name) for name in (env or {})}
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    stdout, stderr = _Output(), _Output()
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
    os.environ.update(env or {})
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse: --help (0) and usage errors (2)
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess(["llamadesk", *args], code, stdout.text(), stderr.text())


@pytest.fixture(scope="session")
def checkpoints_root(tmp_path_factory) -> Path:
    """Where this session's random checkpoints are built (tests.fixtures.random_checkpoints.build)."""
    return tmp_path_factory.mktemp("random-checkpoints")


@pytest.fixture
def own_home(tmp_path, monkeypatch) -> Path:
    """A library of this test's own: its conversions land in (and are recorded by) it, not the session's.
    Modules that convert ask for it in `pytestmark = pytest.mark.usefixtures("own_home")`."""
    home = tmp_path / "home"
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    return home


@pytest.fixture
def llama2(checkpoints_root, tmp_path) -> Path:
    """A private copy of the Llama 2 checkpoint (one model.safetensors) that a test may damage or add to."""
    from tests.fixtures.random_checkpoints import build

    return Path(shutil.copytree(build("llama2_spm", checkpoints_root), tmp_path / "llama2"))


@pytest.fixture(scope="session")
def smollm2_f16_path(smollm2_path) -> Path:
    """SmolLM2 as an unquantized f16 GGUF (the input quantization starts from)."""
    from tests.fixtures.smollm2_f16 import smollm2_f16_gguf

    return smollm2_f16_gguf(smollm2_path)


@pytest.fixture
def decode_sizes(monkeypatch) -> list[int]:
    """The number of tokens in each llama_decode call made while the test runs (the batches)."""
    import llama_cpp

    sizes: list[int] = []
    real = llama_cpp.llama_decode

    def recording(context, batch):
        sizes.append(batch.n_tokens)
        return real(context, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", recording)
    return sizes


def one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    """The CLI failed with `code` and said why in one `llamadesk:` line (other lines, such as
    progress, may come before it), without a traceback; that line."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("llamadesk:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def assert_one_clear_line(result, code: int, *needles: str) -> None:
    """The project's rule for bad input: exit `code`, one `llamadesk: ...` line on stderr holding every
    needle, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llamadesk: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
