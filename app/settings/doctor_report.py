"""What `llamadesk doctor` finds: the build, the machine, the settings, and what is wrong.

`build_report` is a pure function of `DoctorFacts`, so tests hand it a CUDA laptop, an M-series
Mac or a Raspberry Pi 5 as data; `gather_facts` reads the real machine and the real build.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.chat.prompt_cache import CacheUsage
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.gguf_file import GGUFSummary
from llamadesk.app.core.machine import GpuFacts, MachineFacts
from llamadesk.app.engine.build_info import GPU_BACKENDS, BuildInfo
from llamadesk.app.engine.devices import BackendDevice
from llamadesk.app.engine.fitted_settings import choose_settings, offload_target
from llamadesk.app.engine.types import ActiveSettings, LoadSettings
from llamadesk.app.translate.parallel import default_parallel

# GPU vendor -> (llama.cpp backend that drives it, CMake flags, what the build needs first).
GPU_BUILDS: dict[str, tuple[str, str, str]] = {
    "nvidia": ("CUDA", "-DGGML_CUDA=on", "needs the CUDA toolkit (nvcc) from NVIDIA"),
    "apple": ("Metal", "-DGGML_METAL=on", "needs the Xcode command line tools"),
    "amd": ("Vulkan", "-DGGML_VULKAN=on", "needs the Vulkan SDK (glslc; libvulkan-dev on Debian/Ubuntu)"),
}
# The CPU's flag (as /proc/cpuinfo lists it) -> the feature llama.cpp's system info names when the
# build uses it. A flag the CPU has but the build lacks means a generic, slower build.
SIMD_FLAGS = {
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA",
    "f16c": "F16C",
    "avx512f": "AVX512",
    "avx_vnni": "AVX_VNNI",
    "avx512_vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16",
    "asimd": "NEON",
    "asimddp": "DOTPROD",
    "i8mm": "MATMUL_INT8",
    "asimdhp": "FP16_VA",
    "sve": "SVE",
}
# Below this much swap a Pi with 8 GB or less can be killed by a spike (compiling llama.cpp, a
# bigger model); Raspberry Pi OS ships with only 100-512 MB.
PI_MIN_SWAP = 2 * 1024**3
# Quantizations that llama.cpp repacks at load time for ARM's dot-product kernels.
ARM_REPACKED_QUANTS = ("Q4_0", "IQ4_NL")


@dataclass(frozen=True)
class DoctorFacts:
    """Everything doctor looks at."""

    python_version: str
    python_executable: str
    build: BuildInfo
    devices: tuple[BackendDevice, ...]
    machine: MachineFacts
    models_dir: Path
    disk_free: int
    model: GGUFSummary | None
    requested: LoadSettings = field(default_factory=LoadSettings)
    load_config: Path | None = None  # the user's load.json (flags > this file > chosen)
    frozen: bool = False  # a single-file executable (PyInstaller): no pip to reinstall with
    rpc: bool = False  # the build has llama.cpp's RPC backend (--rpc, rpc-server)
    prompt_cache: CacheUsage | None = None  # conversations' KV caches on disk (chat/prompt_cache.py)
    # config.json's prompt_cache_mb, when it sets one (None: the cache is sized from the free disk)
    prompt_cache_mb: int | None = None
    models_dir_problem: str | None = None  # why the models folder cannot be made (a read-only data folder)
    config_problem: str | None = None  # what is wrong with config.json (the CLI stops on it, the app warns)


@dataclass(frozen=True)
class Finding:
    """Something to fix, and the exact command or step that fixes it."""

    problem: str
    fix: str


def reinstall_command(python: str, cmake_flags: str, version: str, frozen: bool = False) -> str:
    """The pip command that rebuilds llama-cpp-python for a backend in this Python's environment."""
    if frozen:
        return (
            f'CMAKE_ARGS="{cmake_flags}" PIP_NO_CACHE_DIR=1 packaging/pyinstaller.sh '
            "(this is a single-file build: make a new one with the backend)"
        )
    return (
        f'CMAKE_ARGS="{cmake_flags}" {shlex.quote(python)} -m pip install --force-reinstall '
        f"--no-cache-dir --no-deps llama-cpp-python=={version}"
    )


