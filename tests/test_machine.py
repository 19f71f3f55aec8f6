"""Machine facts parsed from what real machines' files and commands say."""

from __future__ import annotations

import dataclasses

import psutil

from llamadesk.app.core.machine import GpuFacts, available_memory, machine_facts, parse_cpu_list
from tests import fake_machines as fm


def test_this_machine_matches_psutil() -> None:
    facts = machine_facts()
    assert facts.logical_cores <= psutil.cpu_count(logical=True)
    assert 1 <= facts.physical_cores <= facts.logical_cores
    assert facts.total_ram == psutil.virtual_memory().total
    assert facts.system == "Linux" and facts.cpu_model and facts.gpus == ()
    assert "avx2" in facts.cpu_flags


def test_intel_hybrid_laptop_counts_p_cores_once_each() -> None:
    facts = machine_facts(fm.CUDA_LAPTOP)
    assert (facts.physical_cores, facts.logical_cores, facts.performance_cores) == (14, 20, 6)
    assert facts.cpu_model == "12th Gen Intel(R) Core(TM) i7-12700H"
    assert facts.gpus == (GpuFacts("NVIDIA GeForce RTX 4070 Laptop GPU", "nvidia", 8188 * fm.MIB, 7710 * fm.MIB),)


def test_affinity_limits_the_cores() -> None:
    pinned = dataclasses.replace(fm.CUDA_LAPTOP, usable_cpus=lambda: 4)
    facts = machine_facts(pinned)
    assert (facts.physical_cores, facts.logical_cores, facts.performance_cores) == (4, 4, 4)


def test_mac_performance_cores_and_unified_gpu() -> None:
    facts = machine_facts(fm.M2_MAC)
    assert facts.performance_cores == 8 and facts.cpu_model == "Apple M2 Pro"
    (gpu,) = facts.gpus
    assert gpu.unified_memory and gpu.vendor == "apple" and gpu.total_vram == int(32 * fm.GIB * 2 / 3)
    intel_mac = fm.probe(
        "Darwin",
        "x86_64",
        {},
        {("sysctl", "-n", "machdep.cpu.brand_string"): "Intel(R) Core(TM) i9\n"},
        8,
        16,
        16 * fm.GIB,
        8 * fm.GIB,
    )
    facts = machine_facts(intel_mac)
    assert facts.performance_cores is None and facts.gpus == ()


def test_pi5_board_and_cores() -> None:
    facts = machine_facts(fm.PI5)
    assert facts.is_raspberry_pi and facts.board == "Raspberry Pi 5 Model B Rev 1.0"
    assert facts.cpu_model == "Cortex-A76" and "asimddp" in facts.cpu_flags
    assert facts.swap_total == 100 * fm.MIB


def test_amd_gpu_from_sysfs_and_nvidia_without_memory_figures() -> None:
    base = "/sys/class/drm/card1/device"
    amd = fm.probe(
        "Linux",
        "x86_64",
        {
            f"{base}/vendor": "0x1002\n",
            f"{base}/mem_info_vram_total": str(16 * fm.GIB),
            f"{base}/mem_info_vram_used": str(1 * fm.GIB),
            "/sys/class/drm/card0/device/vendor": "0x8086\n",
        },
        {},
        8,
        16,
        32 * fm.GIB,
        24 * fm.GIB,
    )
    assert machine_facts(amd).gpus == (GpuFacts("AMD GPU (card1)", "amd", 16 * fm.GIB, 15 * fm.GIB),)
    vgpu = fm.probe(
        "Linux",
        "x86_64",
        {},
        {
            (
                "nvidia-smi",
                "--query-gpu=name,memory.total,memory.free",
                "--format=csv,noheader,nounits",
            ): "GRID A100-4C, [N/A], [N/A]\n"
        },
        4,
        8,
        16 * fm.GIB,
        8 * fm.GIB,
    )
    assert machine_facts(vgpu).gpus == (GpuFacts("GRID A100-4C", "nvidia"),)


def test_cpu_lists() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("") == []


def test_busy_cores_are_measured_only_when_asked() -> None:
    busy = dataclasses.replace(fm.CUDA_LAPTOP, cpu_busy=lambda: 0.25, load_average=lambda: 5.0)
    assert machine_facts(busy).busy_cores is None
    facts = machine_facts(busy, measure_busy=True)
    assert facts.busy_cores == 5.0 and facts.load_average == 5.0  # a quarter of 20 logical CPUs
    real = machine_facts(measure_busy=True)
    assert 0 <= real.busy_cores <= real.logical_cores and real.load_average is not None


def test_available_memory_reads_the_memory_alone_without_asking_the_gpus():
    asked: list = []
    probe = dataclasses.replace(fm.CUDA_LAPTOP, run=lambda command: asked.append(command))
    assert available_memory(probe) == machine_facts(fm.CUDA_LAPTOP).available_ram > 0
    assert asked == []  # no nvidia-smi (a second or two on a sleeping laptop GPU) for a memory reading
