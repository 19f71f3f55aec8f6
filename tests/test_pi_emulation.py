"""The Raspberry Pi 5 build, in emulation: `install.sh pi5`'s flags cross-compile llama.cpp for
aarch64 (packaging/pi-check.sh, cached like the other reference builds), and under
`qemu-aarch64 -cpu cortex-a76` it uses the Pi 5's SIMD paths and answers as the x86 build does.

The full comparison (both starters, 32 tokens, logits, the settings fitted for 4 and 8 GB Pis)
is bench/pi.py; this is the quick check that the build is sound.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk.app.library.starters import starter_path
from tests.conftest import REPO

PI5_FEATURES = {"NEON", "ARM_FMA", "FP16_VA", "DOTPROD"}  # what doctor expects of a Pi 5 build
ELF_MACHINE_AARCH64 = 183


def _bench_pi():
    spec = importlib.util.spec_from_file_location("bench_pi", REPO / "bench" / "pi.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


pi = _bench_pi()


@pytest.fixture(scope="module")
def builds() -> Path:
    return pi.pi_builds()


def install_sh_pi5_flags() -> str:
    done = subprocess.run(
        ["bash", "-c", ". packaging/cmake-targets.sh && cmake_args_for pi5"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_cross_build_has_exactly_the_flags_install_sh_gives_a_pi5(builds: Path) -> None:
    flags = install_sh_pi5_flags()
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in flags
    assert (builds / "cmake-args").read_text().strip() == flags
    cache = (builds / "build" / "CMakeCache.txt").read_text()
    assert "GGML_CPU_ARM_ARCH:STRING=armv8.2-a+dotprod+fp16" in cache and "GGML_NATIVE:BOOL=off" in cache
    # e_machine of the probe and of libggml-cpu: aarch64 code, not a host build by mistake.
    for binary in (builds / "pi-probe", builds / "build" / "bin" / "libggml-cpu.so"):
        assert int.from_bytes(binary.read_bytes()[18:20], "little") == ELF_MACHINE_AARCH64, binary


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_emulated_cortex_a76_uses_dotprod_and_fp16_and_gives_x86s_32_greedy_tokens(builds: Path) -> None:
    compared = pi.compare_answer(builds, "smollm2")  # free-running: each build decodes its own picks
    assert PI5_FEATURES <= set(compared.arm.cpu_features), compared.arm.system_info
    assert "AVX2" in compared.x86.cpu_features  # the reference really is the other architecture's kernels
    # The prompt's answer is decided (no step a near tie), so two correct builds agree on every
    # token; bench/pi.py does the same for Gemma 3 and shows where an open-ended prompt parts.
    assert compared.decided, (min(compared.x86.margins), compared.max_logit_difference)
    assert len(compared.x86.tokens) == pi.N_COMPARE == 32
    assert compared.arm.tokens == compared.x86.tokens, (compared.x86.text, compared.arm.text)
    assert compared.arm.text == compared.x86.text
    assert len(compared.arm.logits) == len(compared.x86.logits) == 49152  # SmolLM2's vocabulary
    # Different kernels round differently (~0.8 at most on a logit range of ~36); a wrong kernel
    # would be off by whole logits.
    assert 0 < compared.max_logit_difference < 2


def test_a_pi4_cortex_a72_cannot_run_the_pi5_build_so_the_emulated_a76_really_ran_its_extensions(builds: Path) -> None:
    """qemu faults on instructions the CPU it emulates lacks: the Pi 4's A72 has no dot product or fp16."""
    command = pi.probe_command(builds, "aarch64", cpu="cortex-a72")
    with pytest.raises(RuntimeError, match=r"failed \(-4\)"):  # SIGILL
        pi.run_probe(command, starter_path("smollm2"), "Hi", 1, 1, 64, 64, "f16")


def test_without_the_cross_tools_or_apt_get_pi_check_says_why_in_one_line_and_exits_3(tmp_path) -> None:
    bin_dir = tmp_path / "bin"  # the basic tools only: no cross compiler, no qemu, no apt-get
    bin_dir.mkdir()
    for tool in ("dirname", "id", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    done = subprocess.run(
        ["/bin/bash", str(REPO / "packaging" / "pi-check.sh"), "--build-only"],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
    )
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.startswith("pi-check.sh: skipped: no apt-get") and done.stderr.count("\n") == 1