def _gpu_text(gpu: GpuFacts) -> str:
    if gpu.unified_memory:
        return f"{gpu.name} (shares RAM; about {format_bytes(gpu.total_vram or 0)} usable)"
    if gpu.total_vram is None:
        return gpu.name
    free = f", {format_bytes(gpu.free_vram)} free" if gpu.free_vram is not None else ""
    return f"{gpu.name} ({format_bytes(gpu.total_vram)}{free})"


def find_warnings(facts: DoctorFacts, settings: ActiveSettings | None) -> list[Finding]:
    """What stands between this machine and its best speed, each with its fix."""
    warnings: list[Finding] = []
    build, machine = facts.build, facts.machine
    build_gpus = [d for d in facts.devices if d.is_gpu and not d.name.startswith("RPC")]
    gpu_backends = [b for b in build.backends if b in GPU_BACKENDS and b != "RPC"]
    if not gpu_backends:
        for gpu in machine.gpus:
            backend, flags, needs = GPU_BUILDS[gpu.vendor]
            warnings.append(
                Finding(
                    f"this machine has {gpu.name} but llama-cpp-python was built for the CPU only, so it "
                    f"runs without the GPU",
                    f"rebuild it with {backend} ({needs}): "
                    + reinstall_command(facts.python_executable, flags, build.llama_cpp_python_version, facts.frozen),
                )
            )
            break  # one rebuild serves every GPU
    elif not build_gpus:
        warnings.append(
            Finding(
                f"llama-cpp-python was built with {gpu_backends[0]} but found no GPU to use",
                "check the GPU driver (nvidia-smi / vulkaninfo), or rebuild for the CPU: "
                + reinstall_command(
                    facts.python_executable, "-DGGML_NATIVE=on", build.llama_cpp_python_version, facts.frozen
                ),
            )
        )
    elif settings is not None and settings.n_gpu_layers == 0 and settings.reasons.get("n_gpu_layers") != "requested":
        warnings.append(
            Finding(
                "not one layer of the model fits in the GPU's free memory, so it runs on the CPU",
                "close programs that use the GPU, or use a smaller quantization (llamadesk quantize)",
            )
        )
    missing = sorted({f for flag, f in SIMD_FLAGS.items() if flag in machine.cpu_flags} - set(build.cpu_features))
    if missing:
        warnings.append(
            Finding(
                f"the CPU has {', '.join(missing)} but the llama.cpp build does not use them (a generic build)",
                "rebuild for this CPU: "
                + reinstall_command(
                    facts.python_executable, _native_flags(machine), build.llama_cpp_python_version, facts.frozen
                ),
            )
        )
    if machine.is_raspberry_pi:
        if machine.total_ram <= 8 * 1024**3 and machine.swap_total < PI_MIN_SWAP:
            warnings.append(
                Finding(
                    f"only {format_bytes(machine.swap_total)} of swap on a {format_bytes(machine.total_ram)} Pi: "
                    "building llama.cpp or loading a bigger model can be killed for memory",
                    "raise CONF_SWAPSIZE to 2048 in /etc/dphys-swapfile, then "
                    "`sudo systemctl restart dphys-swapfile` (see packaging/README.md)",
                )
            )
        if facts.model is not None and facts.model.quantization not in ARM_REPACKED_QUANTS:
            warnings.append(
                Finding(
                    f"{facts.model.name} is {facts.model.quantization}; on ARM, llama.cpp repacks Q4_0 into "
                    "its fastest dot-product layout",
                    "quantize it to Q4_0 (llamadesk quantize MODEL -t Q4_0) and use the Pi profile "
                    "(packaging/profiles/pi5-load.json)",
                )
            )
    return warnings


def _native_flags(machine: MachineFacts) -> str:
    # A Pi 5's Cortex-A76: armv8.2-a with dot product and fp16 (what -DGGML_NATIVE=on picks there).
    if "Cortex-A76" in machine.cpu_model:
        return "-DGGML_NATIVE=off -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16"
    return "-DGGML_NATIVE=on"


