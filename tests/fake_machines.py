"""Machines described as data: what their files and commands say, for machine.py to parse.

Each profile is a SystemProbe that answers from tables (the text real machines produce), so the
tests run llamadesk's own parsing on a CUDA laptop, an M-series Mac and a Raspberry Pi 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llamadesk.app.core.gguf_file import GGUFSummary
from llamadesk.app.core.machine import SystemProbe
from llamadesk.app.engine.build_info import BuildInfo, parse_system_info
from llamadesk.app.engine.devices import BackendDevice

GIB = 1024**3
MIB = 1024**2


def probe(
    system: str,
    arch: str,
    files: dict[str, str],
    commands: dict[tuple[str, ...], str],
    physical: int,
    logical: int,
    total: int,
    available: int,
    swap: int = 0,
) -> SystemProbe:
    return SystemProbe(
        system=system,
        arch=arch,
        read_text=files.get,
        run=lambda command: commands.get(tuple(command)),
        cpu_count=lambda is_logical: logical if is_logical else physical,
        memory=lambda: (total, available, swap),
        usable_cpus=lambda: None,
    )


# -- a gaming laptop: Intel i7-12700H (6 P-cores with HT + 8 E-cores), RTX 4070 Laptop 8 GB -----

_LAPTOP_FILES = {
    "/proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: 12th Gen Intel(R) Core(TM) i7-12700H\n"
    "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx_vnni bmi2\n",
    "/sys/devices/cpu_core/cpus": "0-11\n",
    "/sys/devices/cpu_atom/cpus": "12-19\n",
    **{
        f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list": f"{c - c % 2}-{c - c % 2 + 1}\n"
        for c in range(12)
    },
}
CUDA_LAPTOP = probe(
    "Linux",
    "x86_64",
    _LAPTOP_FILES,
    {
        (
            "nvidia-smi",
            "--query-gpu=name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ): "NVIDIA GeForce RTX 4070 Laptop GPU, 8188, 7710\n"
    },
    physical=14,
    logical=20,
    total=32 * GIB,
    available=26 * GIB,
    swap=8 * GIB,
)


def build(system_info: str, gpu_offload: bool) -> BuildInfo:
    backends, features = parse_system_info(system_info)
    return BuildInfo("0.3.36", backends, gpu_offload, features, system_info)


LAPTOP_CPU_BUILD = build(
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ",
    gpu_offload=False,
)
LAPTOP_CUDA_BUILD = build(
    "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | "
    "AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ",
    gpu_offload=True,
)
CPU_DEVICE = BackendDevice("CPU", "12th Gen Intel(R) Core(TM) i7-12700H", "cpu", 26 * GIB, 32 * GIB)
CUDA_DEVICE = BackendDevice("CUDA0", "NVIDIA GeForce RTX 4070 Laptop GPU", "gpu", 7710 * MIB, 8188 * MIB)

# -- an M2 Pro Mac: 8 performance + 4 efficiency cores, 32 GB unified memory --------------------

M2_MAC = probe(
    "Darwin",
    "arm64",
    {},
    {
        ("sysctl", "-n", "machdep.cpu.brand_string"): "Apple M2 Pro\n",
        ("sysctl", "-n", "hw.perflevel0.physicalcpu"): "8\n",
        ("sysctl", "-n", "hw.nperflevels"): "2\n",
    },
    physical=12,
    logical=12,
    total=32 * GIB,
    available=20 * GIB,
    swap=0,
)
MAC_METAL_BUILD = build(
    "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | MATMUL_INT8 = 1 | "
    "ACCELERATE = 1 | REPACK = 1 | ",
    gpu_offload=True,
)
MAC_CPU_BUILD = build(
    "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | MATMUL_INT8 = 1 | ACCELERATE = 1 | REPACK = 1 | ",
    gpu_offload=False,
)
# Metal reports the GPU's recommended working set (about 2/3 of 32 GB) as its memory.
METAL_DEVICE = BackendDevice("Metal", "Apple M2 Pro", "gpu", int(21.3 * GIB), int(21.3 * GIB))

# -- a Raspberry Pi 5, 8 GB, Raspberry Pi OS 64-bit (Bookworm's default 100 MB swap) -------------

_PI_CPUINFO = (
    "".join(
        f"processor\t: {n}\nBogoMIPS\t: 108.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
        "asimdrdm lrcpc dcpop asimddp\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
        for n in range(4)
    )
    + "Revision\t: d04170\nSerial\t\t: 0123456789abcdef\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
)
PI5 = probe(
    "Linux",
    "aarch64",
    {"/proc/cpuinfo": _PI_CPUINFO, "/proc/device-tree/model": "Raspberry Pi 5 Model B Rev 1.0\x00"},
    {},
    physical=4,
    logical=4,
    total=8 * GIB,
    available=7 * GIB,
    swap=100 * MIB,
)
PI_NATIVE_BUILD = build(
    "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ",
    gpu_offload=False,
)
PI_GENERIC_BUILD = build("CPU : NEON = 1 | ARM_FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ", gpu_offload=False)
PI_DEVICE = BackendDevice("CPU", "Cortex-A76", "cpu", 7 * GIB, 8 * GIB)


# -- models, as their GGUF summaries say -----------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    name: str
    weights: int  # bytes of all tensors
    layer_share: float  # share of the weights in blk.N tensors
    n_layers: int
    n_head_kv: int
    head_dim: int
    context: int
    quantization: str


def summary_of(shape: ModelShape) -> GGUFSummary:
    return GGUFSummary(
        path=Path(f"/models/{shape.name}.gguf"),
        file_size=shape.weights + 10 * MIB,
        architecture="llama",
        name=shape.name,
        parameters=0,
        quantization=shape.quantization,
        context_length=shape.context,
        n_layers=shape.n_layers,
        n_embd=shape.n_head_kv * shape.head_dim * 4,
        n_head=shape.n_head_kv * 4,
        n_head_kv=shape.n_head_kv,
        head_dim_k=shape.head_dim,
        head_dim_v=shape.head_dim,
        has_chat_template=True,
        tensor_bytes=shape.weights,
        metadata={},
        repeating_tensor_bytes=int(shape.weights * shape.layer_share),
    )


# Llama-3.1-8B-Instruct Q4_K_M, Llama-2-13B Q4_K_M, Llama-3.1-70B Q4_K_M, Llama-3.2-1B Q4_0.
LLAMA_8B = summary_of(ModelShape("Llama-3.1-8B", int(4.58 * GIB), 0.88, 32, 8, 128, 131072, "Q4_K_M"))
LLAMA_13B = summary_of(ModelShape("Llama-2-13B", int(7.33 * GIB), 0.97, 40, 40, 128, 4096, "Q4_K_M"))
LLAMA_70B = summary_of(ModelShape("Llama-3.1-70B", int(39.6 * GIB), 0.98, 80, 8, 128, 131072, "Q4_K_M"))
LLAMA_1B_Q4_0 = summary_of(ModelShape("Llama-3.2-1B", int(0.72 * GIB), 0.65, 16, 8, 64, 131072, "Q4_0"))
LLAMA_1B_Q4_K = summary_of(ModelShape("Llama-3.2-1B", int(0.75 * GIB), 0.65, 16, 8, 64, 131072, "Q4_K_M"))
