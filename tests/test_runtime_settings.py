"""Settings chosen for a machine, from faked machine facts and model summaries (no model load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import GGUFSummary
from llamadesk.app.core.machine import MachineFacts
from llamadesk.app.core.memory_budget import kv_bytes_per_token
from llamadesk.app.engine.build_info import parse_system_info
from llamadesk.app.engine.fitted_settings import choose_settings
from llamadesk.app.engine.types import LoadSettings

GiB = 1024**3


def summary(context_length=8192, layers=32, kv_heads=8, head_dim=128, weights=4 * GiB) -> GGUFSummary:
    return GGUFSummary(
        path=Path("m.gguf"),
        file_size=weights,
        architecture="llama",
        name="m",
        parameters=7_000_000_000,
        quantization="Q4_K_M",
        context_length=context_length,
        n_layers=layers,
        n_embd=4096,
        n_head=32,
        n_head_kv=kv_heads,
        head_dim_k=head_dim,
        head_dim_v=head_dim,
        has_chat_template=True,
        tensor_bytes=weights,
        metadata={},
    )


def machine(cores=4, ram=16 * GiB, available=None) -> MachineFacts:
    return MachineFacts(physical_cores=cores, logical_cores=cores * 2, total_ram=ram, available_ram=available or ram)


def test_roomy_machine_gets_the_trained_context_and_one_thread_per_core():
    s = choose_settings(summary(), machine(cores=6), gpu_offload=False, requested=LoadSettings())
    assert s.n_ctx == 8192 and s.n_threads == 6 and s.n_gpu_layers == 0 and not s.flash_attn  # CPU: off
    assert s.reasons["n_threads"] == "one per physical core"


def test_small_machine_caps_the_context_by_memory():
    # 131k trained context at 128 KiB/token would need 16 GiB of KV cache; 8 GiB machine.
    s = choose_settings(summary(context_length=131072), machine(ram=8 * GiB), False, LoadSettings())
    kv = kv_bytes_per_token(summary(), "f16") * s.n_ctx
    assert 256 <= s.n_ctx < 131072 and s.n_ctx % 256 == 0
    assert kv <= 8 * GiB - 4 * GiB  # fits beside the weights
    # Capped by memory, or by the default cap once a q8_0 KV cache makes room (runtime_settings).
    assert "capped" in s.reasons["n_ctx"]


def test_requested_context_that_cannot_fit_is_refused_with_the_largest_that_does():
    with pytest.raises(BadInputError, match=r"use --ctx \d+ or less"):
        choose_settings(summary(), machine(ram=6 * GiB), False, LoadSettings(n_ctx=200_000))


def test_gpu_build_offloads_every_layer_unless_told():
    s = choose_settings(summary(), machine(), gpu_offload=True, requested=LoadSettings())
    assert s.n_gpu_layers >= 32
    s = choose_settings(summary(), machine(), gpu_offload=True, requested=LoadSettings(n_gpu_layers=10, n_threads=2))
    assert s.n_gpu_layers == 10 and s.n_threads == 2 and s.reasons["n_gpu_layers"] == "requested"


def test_batch_never_exceeds_the_context():
    s = choose_settings(summary(), machine(), False, LoadSettings(n_ctx=128))
    assert s.n_batch == 128


def test_system_info_parsing_reads_backends_and_cpu_features():
    cpu = (
        "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | OPENMP = 1 | REPACK = 1 | "
    )
    assert parse_system_info(cpu) == (("CPU",), ("SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "OPENMP", "REPACK"))
    cuda = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | " + cpu
    backends, features = parse_system_info(cuda)
    assert backends == ("CUDA", "CPU") and "AVX2" in features
    metal = "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | ACCELERATE = 1 | "
    assert parse_system_info(metal)[0] == ("Metal", "CPU")
