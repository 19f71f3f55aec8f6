"""What the installed llama.cpp build can do, read from the build itself.

llama.cpp's system-info string lists each compiled backend ("CUDA : ARCHS = 890 | ...", "Metal :
...", "CPU : AVX2 = 1 | ..."), so the backend is read there rather than guessed from the OS.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import llama_cpp

GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "ROCm", "HIP", "SYCL", "OpenCL", "MUSA", "CANN", "RPC")


@dataclass(frozen=True)
class BuildInfo:
    """The llama.cpp build behind llama-cpp-python."""

    llama_cpp_python_version: str
    backends: tuple[str, ...]  # e.g. ("CPU",) or ("CUDA", "CPU")
    gpu_offload: bool
    cpu_features: tuple[str, ...]  # SIMD and other CPU features the build uses, e.g. AVX2
    system_info: str

    @property
    def backend(self) -> str:
        """The backend that runs the model: the first GPU backend if any, else CPU."""
        gpus = [b for b in self.backends if b != "CPU"]
        return gpus[0] if gpus else "CPU"


def parse_system_info(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Backends and enabled CPU features from llama.cpp's system-info string."""
    backends: list[str] = []
    features: list[str] = []
    for section in re.split(r"\|\s*(?=[A-Za-z0-9_]+ : )", text):
        name, sep, rest = section.partition(" : ")
        if not sep:
            continue
        name = name.strip()
        if name and name not in backends:
            backends.append(name)
        if name == "CPU":
            features += [m.group(1) for m in re.finditer(r"([A-Za-z0-9_]+) = 1", rest)]
    return tuple(backends), tuple(features)


@functools.lru_cache(maxsize=1)
def build_info() -> BuildInfo:
    """Read once per process: the build does not change while we run."""
    text = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    backends, features = parse_system_info(text)
    if not backends:
        backends = ("CPU",)
    return BuildInfo(
        llama_cpp_python_version=llama_cpp.__version__,
        backends=backends,
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        cpu_features=features,
        system_info=text.strip(),
    )