def _settings_rows(settings: ActiveSettings) -> list[tuple[str, str, str]]:
    gpu = "all" if settings.n_gpu_layers >= 999 else str(settings.n_gpu_layers)
    return [
        ("threads", str(settings.n_threads), settings.reasons.get("n_threads", "")),
        ("GPU layers", gpu, settings.reasons.get("n_gpu_layers", "")),
        ("context", str(settings.n_ctx), settings.reasons.get("n_ctx", "")),
        ("KV cache", settings.kv_cache_type, settings.reasons.get("kv_cache_type", "")),
        ("flash attention", "on" if settings.flash_attn else "off", settings.reasons.get("flash_attn", "")),
        ("mmap", "on" if settings.use_mmap else "off", settings.reasons.get("use_mmap", "")),
        ("mlock", "on" if settings.use_mlock else "off", settings.reasons.get("use_mlock", "")),
    ]


@dataclass(frozen=True)
class DoctorReport:
    """The diagnosis: plain data (what --json prints) and the settings behind it."""

    data: dict[str, Any]
    settings: ActiveSettings | None


# Less free space than this where llamadesk keeps its data is a problem doctor names.
LOW_DISK_BYTES = 64 * 1024**2


def _cache_folder_problem(cache: CacheUsage | None) -> Finding | None:
    """A prompt cache that cannot be written fails quietly by design (a slower app, never a broken
    one): doctor, whose job is saying why something is slow, names it."""
    if cache is None or cache.budget <= 0:
        return None
    folder = cache.folder
    if folder.is_symlink() and not folder.exists():  # dangling or looping: nothing is ever written
        return Finding(
            f"the prompt cache's folder {folder} is a link to nothing: every continued conversation is read "
            "again in full",
            "remove the link (llamadesk makes the folder) or point it at a folder you can write",
        )
    existing = folder if folder.exists() else next((p for p in folder.parents if p.exists()), None)
    if existing is None:
        return None
    if not existing.is_dir():
        problem = f"the prompt cache's folder {existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"the prompt cache's folder {existing} cannot be written"
    else:
        return None
    return Finding(
        f"{problem}: every continued conversation is read again in full",
        "move or fix it (a folder you can write), or set config.json's prompt_cache_mb to 0 to say so",
    )


def build_report(facts: DoctorFacts) -> DoctorReport:
    """Diagnose `facts`: settings for the model, and every warning with its fix."""
    machine, build = facts.machine, facts.build
    settings: ActiveSettings | None = None
    settings_error = None
    if facts.model is not None:
        target = offload_target(build.gpu_offload, facts.devices, machine)
        try:
            settings = choose_settings(facts.model, machine, target, facts.requested)
        except LlamadeskError as err:
            settings_error = str(err)
    warnings = find_warnings(facts, settings)
    if settings_error:
        warnings.insert(0, Finding(settings_error, "see the message above"))
    if facts.config_problem:
        warnings.insert(
            0,
            Finding(
                facts.config_problem,
                "fix that line of config.json; until then `chat` stops on it (exit 2) "
                "and the app uses the defaults for all of config.json (the prompt cache's size too)",
            ),
        )
    cache_problem = _cache_folder_problem(facts.prompt_cache)
    if cache_problem is not None:
        warnings.append(cache_problem)
    if facts.disk_free < LOW_DISK_BYTES:
        warnings.append(
            Finding(
                f"the disk holding {facts.models_dir} has {format_bytes(facts.disk_free)} free: conversations are "
                "kept in memory only, and downloads, conversions and the prompt cache fail",
                "free some space there (or set LLAMADESK_HOME to a folder on another disk)",
            )
        )
    if facts.models_dir_problem:
        warnings.insert(0, Finding(facts.models_dir_problem, "until then, commands that need the folder stop on it"))
    return DoctorReport(
        {
            "python": {"version": facts.python_version, "executable": facts.python_executable},
            "llama_cpp_python": build.llama_cpp_python_version,
            "build": {
                "backend": build.backend,
                "backends": list(build.backends),
                "gpu_offload": build.gpu_offload,
                "rpc": facts.rpc,
                "cpu_features": list(build.cpu_features),
                "devices": [
                    {
                        "name": d.name,
                        "description": d.description,
                        "kind": d.kind,
                        "free_memory": d.free_memory,
                        "total_memory": d.total_memory,
                    }
                    for d in facts.devices
                ],
            },
            "machine": {
                "system": machine.system,
                "arch": machine.arch,
                "board": machine.board,
                "cpu_model": machine.cpu_model,
                "physical_cores": machine.physical_cores,
                "logical_cores": machine.logical_cores,
                "performance_cores": machine.performance_cores,
                "total_ram": machine.total_ram,
                "available_ram": machine.available_ram,
                "swap_total": machine.swap_total,
                "load_average": machine.load_average,
                "busy_cores": machine.busy_cores,
                "gpus": [
                    {
                        "name": g.name,
                        "vendor": g.vendor,
                        "total_vram": g.total_vram,
                        "free_vram": g.free_vram,
                        "unified_memory": g.unified_memory,
                    }
                    for g in machine.gpus
                ],
            },
            "models_dir": {"path": str(facts.models_dir), "disk_free": facts.disk_free},
            "prompt_cache": None
            if facts.prompt_cache is None
            else {
                "path": str(facts.prompt_cache.folder),
                "budget": facts.prompt_cache.budget,
                "budget_from": "free disk" if facts.prompt_cache_mb is None else "config.json",
                "used": facts.prompt_cache.used,
                "files": facts.prompt_cache.files,
            },
            "config_problem": facts.config_problem,
            "load_config": None
            if facts.load_config is None
            else {
                "path": str(facts.load_config),
                "exists": facts.load_config.exists(),
            },
            "model": None
            if facts.model is None
            else {
                "name": facts.model.name,
                "path": str(facts.model.path),
                "quantization": facts.model.quantization,
                "weights": facts.model.tensor_bytes,
                "layers": facts.model.n_layers,
            },
            "settings": None
            if settings is None
            else {
                "n_threads": settings.n_threads,
                "n_gpu_layers": settings.n_gpu_layers,
                "n_ctx": settings.n_ctx,
                "flash_attn": settings.flash_attn,
                "kv_cache_type": settings.kv_cache_type,
                "use_mmap": settings.use_mmap,
                "use_mlock": settings.use_mlock,
                "reasons": settings.reasons,
                # What `translate --parallel` (and the app's translation screen) choose unless told.
                "translate_parallel": default_parallel(machine.available_ram, facts.model.file_size),
            },
            "warnings": [{"problem": w.problem, "fix": w.fix} for w in warnings],
        },
        settings,
    )


