"""Settings that fit the machine: threads, GPU layers, context and KV cache, never one that cannot load.

Fast unit tests on faked machines and model shapes, then real loads of the starter models with
the settings chosen for this machine (and for a tight memory budget) through llama.cpp.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.machine import MachineFacts, machine_facts
from llamadesk.app.core.memory_budget import (
    attention_scratch_per_token,
    kv_bytes_per_token,
    kv_cache_bytes,
    ram_reserve,
    vram_reserve,
)
from llamadesk.app.engine.fitted_settings import (
    ALL_LAYERS,
    CPU_FLASH_ATTN_REASON,
    DEFAULT_CONTEXT_CAP,
    MIN_CONTEXT,
    OffloadTarget,
    choose_settings,
    has_sliding_window,
    offload_target,
)
from llamadesk.app.engine.types import LoadSettings
from tests import fake_machines as fm
from tests.conftest import PINNED_LOAD

GIB = fm.GIB


def machine(
    available_gib: float, total_gib: float | None = None, physical: int = 8, performance: int | None = None
) -> MachineFacts:
    total = total_gib if total_gib is not None else available_gib * 1.25
    return MachineFacts(
        physical_cores=physical,
        logical_cores=physical * 2,
        total_ram=int(total * GIB),
        available_ram=int(available_gib * GIB),
        performance_cores=performance,
    )


# -- threads --------------------------------------------------------------------------------


def test_threads_are_performance_cores_when_the_os_tells() -> None:
    laptop = machine_facts(fm.CUDA_LAPTOP)
    assert laptop.physical_cores == 14 and laptop.performance_cores == 6
    settings = choose_settings(fm.LLAMA_8B, laptop, None, LoadSettings())
    assert settings.n_threads == 6 and "performance core" in settings.reasons["n_threads"]
    mac = machine_facts(fm.M2_MAC)
    assert choose_settings(fm.LLAMA_8B, mac, None, LoadSettings()).n_threads == 8


def test_threads_are_physical_cores_otherwise() -> None:
    pi = machine_facts(fm.PI5)
    assert pi.performance_cores is None
    settings = choose_settings(fm.LLAMA_1B_Q4_0, pi, None, LoadSettings())
    assert settings.n_threads == 4 and settings.reasons["n_threads"] == "one per physical core"


def test_cores_other_programs_keep_busy_are_left_to_them() -> None:
    # bench/RESULTS.md "threads": on a 2-core machine kept busy by other work, 2 threads
    # generated ~10x slower than 1, because llama.cpp's threads wait for each other.
    shared = dataclasses.replace(machine(20, physical=2), busy_cores=1.9)
    settings = choose_settings(fm.LLAMA_8B, shared, None, LoadSettings())
    assert settings.n_threads == 1 and "kept busy by other programs" in settings.reasons["n_threads"]
    laptop = dataclasses.replace(machine_facts(fm.CUDA_LAPTOP), busy_cores=2.0)
    assert choose_settings(fm.LLAMA_8B, laptop, None, LoadSettings()).n_threads == 4  # 6 P-cores less 2
    quiet = dataclasses.replace(machine(20, physical=8), busy_cores=0.4)  # a browser tab: keep all 8
    assert choose_settings(fm.LLAMA_8B, quiet, None, LoadSettings()).n_threads == 8
    assert choose_settings(fm.LLAMA_8B, shared, None, LoadSettings(n_threads=2)).n_threads == 2


def test_requested_threads_win_and_zero_is_refused() -> None:
    assert choose_settings(fm.LLAMA_8B, machine(20), None, LoadSettings(n_threads=3)).n_threads == 3
    with pytest.raises(BadInputError, match="--threads"):
        choose_settings(fm.LLAMA_8B, machine(20), None, LoadSettings(n_threads=0))


# -- GPU layers -----------------------------------------------------------------------------

RTX_4070 = OffloadTarget("RTX 4070 Laptop", int(7.5 * GIB))


def test_cpu_build_offloads_nothing() -> None:
    settings = choose_settings(fm.LLAMA_8B, machine(26), None, LoadSettings())
    assert settings.n_gpu_layers == 0 and settings.reasons["n_gpu_layers"] == "CPU-only build"


def test_a_model_that_fits_the_gpu_goes_there_whole() -> None:
    settings = choose_settings(fm.LLAMA_8B, machine(26), RTX_4070, LoadSettings())
    assert settings.n_gpu_layers == ALL_LAYERS
    assert "all 32 layers fit" in settings.reasons["n_gpu_layers"]
    # What goes to the GPU (every weight, the whole KV cache) fits its free memory with the reserve.
    used = fm.LLAMA_8B.tensor_bytes + kv_cache_bytes(fm.LLAMA_8B, settings.n_ctx, settings.kv_cache_type)
    assert used + vram_reserve(RTX_4070.free_memory) <= RTX_4070.free_memory


@pytest.mark.parametrize("free_gib", [2, 4, 6, 7.5, 12])
def test_a_model_bigger_than_the_gpu_is_split_by_per_layer_size(free_gib: float) -> None:
    target = OffloadTarget("GPU", int(free_gib * GIB))
    settings = choose_settings(fm.LLAMA_13B, machine(26), target, LoadSettings())
    layers = settings.n_gpu_layers
    model = fm.LLAMA_13B
    if layers == ALL_LAYERS:
        layers = model.n_layers
    assert 0 <= layers <= model.n_layers
    per_layer_kv = kv_bytes_per_token(model, settings.kv_cache_type) / model.n_layers * settings.n_ctx
    non_layer = model.tensor_bytes - model.layer_bytes * model.n_layers
    on_gpu = layers * (model.layer_bytes + per_layer_kv) + non_layer
    assert on_gpu + vram_reserve(target.free_memory) <= target.free_memory
    # ...and one more layer would not have fitted (the split is as large as it can be).
    if layers < model.n_layers:
        assert on_gpu + model.layer_bytes + per_layer_kv + vram_reserve(target.free_memory) > target.free_memory


def test_more_free_vram_never_means_fewer_layers() -> None:
    layers = [
        choose_settings(fm.LLAMA_13B, machine(26), OffloadTarget("GPU", int(g * GIB)), LoadSettings()).n_gpu_layers
        for g in (1, 2, 3, 5, 8, 13, 21)
    ]
    assert layers == sorted(layers) and layers[0] < 40 and layers[-1] == ALL_LAYERS


def test_requested_gpu_layers_win() -> None:
    settings = choose_settings(fm.LLAMA_13B, machine(26), RTX_4070, LoadSettings(n_gpu_layers=7))
    assert settings.n_gpu_layers == 7 and settings.reasons["n_gpu_layers"] == "requested"


def test_unified_memory_counts_the_weights_once() -> None:
    mac = machine_facts(fm.M2_MAC)
    target = offload_target(True, (fm.METAL_DEVICE,), mac)
    assert target.unified_memory
    settings = choose_settings(fm.LLAMA_13B, mac, target, LoadSettings())
    assert settings.n_gpu_layers == ALL_LAYERS and settings.n_ctx == 4096


def test_offload_target_reads_the_builds_gpus() -> None:
    laptop = machine_facts(fm.CUDA_LAPTOP)
    assert offload_target(False, (fm.CPU_DEVICE,), laptop) is None
    target = offload_target(True, (fm.CPU_DEVICE, fm.CUDA_DEVICE), laptop)
    assert target == OffloadTarget("NVIDIA GeForce RTX 4070 Laptop GPU", fm.CUDA_DEVICE.free_memory, False)


# -- context --------------------------------------------------------------------------------

MODELS = [fm.LLAMA_1B_Q4_0, fm.LLAMA_8B, fm.LLAMA_13B, fm.LLAMA_70B]
BUDGETS_GIB = [2, 4, 7, 12, 24, 48, 96]


@pytest.mark.parametrize(
    "model,available", list(itertools.product(MODELS, BUDGETS_GIB)), ids=lambda v: getattr(v, "name", str(v))
)
def test_chosen_context_always_fits_or_loading_is_refused(model, available) -> None:
    facts = machine(available)
    try:
        settings = choose_settings(model, facts, None, LoadSettings())
    except LlamadeskError as err:
        # Refused only when the weights (or the smallest context) really do not fit.
        assert "close other programs" in str(err)
        assert (
            model.tensor_bytes + ram_reserve(facts) + kv_cache_bytes(model, MIN_CONTEXT, "q8_0") > facts.available_ram
        )
        return
    kv = kv_cache_bytes(model, settings.n_ctx, settings.kv_cache_type)
    scratch = 0 if settings.flash_attn else attention_scratch_per_token(model) * settings.n_ctx
    assert model.tensor_bytes + kv + scratch + ram_reserve(facts) <= facts.available_ram
    assert MIN_CONTEXT <= settings.n_ctx <= min(model.context_length, DEFAULT_CONTEXT_CAP)
    assert settings.n_ctx == min(model.context_length, DEFAULT_CONTEXT_CAP) or settings.n_ctx % 256 == 0


def test_more_memory_never_means_less_context() -> None:
    contexts = []
    for available in (6, 6.5, 7, 8, 10, 14, 20):
        settings = choose_settings(fm.LLAMA_8B, machine(available), None, LoadSettings())
        contexts.append(settings.n_ctx * (2 if settings.kv_cache_type == "f16" else 1))
    assert contexts == sorted(contexts)


def test_tight_memory_switches_the_kv_cache_to_q8_0_for_more_context() -> None:
    facts = machine(7, total_gib=8)  # an 8B model on an 8 GB machine
    settings = choose_settings(fm.LLAMA_8B, facts, None, LoadSettings())
    assert settings.kv_cache_type == "q8_0" and "halves" in settings.reasons["kv_cache_type"]
    f16 = choose_settings(fm.LLAMA_8B, facts, None, LoadSettings(kv_cache_type="f16"))
    assert f16.n_ctx < settings.n_ctx
    # Without flash attention llama.cpp cannot quantize the V cache: stay at f16.
    assert choose_settings(fm.LLAMA_8B, facts, None, LoadSettings(flash_attn=False)).kv_cache_type == "f16"
    with pytest.raises(BadInputError, match="flash attention"):
        choose_settings(fm.LLAMA_8B, facts, None, LoadSettings(flash_attn=False, kv_cache_type="q8_0"))


# -- flash attention --------------------------------------------------------------------------


def test_on_the_cpu_flash_attention_is_off_where_memory_allows() -> None:
    """llama.cpp's fused CPU kernel generates 2-3x slower deep into a conversation (bench "flash attention")."""
    settings = choose_settings(fm.LLAMA_8B, machine(32), None, LoadSettings())
    assert (settings.flash_attn, settings.kv_cache_type) == (False, "f16")
    assert settings.reasons["flash_attn"] == CPU_FLASH_ATTN_REASON
    assert settings.n_ctx == DEFAULT_CONTEXT_CAP


