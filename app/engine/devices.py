"""Accelerator memory (VRAM) as llama.cpp's backends see it.

llama-cpp-python does not bind ggml's device API, so the few functions needed are called through
ctypes on the library it already loaded; on a CPU-only build the list is simply empty.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import llama_cpp.llama_cpp as llama

GPU_DEVICE_TYPES = {1: "GPU", 2: "iGPU"}  # enum ggml_backend_dev_type: 0 CPU, 1 GPU, 2 IGPU, 3 ACCEL


@dataclass(frozen=True)
class DeviceMemory:
    name: str
    kind: str
    free_bytes: int
    total_bytes: int


def accelerator_memory() -> list[DeviceMemory]:
    """Free and total memory of every GPU llama.cpp can use; [] on a CPU-only build."""
    lib = llama._lib
    try:
        count, get = lib.ggml_backend_dev_count, lib.ggml_backend_dev_get
        name, kind, memory = lib.ggml_backend_dev_name, lib.ggml_backend_dev_type, lib.ggml_backend_dev_memory
    except AttributeError:  # a build that does not export ggml's device API
        return []
    count.restype = ctypes.c_size_t
    get.argtypes, get.restype = [ctypes.c_size_t], ctypes.c_void_p
    name.argtypes, name.restype = [ctypes.c_void_p], ctypes.c_char_p
    kind.argtypes, kind.restype = [ctypes.c_void_p], ctypes.c_int
    memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
    devices = []
    for i in range(count()):
        device = get(i)
        if kind(device) not in GPU_DEVICE_TYPES:
            continue
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        memory(device, ctypes.byref(free), ctypes.byref(total))
        devices.append(DeviceMemory(name(device).decode(), GPU_DEVICE_TYPES[kind(device)], free.value, total.value))
    return devices
