"""Facts about the machine llamadesk runs on: CPU, cores, memory, swap and GPUs.

Everything is read through a `SystemProbe` (files, commands, psutil), so tests describe a CUDA
laptop, an M-series Mac or a Raspberry Pi 5 as data and run the same parsing code. Nothing here
needs a GPU library: NVIDIA GPUs are read with `nvidia-smi`, AMD ones from amdgpu's sysfs files,
Apple GPUs share the machine's memory. What the llama.cpp *build* can do (CPU, CUDA, Metal) is the
engine's to say: see engine.build_info.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

COMMAND_TIMEOUT_S = 5  # nvidia-smi on a sleeping laptop GPU can take a second or two
BUSY_SAMPLE_S = 0.2  # how long to watch the CPUs to see how many other programs keep busy

# ARM cores by the "CPU part" number in /proc/cpuinfo (ARM's own part numbers; Linux on ARM has
# no "model name" line). Only cores people run llamadesk on: Raspberry Pis, ARM laptops/servers.
ARM_CORE_NAMES = {
    "0xd03": "Cortex-A53",  # Pi 3, Pi Zero 2
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",  # Pi 4, Pi 400
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",  # Pi 5
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}
AMD_PCI_VENDOR = "0x1002"


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as the system (not the llama.cpp build) sees it."""

    name: str
    vendor: str  # "nvidia", "amd", "apple"
    total_vram: int | None = None
    free_vram: int | None = None
    unified_memory: bool = False  # Apple silicon: the GPU uses system RAM


@dataclass(frozen=True)
class MachineFacts:
    """Cores, memory and GPUs as the OS reports them now."""

    physical_cores: int
    logical_cores: int
    total_ram: int
    available_ram: int
    # The cores that run llama.cpp fastest when the CPU mixes big and small ones (Apple P-cores,
    # Intel P-cores); None when the OS does not tell or all cores are alike.
    performance_cores: int | None = None
    cpu_model: str = ""
    system: str = ""  # "Linux", "Darwin", "Windows"
    arch: str = ""  # "x86_64", "arm64", "aarch64"
    board: str = ""  # e.g. "Raspberry Pi 5 Model B Rev 1.0" (device tree); "" elsewhere
    swap_total: int = 0
    gpus: tuple[GpuFacts, ...] = field(default=())
    # The CPU's instruction-set flags as the kernel lists them (Linux: "avx2", "asimddp"); empty
    # where the OS does not list them.
    cpu_flags: frozenset[str] = field(default=frozenset())
    # Runnable processes, averaged over the last minute: above the core count, other programs
    # keep cores busy, and llama.cpp's threads (which wait for each other at every step) slow down.
    load_average: float | None = None
    # Cores other programs kept busy while we looked (measured only when asked: it takes 0.2 s).
    busy_cores: float | None = None

    @property
    def is_raspberry_pi(self) -> bool:
        return self.board.startswith("Raspberry Pi")


@dataclass(frozen=True)
class SystemProbe:
    """Where machine facts come from. The default reads this machine; tests pass their own."""

    system: str
    arch: str
    read_text: Callable[[str], str | None]  # a file's text, None when it cannot be read
    run: Callable[[Sequence[str]], str | None]  # a command's stdout, None when it fails
    cpu_count: Callable[[bool], int | None]  # psutil.cpu_count(logical=...)
    memory: Callable[[], tuple[int, int, int]]  # total RAM, available RAM, total swap
    usable_cpus: Callable[[], int | None]  # CPUs this process may run on (affinity), None: all
    load_average: Callable[[], float | None] = lambda: None  # 1-minute load average, None: unknown
    cpu_busy: Callable[[], float | None] = lambda: None  # share of all CPUs busy right now, 0..1


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _run(command: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _memory() -> tuple[int, int, int]:
    memory = psutil.virtual_memory()
    return memory.total, memory.available, psutil.swap_memory().total


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))  # containers and taskset limit what we may use
    except AttributeError:  # macOS and Windows have no affinity API here
        return None


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return None


def _cpu_busy() -> float:
    return psutil.cpu_percent(interval=BUSY_SAMPLE_S) / 100


def this_machine() -> SystemProbe:
    """The probe that reads the machine we run on."""
    return SystemProbe(
        system=platform.system(),
        arch=platform.machine(),
        read_text=_read_text,
        run=_run,
        cpu_count=lambda logical: psutil.cpu_count(logical=logical),
        memory=_memory,
        usable_cpus=_usable_cpus,
        load_average=_load_average,
        cpu_busy=_cpu_busy,
    )


def available_memory(probe: SystemProbe | None = None) -> int:
    """Bytes of memory free for new work now: machine_facts' available_ram without its GPU queries
    (nvidia-smi can take a second or two), for choices made at every request."""
    return (probe or this_machine()).memory()[1]


def machine_facts(probe: SystemProbe | None = None, measure_busy: bool = False) -> MachineFacts:
    """Read the machine's CPU, cores, memory and GPUs; cores honour the process's CPU affinity.

    `measure_busy` also watches the CPUs for 0.2 s to see how many cores other programs use
    (what the thread count is chosen from when a model loads).
    """
    probe = probe or this_machine()
    logical = probe.cpu_count(True) or os.cpu_count() or 1
    physical = probe.cpu_count(False) or logical
    usable = probe.usable_cpus() or logical
    physical = max(1, min(physical, usable))
    performance = performance_cores(probe)
    if performance is not None:
        performance = max(1, min(performance, physical))
    total, available, swap = probe.memory()
    board = (probe.read_text("/proc/device-tree/model") or "").replace("\x00", "").strip()
    return MachineFacts(
        physical_cores=physical,
        logical_cores=max(1, min(logical, usable)),
        total_ram=total,
        available_ram=available,
        performance_cores=performance,
        cpu_model=cpu_model(probe),
        system=probe.system,
        arch=probe.arch,
        board=board,
        swap_total=swap,
        gpus=gpus(probe, total),
        cpu_flags=cpu_flags(probe),
        load_average=probe.load_average(),
        busy_cores=_busy_cores(probe, logical) if measure_busy else None,
    )