def test_a_gpu_keeps_flash_attention_on_and_gpu_layers_0_turns_it_off() -> None:
    gpu = OffloadTarget("NVIDIA RTX 4090", 24 * GIB)
    settings = choose_settings(fm.LLAMA_8B, machine(32), gpu, LoadSettings())
    assert settings.flash_attn and settings.n_gpu_layers == ALL_LAYERS
    assert "GPU" in settings.reasons["flash_attn"]
    on_cpu = choose_settings(fm.LLAMA_8B, machine(32), gpu, LoadSettings(n_gpu_layers=0))
    assert not on_cpu.flash_attn and on_cpu.n_gpu_layers == 0


def test_less_memory_turns_flash_attention_back_on_before_quantizing_the_cache() -> None:
    """Without the fused kernel the attention scratch grows with the context: when that would cut
    the context short, the kernel goes back on (f16 first, then the q8_0 cache it allows)."""
    chosen = []
    for tenth_gib in range(60, 400, 5):
        settings = choose_settings(fm.LLAMA_8B, machine(tenth_gib / 10), None, LoadSettings())
        choice = (settings.flash_attn, settings.kv_cache_type)
        if not chosen or chosen[-1] != choice:
            chosen.append(choice)
    assert chosen == [(True, "q8_0"), (True, "f16"), (False, "f16")]
    tight = next(
        choose_settings(fm.LLAMA_8B, machine(t / 10), None, LoadSettings())
        for t in range(60, 400, 5)
        if choose_settings(fm.LLAMA_8B, machine(t / 10), None, LoadSettings()).kv_cache_type == "f16"
    )
    assert tight.flash_attn and "scratch" in tight.reasons["flash_attn"] and tight.n_ctx == DEFAULT_CONTEXT_CAP


