"""The devices the installed llama.cpp build can run a model on, with their free memory.

llama-cpp-python does not bind ggml's device registry, but llama_cpp._ggml already loads libggml,
whose public C API (ggml-backend.h) lists every device the build registered: the CPU, and each
CUDA/Metal/Vulkan GPU with its name and free memory as the backend itself measures it. This is
what the build can *use*; machine.py says what the machine *has*.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass

# enum ggml_backend_dev_type in ggml-backend.h
DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}


@dataclass(frozen=True)
class BackendDevice:
    """One device registered in the llama.cpp build."""

    name: str  # "CPU", "CUDA0", "Metal", "Vulkan0", "RPC0"
    description: str  # "NVIDIA GeForce RTX 4070 Laptop GPU", "Apple M2 Pro", the CPU's model
    kind: str  # "cpu", "gpu", "igpu", "accel"
    free_memory: int
    total_memory: int

    @property
    def is_gpu(self) -> bool:
        return self.kind in ("gpu", "igpu")


def _ggml_used_by_llama() -> ctypes.CDLL:
    """The libggml that libllama itself is linked with.

    The Linux wheels ship libggml.so, libggml.so.0 and libggml.so.0.x as three *copies*, not
    links: libllama loads libggml.so.0 (its soname) while llama_cpp._ggml opens libggml.so, so
    the two hold separate device registries. A device registered through the wrong copy (an RPC
    server) is invisible to llama_model_load. RTLD_NOLOAD returns the copy already loaded under
    the soname, which is libllama's.
    """
    import llama_cpp  # noqa: F401  (loads libllama and, with it, its libggml)

    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is not None:
        for soname in ("libggml.so.0", "libggml.0.dylib"):
            try:
                return ctypes.CDLL(soname, mode=noload | os.RTLD_GLOBAL)
            except OSError:
                continue
    from llama_cpp._ggml import libggml  # macOS/Windows wheels: one file, one registry

    return libggml


@functools.lru_cache(maxsize=1)
def _libggml() -> ctypes.CDLL:
    lib = _ggml_used_by_llama()
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_count.argtypes = []
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    return lib


def backend_devices() -> tuple[BackendDevice, ...]:
    """Every device the build registered, with free memory measured now."""
    lib = _libggml()
    found = []
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        found.append(
            BackendDevice(
                name=(lib.ggml_backend_dev_name(device) or b"").decode("utf-8", "replace"),
                description=(lib.ggml_backend_dev_description(device) or b"").decode("utf-8", "replace"),
                kind=DEVICE_TYPES.get(lib.ggml_backend_dev_type(device), "other"),
                free_memory=free.value,
                total_memory=total.value,
            )
        )
    return tuple(found)