def _busy_cores(probe: SystemProbe, logical: int) -> float | None:
    share = probe.cpu_busy()
    return None if share is None else share * logical


# -- CPU ------------------------------------------------------------------------------------


def cpu_model(probe: SystemProbe) -> str:
    """The CPU's marketing name, or the ARM core name on ARM Linux; "" when unknown."""
    if probe.system == "Darwin":
        return (probe.run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "").strip()
    if probe.system == "Windows":
        return platform.processor()
    cpuinfo = probe.read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Processor", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match:
            return match.group(1).strip()
    parts = re.findall(r"^CPU part\s*:\s*(0x[0-9a-fA-F]+)", cpuinfo, re.MULTILINE)
    names = sorted({ARM_CORE_NAMES.get(p.lower(), f"ARM part {p}") for p in parts})
    return " + ".join(names)


def cpu_flags(probe: SystemProbe) -> frozenset[str]:
    """The first CPU's "flags" (x86) or "Features" (ARM) line from /proc/cpuinfo."""
    cpuinfo = probe.read_text("/proc/cpuinfo") or ""
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def parse_cpu_list(text: str) -> list[int]:
    """Linux CPU lists: "0-3,8,10-11" -> [0, 1, 2, 3, 8, 10, 11]."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def performance_cores(probe: SystemProbe) -> int | None:
    """Physical performance cores on a CPU that mixes big and small cores, else None."""
    if probe.system == "Darwin":
        # Apple silicon: perflevel0 is the performance cluster; Intel Macs have no perflevels.
        perf = (probe.run(["sysctl", "-n", "hw.perflevel0.physicalcpu"]) or "").strip()
        levels = (probe.run(["sysctl", "-n", "hw.nperflevels"]) or "").strip()
        if perf.isdigit() and levels.isdigit() and int(levels) > 1:
            return int(perf)
        return None
    if probe.system == "Linux":
        # Intel hybrid CPUs (Alder Lake and later) expose their P-cores as the cpu_core PMU.
        listed = probe.read_text("/sys/devices/cpu_core/cpus")
        if not listed or not listed.strip():
            return None
        siblings = set()
        for cpu in parse_cpu_list(listed):
            # Hyper-threads of one core share a sibling list: count each core once.
            text = probe.read_text(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
            siblings.add(text.strip() if text else str(cpu))
        return len(siblings) or None
    return None


# -- GPUs -----------------------------------------------------------------------------------

MIB = 1024**2


def nvidia_gpus(probe: SystemProbe) -> list[GpuFacts]:
    """NVIDIA GPUs from nvidia-smi (ships with the driver, so it is there whenever CUDA can be)."""
    out = probe.run(["nvidia-smi", "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"])
    found = []
    for line in (out or "").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3:
            continue
        name, total, free = fields
        try:
            found.append(GpuFacts(name, "nvidia", int(float(total)) * MIB, int(float(free)) * MIB))
        except ValueError:  # "[N/A]" on some virtual GPUs
            found.append(GpuFacts(name, "nvidia"))
    return found


def amd_gpus(probe: SystemProbe) -> list[GpuFacts]:
    """AMD GPUs from the amdgpu driver's sysfs files (Linux); Vulkan or ROCm can use them."""
    found = []
    for card in range(8):
        base = f"/sys/class/drm/card{card}/device"
        vendor = (probe.read_text(f"{base}/vendor") or "").strip()
        if vendor != AMD_PCI_VENDOR:
            continue
        total = (probe.read_text(f"{base}/mem_info_vram_total") or "").strip()
        used = (probe.read_text(f"{base}/mem_info_vram_used") or "").strip()
        if not total.isdigit():
            continue
        free = int(total) - int(used) if used.isdigit() else None
        if int(total) < 1024 * MIB:  # an APU's small carve-out is not worth offloading to
            continue
        found.append(GpuFacts(f"AMD GPU (card{card})", "amd", int(total), free))
    return found


def apple_gpu(probe: SystemProbe, total_ram: int) -> list[GpuFacts]:
    """Apple silicon's GPU: it shares RAM, and Metal lets it wire about 2/3 to 3/4 of it."""
    if probe.system != "Darwin" or probe.arch != "arm64":
        return []
    chip = (probe.run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "Apple silicon").strip()
    # macOS's default GPU working-set limit (what Metal reports as recommendedMaxWorkingSetSize):
    # about 2/3 of RAM up to 36 GB, 3/4 above. llama.cpp's Metal backend reports the exact value.
    share = 0.75 if total_ram > 36 * 1024**3 else 2 / 3
    return [GpuFacts(f"{chip} GPU", "apple", int(total_ram * share), None, unified_memory=True)]


def gpus(probe: SystemProbe, total_ram: int) -> tuple[GpuFacts, ...]:
    """Every GPU llama.cpp could use on this machine, whatever the installed build supports."""
    if probe.system == "Darwin":
        return tuple(apple_gpu(probe, total_ram))
    return tuple(nvidia_gpus(probe) + (amd_gpus(probe) if probe.system == "Linux" else []))