def test_a_model_with_sliding_window_layers_keeps_flash_attention_on_the_cpu() -> None:
    """Gemma 3 attends over a 512-token window in most layers; there the fused kernel is faster."""
    gemma_like = dataclasses.replace(fm.LLAMA_8B, metadata={"llama.attention.sliding_window": 512})
    settings = choose_settings(gemma_like, machine(32), None, LoadSettings())
    assert settings.flash_attn and has_sliding_window(gemma_like) and not has_sliding_window(fm.LLAMA_8B)
    assert "window" in settings.reasons["flash_attn"]
    for bad in (0, -1, True, "512", None):
        odd = dataclasses.replace(fm.LLAMA_8B, metadata={"llama.attention.sliding_window": bad})
        assert not has_sliding_window(odd)


def test_batch_invariant_decoding_reads_prompts_below_the_attention_tile_with_flash_attention_on() -> None:
    """translate's reproducible decoding (batch_invariance.py): on the CPU it takes the fused
    kernel (each query on its own) and prompt steps of 63 rows; not on a GPU (other kernels), not
    when flash attention was turned off by request, and nothing changes for other loads."""
    from llamadesk.app.engine.batch_invariance import UNTILED_ROWS

    roomy = machine(32)
    invariant = choose_settings(fm.LLAMA_8B, roomy, None, LoadSettings(batch_invariant=True))
    assert invariant.batch_invariant and invariant.flash_attn and invariant.n_batch == UNTILED_ROWS == 63
    assert "batch-invariant" in invariant.reasons["flash_attn"] and "batch_invariant" in invariant.reasons
    plain = choose_settings(fm.LLAMA_8B, roomy, None, LoadSettings())
    assert not plain.batch_invariant and not plain.flash_attn and plain.n_batch == 512
    asked_off = choose_settings(fm.LLAMA_8B, roomy, None, LoadSettings(batch_invariant=True, flash_attn=False))
    assert not asked_off.batch_invariant and asked_off.n_batch == 512
    gpu = OffloadTarget("NVIDIA RTX 4090", 24 * GIB)
    on_gpu = choose_settings(fm.LLAMA_8B, roomy, gpu, LoadSettings(batch_invariant=True))
    assert on_gpu.n_gpu_layers and not on_gpu.batch_invariant and on_gpu.n_batch == 512


