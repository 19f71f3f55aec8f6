"""`fit` and `quantize -t auto`: the memory estimate against what llama.cpp allocates."""

from __future__ import annotations

import json

import pytest

from llamadesk.app.core.gguf_file import inspect_gguf
from llamadesk.app.core.memory_budget import estimate_memory
from llamadesk.app.engine.allocation import measure_allocation
from llamadesk.quantize.memory_fit import AUTO_LADDER
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

CTX = 2048


@pytest.mark.parametrize("ctx", [512, 4096])
def test_estimate_matches_llama_cpps_allocation(gemma_path, ctx):
    summary = inspect_gguf(gemma_path)
    estimate = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, ctx)
    actual = measure_allocation(gemma_path, ctx)
    assert estimate.kv_cache == actual.kv_bytes
    assert estimate.compute == pytest.approx(actual.compute_bytes, rel=0.05)
    assert estimate.total == pytest.approx(actual.total_bytes, rel=0.05)


@pytest.mark.parametrize("ctx", [2048, 16384])
def test_estimate_without_flash_attention_matches_llama_cpps_allocation(smollm2_path, ctx):
    """Without flash attention a layer's attention scores (batch x context x heads) outgrow the
    logits at long contexts (SmolLM2: 9 heads x 16k > its 49k vocabulary); the estimate follows."""
    summary = inspect_gguf(smollm2_path)
    estimate = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, ctx, flash_attn=False)
    actual = measure_allocation(smollm2_path, ctx, flash_attn=False)
    assert estimate.compute == pytest.approx(actual.compute_bytes, rel=0.05)
    assert estimate.total == pytest.approx(actual.total_bytes, rel=0.05)
    with_flash = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, ctx)
    assert (estimate.compute > 2 * with_flash.compute) == (ctx == 16384)


def test_auto_picks_the_best_type_that_loads_within_the_budget(smollm2_f16_path, tmp_path):
    budget = 250_000_000  # bytes: between Q4_K_M (~256 MB at 2048) and Q5_K_S
    table = run_cli("fit", str(smollm2_f16_path), "--memory", str(budget), "--ctx", str(CTX), "--json")
    assert table.returncode == 0, table.stderr
    rows = {r["qtype"]: r for r in json.loads(table.stdout)["types"]}
    choice = json.loads(table.stdout)["auto_choice"]
    assert rows[choice]["fits"] and rows[choice]["memory_bytes"] <= budget
    better = AUTO_LADDER[: AUTO_LADDER.index(choice)]
    assert better and not any(rows[q]["fits"] for q in better)

    output = tmp_path / "auto.gguf"
    done = run_cli(
        "quantize",
        str(smollm2_f16_path),
        "-t",
        "auto",
        "--memory",
        str(budget),
        "--ctx",
        str(CTX),
        "--threads",
        "2",
        "-o",
        str(output),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["type"] == choice
    actual = measure_allocation(output, CTX)
    assert actual.repacked_bytes <= actual.model_bytes  # copies of mapped weights, not extra weights
    assert actual.total_bytes <= budget
    assert actual.total_bytes == pytest.approx(rows[choice]["memory_bytes"], rel=0.05)


def test_nothing_fits_is_one_clear_line(smollm2_f16_path, tmp_path):
    done = run_cli("quantize", str(smollm2_f16_path), "-t", "auto", "--memory", "50MB", "-o", str(tmp_path / "x.gguf"))
    assert done.returncode == 2 and "no quantization" in done.stderr and "--memory" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_auto_never_picks_a_type_larger_than_an_already_quantized_model(smollm2_path):
    # From the Q4_1 starter, with room for anything, auto chose Q8_0: a larger file that rounds the
    # rounded weights again (quantize -t auto --allow-requantize).
    from llamadesk.app.core.gguf_file import inspect_gguf

    table = run_cli("fit", str(smollm2_path), "--memory", "8GB", "--json")
    assert table.returncode == 0, table.stderr
    report = json.loads(table.stdout)
    rows = {r["qtype"]: r for r in report["types"]}
    assert rows["Q8_0"]["fits"], "Q8_0 fits: only its size rules it out"
    assert rows[report["auto_choice"]]["weights_bytes"] < inspect_gguf(smollm2_path).tensor_bytes


def test_a_context_of_zero_is_refused_not_taken_for_the_models(smollm2_path, tmp_path):
    # `fit --ctx 0` showed the table at the model's trained context (exit 0) while --ctx -5 was
    # refused; `quantize -t Q4_0 --ctx 0` let the --ctx that applies only with -t auto through.
    from tests.conftest import assert_one_clear_line

    for ctx in ("0", "-5"):
        assert_one_clear_line(
            run_cli("fit", str(smollm2_path), "--ctx", ctx), 2, f"--ctx must be a positive number of tokens, not {ctx}"
        )
    refused = run_cli("quantize", str(smollm2_path), "-t", "Q4_0", "--ctx", "0", "-o", str(tmp_path / "x.gguf"))
    assert_one_clear_line(refused, 2, "--memory and --ctx only apply with -t auto")
    assert list(tmp_path.iterdir()) == []