def format_report(doctor: DoctorReport) -> str:
    """The report as people read it."""
    report = doctor.data
    m, b = report["machine"], report["build"]
    cores = f"{m['physical_cores']} physical / {m['logical_cores']} logical cores"
    if m["performance_cores"]:
        cores += f" ({m['performance_cores']} performance)"
    gpu_devices = [d for d in b["devices"] if d["kind"] in ("gpu", "igpu")]
    gpus = [
        _gpu_text(GpuFacts(g["name"], g["vendor"], g["total_vram"], g["free_vram"], g["unified_memory"]))
        for g in m["gpus"]
    ] or ["none found"]
    build_gpus = [f"{d['name']}: {d['description']} ({format_bytes(d['free_memory'])} free)" for d in gpu_devices]
    rows = [
        ("software", None),
        ("Python", f"{report['python']['version']} ({report['python']['executable']})"),
        ("llama-cpp-python", report["llama_cpp_python"]),
        ("compiled backend", f"{b['backend']} (build has: {', '.join(b['backends'])})"),
        ("build's GPUs", "; ".join(build_gpus) or "none"),
        ("RPC backend", "yes (--rpc, llamadesk rpc-server)" if b["rpc"] else "no (-DGGML_RPC=on adds it)"),
        ("SIMD", " ".join(b["cpu_features"]) or "none reported"),
        ("machine", None),
        ("system", " ".join(x for x in (m["system"], m["arch"], m["board"]) if x)),
        ("CPU", f"{m['cpu_model'] or 'unknown'}, {cores}"),
        ("GPU", "; ".join(gpus)),
        (
            "load",
            ("unknown" if m["load_average"] is None else f"{m['load_average']:.1f} (1-minute average)")
            + ("" if m["busy_cores"] is None else f", {m['busy_cores']:.1f} cores busy now"),
        ),
        (
            "RAM",
            f"{format_bytes(m['total_ram'])} total, {format_bytes(m['available_ram'])} available, "
            f"{format_bytes(m['swap_total'])} swap",
        ),
        ("models folder", f"{report['models_dir']['path']} ({format_bytes(report['models_dir']['disk_free'])} free)"),
    ]
    cache = report["prompt_cache"]
    if cache is not None:
        rows.append(
            (
                "prompt cache",
                f"{cache['path']} ({format_bytes(cache['used'])} of {format_bytes(cache['budget'])} in "
                f"{cache['files']} files; "
                + (
                    "the default size: config.json has a problem, see warnings)"
                    if report.get("config_problem")
                    else "config.json's prompt_cache_mb sets it)"
                    if cache["budget_from"] == "config.json"
                    else "a tenth of the free disk, at most 4 GiB; config.json's prompt_cache_mb sets another)"
                )
                if cache["budget"]
                else "off (config.json's prompt_cache_mb is 0)"
                if cache["budget_from"] == "config.json"
                else "off (its disk has no free space)",
            )
        )
    if report["load_config"] is not None:
        state = "in use" if report["load_config"]["exists"] else "none; settings below are chosen for this machine"
        rows.append(("load.json", f"{report['load_config']['path']} ({state})"))
    lines = []
    width = max(len(k) for k, v in rows if v is not None) + 2
    for key, value in rows:
        lines.append(key if value is None else f"  {key.ljust(width)}{value}")
    settings = doctor.settings
    if settings is not None:
        model = report["model"]
        lines.append(
            f"settings for {model['name']} ({model['quantization']}, "
            f"{format_bytes(model['weights'])}, {model['layers']} layers)"
        )
        for key, value, why in _settings_rows(settings):
            lines.append(f"  {key.ljust(width)}{value.ljust(8)}{why}")
        segments = report["settings"]["translate_parallel"]
        why = (
            "segments translated at once: memory for a second KV cache"
            if segments > 1
            else "segment at a time: too little memory for a second KV cache"
        )
        lines.append(f"  {'translating'.ljust(width)}{str(segments).ljust(8)}{why} (translate --parallel)")
    if report["warnings"]:
        lines.append("warnings")
        for w in report["warnings"]:
            lines.append(f"  ! {w['problem']}")
            lines.append(f"    fix: {w['fix']}")
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def gather_facts(model: GGUFSummary | None, requested: LoadSettings = LoadSettings()) -> DoctorFacts:
    """Read this machine and this build."""
    from llamadesk.app.core.machine import machine_facts
    from llamadesk.app.core.paths import data_dir, models_dir
    from llamadesk.app.core.rpc_endpoints import parse_endpoints
    from llamadesk.app.engine.build_info import build_info
    from llamadesk.app.engine.devices import backend_devices
    from llamadesk.app.engine.rpc import add_servers, rpc_supported
    from llamadesk.app.settings.load_config import load_config_path
    from llamadesk.app.settings.user_config import load_config

    try:
        megabytes, config_problem = load_config().prompt_cache_mb, None
    except LlamadeskError as err:
        # A problem to report, not to stop on: doctor is where a user looks for what is wrong.
        megabytes, config_problem = None, str(err)
    if requested.rpc_servers:  # their devices show up in the build's device list
        add_servers(parse_endpoints(requested.rpc_servers))
    try:
        folder, folder_problem = models_dir(), None
    except LlamadeskError as err:  # doctor reports what stops other commands; it does not stop on it
        folder, folder_problem = data_dir() / "models", str(err)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder.anchor or Path("/"))
    return DoctorFacts(
        python_version=platform.python_version(),
        python_executable=sys.executable,
        build=build_info(),
        devices=backend_devices(),
        machine=machine_facts(measure_busy=True),
        models_dir=folder,
        disk_free=shutil.disk_usage(existing).free,
        model=model,
        requested=requested,
        load_config=load_config_path(),
        frozen=bool(getattr(sys, "frozen", False)),
        rpc=rpc_supported(),
        prompt_cache=prompt_cache_usage(megabytes),
        prompt_cache_mb=megabytes,
        models_dir_problem=folder_problem,
        config_problem=config_problem,
    )


def prompt_cache_usage(megabytes: int | None) -> CacheUsage:
    """The prompt cache's folder, budget (config.json's `megabytes`, else sized from the free disk) and use."""
    from llamadesk.app.chat.prompt_cache import PromptCache, budget_from_megabytes, default_cache_folder

    folder = default_cache_folder()
    return PromptCache(folder, budget_from_megabytes(megabytes, folder), trim=False).usage()