def test_weights_stay_unrepacked_only_inside_the_block() -> None:
    import llama_cpp

    from llamadesk.app.engine.batch_invariance import weights_not_repacked

    defaults = llama_cpp.llama_cpp.llama_model_default_params
    with pytest.raises(RuntimeError), weights_not_repacked():
        assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False
        raise RuntimeError("a load that fails")
    assert llama_cpp.llama_cpp.llama_model_default_params is defaults
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True


def test_the_starters_get_flash_attention_by_their_attention(smollm2_path, gemma_path) -> None:
    from llamadesk.app.core.gguf_file import inspect_gguf

    roomy = machine(32)
    assert not choose_settings(inspect_gguf(smollm2_path), roomy, None, LoadSettings()).flash_attn
    assert choose_settings(inspect_gguf(gemma_path), roomy, None, LoadSettings()).flash_attn


def test_requested_flash_attention_and_quantized_caches_are_kept() -> None:
    roomy = machine(32)
    assert choose_settings(fm.LLAMA_8B, roomy, None, LoadSettings(flash_attn=True)).flash_attn
    assert choose_settings(fm.LLAMA_8B, roomy, None, LoadSettings(flash_attn=True)).reasons["flash_attn"] == "requested"
    quantized = choose_settings(fm.LLAMA_8B, roomy, None, LoadSettings(kv_cache_type="q8_0"))
    assert quantized.flash_attn and quantized.kv_cache_type == "q8_0"
    assert quantized.reasons["flash_attn"] == "a quantized KV cache needs it"


def test_plenty_of_memory_keeps_f16_and_the_trained_context() -> None:
    settings = choose_settings(fm.LLAMA_13B, machine(48), None, LoadSettings())
    assert (settings.kv_cache_type, settings.n_ctx) == ("f16", 4096)
    assert settings.reasons["n_ctx"] == "the model's trained context"


@pytest.mark.parametrize(("ceiling", "n_ctx"), [(1, 256), (256, 256), (257, 512), (1300, 1536), (4096, 4096)])
def test_a_one_shot_reply_gets_the_context_it_needs_in_steps_of_256(ceiling, n_ctx) -> None:
    settings = choose_settings(fm.LLAMA_13B, machine(48), None, LoadSettings(context_ceiling=ceiling))
    assert settings.n_ctx == n_ctx
    expected = "the model's trained context" if n_ctx == 4096 else "enough for this one reply"
    assert settings.reasons["n_ctx"].startswith(expected)


def test_a_one_shot_ceiling_never_raises_the_context_nor_overrides_ctx_or_memory() -> None:
    assert choose_settings(fm.LLAMA_13B, machine(48), None, LoadSettings(context_ceiling=10**6)).n_ctx == 4096
    requested = choose_settings(fm.LLAMA_13B, machine(48), None, LoadSettings(n_ctx=2048, context_ceiling=300))
    assert (requested.n_ctx, requested.reasons["n_ctx"]) == (2048, "requested")
    tight = choose_settings(fm.LLAMA_8B, machine(6.5), None, LoadSettings())
    assert tight.reasons["n_ctx"].startswith("capped by free memory")
    capped = choose_settings(fm.LLAMA_8B, machine(6.5), None, LoadSettings(context_ceiling=10**6))
    assert capped.n_ctx == tight.n_ctx


