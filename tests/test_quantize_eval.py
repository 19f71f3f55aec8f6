"""`llamadesk eval` against llama-perplexity on a permissively licensed text.

The text is a few sections of the Python Language Reference as shipped in the standard library
(pydoc_data/topics.py), which the Python Software Foundation distributes under the PSF License
(a permissive, BSD-style licence). Short chunks (--ctx 128) keep the test under a minute.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from llamadesk.quantize.evaluation import evaluate, saved_evaluations
from tests.conftest import run_cli
from tests.fixtures.smollm2_f16 import llama_tools_bin, smollm2_quantized

pytestmark = pytest.mark.slow

CTX = 128
TEXT_CHARS = 2600  # ~600 SmolLM2 tokens: 4 chunks of 128


@pytest.fixture(scope="module")
def reference_text(tmp_path_factory) -> Path:
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("text") / "python-reference.txt"
    path.write_text((topics["assignment"] + "\n\n" + topics["execmodel"])[:TEXT_CHARS], encoding="utf-8")
    return path


def _llama_perplexity(*args: str) -> str:
    done = subprocess.run(
        [str(llama_tools_bin() / "llama-perplexity"), "-c", str(CTX), "-t", "2", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


@cache
def _reference(f16: Path, text: Path, quantized: tuple[Path, ...]) -> dict[str, float]:
    """llama-perplexity's f16 perplexity, and --kl-divergence's mean KLD for each quantized model."""
    logits = text.with_suffix(".f16-logits")
    out = _llama_perplexity("-m", str(f16), "-f", str(text), "--kl-divergence-base", str(logits))
    found = {"f16": float(re.search(r"Final estimate: PPL = ([\d.]+)", out)[1])}
    for model in quantized:
        out = _llama_perplexity("-m", str(model), "--kl-divergence-base", str(logits), "--kl-divergence")
        found[model.name] = float(re.search(r"Mean\s+KLD:\s+([-\d.]+)", out)[1])
    return found


@cache
def _evaluate(f16: Path, text: Path, qtype: str):
    """One evaluation per type for the whole module (each costs seconds on 2 cores)."""
    return evaluate(smollm2_quantized(f16, qtype), text, CTX, base=f16, threads=2)


def test_perplexity_and_kld_match_llama_perplexity(smollm2_f16_path, reference_text):
    q8, q4 = (smollm2_quantized(smollm2_f16_path, q) for q in ("Q8_0", "Q4_K_M"))
    reference = _reference(smollm2_f16_path, reference_text, (q8, q4))
    ours = {m.name: _evaluate(smollm2_f16_path, reference_text, q) for m, q in ((q8, "Q8_0"), (q4, "Q4_K_M"))}
    assert ours[q8.name].base_perplexity == pytest.approx(reference["f16"], rel=0.01)
    for model in (q8, q4):
        assert ours[model.name].kld_mean == pytest.approx(reference[model.name], rel=0.05), model.name
    assert ours[q8.name].kld_mean < 0.01


def test_kld_grows_as_bits_shrink(smollm2_f16_path, reference_text):
    results = [_evaluate(smollm2_f16_path, reference_text, q) for q in ("Q8_0", "Q4_K_M", "Q2_K")]
    klds = [r.kld_mean for r in results]
    assert klds == sorted(klds) and len(set(klds)) == 3
    assert results[0].top1_agreement > results[2].top1_agreement
    assert all(r.kld_p99 >= r.kld_mean for r in results)


def test_cli_eval_saves_json_beside_the_model_and_models_shows_it(smollm2_f16_path, reference_text):
    from llamadesk.app.core.paths import models_dir

    model = models_dir() / "smol-eval-Q8_0.gguf"
    try:
        model.symlink_to(smollm2_quantized(smollm2_f16_path, "Q8_0"))
        done = run_cli(
            "eval", str(model), "--text", str(reference_text), "--ctx", str(CTX), "--threads", "2", "--json", "--save"
        )
        assert done.returncode == 0, done.stderr
        printed = json.loads(done.stdout)
        assert printed["perplexity"] > 1 and printed["chunks"] == 4 and printed["scored_tokens"] == 4 * (CTX // 2 - 1)
        assert saved_evaluations(model) == [printed]
        assert (models_dir() / "smol-eval-Q8_0.gguf.eval.json").exists()
        listed = run_cli("models")
        row = next(line for line in listed.stdout.splitlines() if line.startswith("smol-eval-Q8_0"))
        assert f"PPL {printed['perplexity']:.2f} @{CTX}" in row
        as_json = {m["name"]: m for m in json.loads(run_cli("models", "--json").stdout)}
        assert as_json["smol-eval-Q8_0"]["eval_results"] == [printed]
    finally:  # the library is shared by the whole test session
        model.unlink(missing_ok=True)
        (models_dir() / "smol-eval-Q8_0.gguf.eval.json").unlink(missing_ok=True)
    help_text = run_cli("eval", "--help").stdout
    assert "Cross-entropy is the loss the model was trained on" in help_text and "exponential" in help_text


def test_eval_save_beside_a_model_in_a_read_only_folder_is_refused_before_scoring(smollm2_path, tmp_path):
    # The evaluation ran (minutes on a big model), then --save failed with "choose another output",
    # which eval has none of, and the result was never printed. The text is missing: a line about
    # it would mean the scoring had started before --save was checked.
    from tests.conftest import LLAMADESK, one_line_error
    from tests.permissions import drop_permission_overrides_at_exec

    store = tmp_path / "store"
    store.mkdir()
    (store / "model.gguf").symlink_to(smollm2_path)
    store.chmod(0o555)
    try:
        done = subprocess.run(
            [str(LLAMADESK), "eval", str(store / "model.gguf"), "--text", str(tmp_path / "missing.txt"), "--save"],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=drop_permission_overrides_at_exec,
        )
    finally:
        store.chmod(0o755)
    assert one_line_error(done, 2) == (
        f"llamadesk: folder {store} is not writable; run eval without --save to have the result printed only"
    )


def test_an_evaluation_is_printed_before_a_save_that_fails(smollm2_path, tmp_path, monkeypatch):
    import errno

    from llamadesk.quantize import evaluation

    result = evaluation.EvalResult(str(smollm2_path), "t.txt", "0" * 64, 128, 4, 252, 2.5, 12.18)

    def disk_full_meanwhile(_result):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluation, "evaluate", lambda *_args, **_kwargs: result)
    monkeypatch.setattr(evaluation, "save_evaluation", disk_full_meanwhile)
    done = run_cli("eval", str(smollm2_path), "--text", str(tmp_path / "t.txt"), "--json", "--save")
    assert done.returncode == 1 and json.loads(done.stdout) == result.to_json()


def test_eval_refuses_a_text_too_short(smollm2_path, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Only a few words.")
    done = run_cli("eval", str(smollm2_path), "--text", str(short))
    assert done.returncode == 2 and "needs at least 1024" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_chunk_size_past_the_trained_context_is_refused_before_loading(smollm2_path, tmp_path):
    # --ctx 99999999999 allocated logits until the kernel killed the process (exit 137, nothing said).
    from tests.conftest import assert_one_clear_line, run_cli

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    for ctx in ("99999999999", "8193", "0"):
        result = run_cli("eval", str(smollm2_path), "--text", str(text), "--threads", "1", "--ctx", ctx)
        assert_one_clear_line(result, 2, f"--ctx {ctx}: chunks for")


def test_chunk_sizes_too_small_name_the_real_lower_bound(smollm2_path, tmp_path):
    # --ctx 0 said chunks may be "1 to 8192", and --ctx 1 was then refused with "at least 4".
    from tests.conftest import assert_one_clear_line, run_cli

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    for ctx in ("0", "1", "3"):
        result = run_cli("eval", str(smollm2_path), "--text", str(text), "--threads", "1", "--ctx", ctx)
        assert_one_clear_line(result, 2, f"--ctx {ctx}: chunks for", "are 4 to 8192")


def test_eval_and_imatrix_check_threads_as_chat_and_quantize_do(smollm2_path, tmp_path):
    # 100000 overran ggml's thread table (segfault), 99999999999 aborted llama.cpp (bad_alloc), and
    # 0 and -5 silently became the default. In subprocesses: a crash must not take pytest with it.
    from tests.conftest import assert_one_clear_line, run_cli_process

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    output = tmp_path / "out.imatrix"
    for command in (["eval"], ["imatrix", "-o", str(output)]):
        for threads in ("100000", "99999999999", "0", "-5"):
            result = run_cli_process(
                *command, str(smollm2_path), "--text", str(text), "--ctx", "64", "--threads", threads
            )
            assert_one_clear_line(result, 2, f"--threads must be a whole number from 1 to 512, not {threads}")
    assert not output.exists()


def test_the_scorer_refuses_zero_threads_instead_of_choosing(smollm2_path):
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.engine.scoring import TokenScorer

    with pytest.raises(BadInputError, match="--threads must be a whole number from 1 to 512, not 0"):
        TokenScorer.load(smollm2_path, 64, 0)


def test_imatrix_refuses_chunks_past_the_trained_context_before_loading(smollm2_path, tmp_path):
    # --ctx 1000000000 reached llama.cpp, which allocated the context until the kernel killed the
    # process (exit 137). 8193, one past SmolLM2's trained context, stands in for it here.
    from tests.conftest import assert_one_clear_line, run_cli

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    output = tmp_path / "out.imatrix"
    result = run_cli(
        "imatrix", str(smollm2_path), "--text", str(text), "--ctx", "8193", "--threads", "1", "-o", str(output)
    )
    assert_one_clear_line(result, 2, "--ctx 8193: chunks for", "16 to 8192 tokens")
    assert not output.exists()


def test_a_base_with_a_vocabulary_of_another_size_is_refused_in_one_line(smollm2_path, tmp_path):
    # The same tokens for the text, 64 padding tokens more: the logits' shapes differed and numpy
    # raised (an internal error, exit 1).
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    reader = GGUFReader(smollm2_path)
    padded = tmp_path / "padded.gguf"
    writer = GGUFWriter(padded, "llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        kind, value = field.types[0], field.contents()
        if field.name == "tokenizer.ggml.tokens":
            value = value + [f"<pad_{i}>" for i in range(64)]
        elif field.name == "tokenizer.ggml.token_type":
            value = value + [3] * 64
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        data = np.array(tensor.data)
        if tensor.name == "token_embd.weight":
            data = np.concatenate([data, np.zeros((64, data.shape[1]), data.dtype)])
        writer.add_tensor(tensor.name, data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 80)
    done = run_cli(
        "eval", str(smollm2_path), "--text", str(text), "--ctx", "64", "--threads", "1", "--base", str(padded)
    )
    assert done.returncode == 2, done.stderr
    assert "has a vocabulary of 49216 tokens" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_eval_and_imatrix_refuse_weights_the_free_memory_cannot_hold(smollm2_path, monkeypatch):
    # chat refused a model larger than the free memory; eval and imatrix loaded it and paged for
    # minutes (a 61 GiB model on 22 GiB), deaf to Ctrl-C.
    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.core.machine import MachineFacts
    from llamadesk.app.engine import scoring

    tight = MachineFacts(physical_cores=2, logical_cores=2, total_ram=1 << 30, available_ram=400 << 20)
    monkeypatch.setattr(scoring, "machine_facts", lambda: tight)
    with pytest.raises(LlamadeskError, match="needs .* of RAM for its weights"):
        scoring.TokenScorer.load(smollm2_path, 512, 1)