def test_a_requested_context_that_cannot_fit_is_refused_with_one_that_can() -> None:
    facts = machine(8)
    with pytest.raises(BadInputError, match=r"use --ctx (\d+) or less") as err:
        choose_settings(fm.LLAMA_8B, facts, None, LoadSettings(n_ctx=131072))
    largest = int(err.value.args[0].rsplit("--ctx ", 1)[1].split()[0])
    assert choose_settings(fm.LLAMA_8B, facts, None, LoadSettings(n_ctx=largest)).n_ctx == largest
    with pytest.raises(BadInputError):
        choose_settings(fm.LLAMA_8B, facts, None, LoadSettings(n_ctx=largest + 1))


def test_weights_that_do_not_fit_are_refused_with_what_to_do() -> None:
    with pytest.raises(LlamadeskError, match="smaller quantization") as err:
        choose_settings(fm.LLAMA_70B, machine(24), None, LoadSettings())
    assert "Llama-3.1-70B" in str(err.value) and not isinstance(err.value, BadInputError)


def test_mmap_on_and_mlock_only_when_asked() -> None:
    default = choose_settings(fm.LLAMA_8B, machine(20), None, LoadSettings())
    assert default.use_mmap and not default.use_mlock
    asked = choose_settings(fm.LLAMA_8B, machine(20), None, LoadSettings(use_mlock=True, use_mmap=False))
    assert asked.use_mlock and not asked.use_mmap
    with pytest.raises(BadInputError, match="KV cache type"):
        choose_settings(fm.LLAMA_8B, machine(20), None, LoadSettings(kv_cache_type="q3_k"))


# -- real loads -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("starter", ["smollm2", "gemma3-270m"])
def test_the_largest_proposed_context_loads_here(starter: str) -> None:
    """The settings chosen for this machine load in llama.cpp and generate, at full context."""
    from llamadesk.app.core.gguf_file import inspect_gguf
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import Sampling
    from llamadesk.app.library.starters import starter_path

    path = starter_path(starter)
    expected = choose_settings(inspect_gguf(path), machine_facts(), None, LoadSettings())
    with Engine.load(path) as engine:
        assert engine.settings.n_ctx == expected.n_ctx == engine.n_ctx
        assert 1 <= engine.settings.n_threads <= machine_facts().physical_cores
        assert engine.settings.reasons["n_threads"].startswith("one per physical core")
        events = list(engine.stream_completion("The capital of France is", Sampling(temperature=0, max_tokens=4)))
        assert events[-1].stats.generated_tokens >= 1


@pytest.mark.slow
def test_a_tight_budget_choice_with_q8_0_cache_loads_and_answers(smollm2_path) -> None:
    """What a small machine would be given (q8_0 KV, capped context) loads and answers here."""
    from llamadesk.app.core.gguf_file import inspect_gguf
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import Sampling, TextPiece

    summary = inspect_gguf(smollm2_path)
    # Room for the weights plus about 3000 tokens of f16 KV: less than the trained 8192.
    kv_room = kv_cache_bytes(summary, 3000)
    small = dataclasses.replace(machine(1), available_ram=summary.tensor_bytes + kv_room * 2, total_ram=0)
    small = dataclasses.replace(small, available_ram=small.available_ram + ram_reserve(small))
    chosen = choose_settings(summary, small, None, LoadSettings())
    assert chosen.kv_cache_type == "q8_0" and MIN_CONTEXT <= chosen.n_ctx < 8192
    # Everything else pinned: left automatic, the thread count would follow this machine's load.
    pinned = {**PINNED_LOAD, "kv_cache_type": chosen.kv_cache_type}
    with Engine.load(smollm2_path, LoadSettings(n_ctx=chosen.n_ctx, **pinned)) as engine:
        assert engine.n_ctx == chosen.n_ctx and engine.settings.kv_cache_type == "q8_0"
        messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        events = list(engine.stream_chat(messages, Sampling(temperature=0, max_tokens=24)))
    # It answers, in words. Not which words: with a q8_0 cache this 135M model answers this
    # question in French ("La femme de France, ..."), whatever the thread count; Paris is what the
    # f16 tests check.
    text = "".join(e.text for e in events if isinstance(e, TextPiece))
    assert any(c.isalpha() for c in text) and "\ufffd" not in text
    assert events[-1].stats.generated_tokens >= 1 and events[-1].stats.stop_reason in ("end", "length")
