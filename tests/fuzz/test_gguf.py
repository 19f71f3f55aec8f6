"""Fuzz: over 700 mutated GGUFs (from the real SmolLM2 starter) fed to `info`, `models`, `chat` and
Engine.load, each in a forked child under a memory limit and a timeout (tests/fuzz/harness.py).

The rule for `info` (made explicit here): exit 2 with one "llamadesk: " line when the file would not
load (or would crash llama.cpp), exit 0 when the change is harmless. Which is which is known for
the crafted mutants (their `expect`); for random byte flips, Engine.load is the judge: it must
agree with `info` on every mutant. Nothing may end in a traceback, a signal or a hang.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.fuzz.gguf_mutants import MUTANTS, REFUSE, write_mutant
from tests.fuzz.harness import assert_all_refused, call_case, cli_case, problems, run_cases

PRELOAD = (
    "llamadesk.app.cli",
    "llamadesk.app.commands.info",
    "llamadesk.app.commands.chat",
    "llamadesk.app.commands.models",
    "llamadesk.app.commands.quantize",
    "llamadesk.app.engine.llama_engine",
    "llamadesk.app.engine.load_check",
    "tests.fuzz.gguf_mutants",
)
INDEX = {m.id: i for i, m in enumerate(MUTANTS)}
# Those that crashed before: llama.cpp aborted on the first and third (GGML_ASSERT), the second was a traceback.
KNOWN_CRASHERS = ("value-block_count-0", "value-context_length-max", "value-rms_epsilon-negative")
CHAT_SAMPLE = 60
LOAD_SAMPLE = 20


@pytest.fixture(scope="module")
def mutant_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gguf-mutants")


@pytest.fixture(scope="module")
def info_results(mutant_folder, tmp_path_factory) -> dict[str, dict]:
    cases = [call_case(m.id, "tests.fuzz.gguf_mutants:info", i, str(mutant_folder)) for i, m in enumerate(MUTANTS)]
    return run_cases(cases, tmp_path_factory.mktemp("info"), preload=PRELOAD)


def outcome_counts(results: dict[str, dict]) -> dict[str, Counter]:
    """Outcomes by mutant class, for the README's Robustness section (printed with -s)."""
    counts: dict[str, Counter] = {}
    for mutant in (m for m in MUTANTS if m.id in results):
        result = results[mutant.id]
        key = f"exit {result['code']}" if result["status"] == "exit" else result["status"]
        counts.setdefault(mutant.kind, Counter())[key] += 1
    return counts


def test_info_refuses_what_would_not_load_and_accepts_harmless_changes(info_results):
    assert len(MUTANTS) >= 500
    assert_all_refused(info_results, codes=(0, 2))
    wrong = [
        f"{m.id}: wanted {'exit 2' if m.expect == REFUSE else 'exit 0'}, got {info_results[m.id]['code']}: "
        f"{info_results[m.id]['stderr'][-300:]}"
        for m in MUTANTS
        if m.expect is not None and info_results[m.id]["code"] != (2 if m.expect == REFUSE else 0)
    ]
    assert not wrong, "\n".join(wrong)
    for mutant in MUTANTS:
        result = info_results[mutant.id]
        if result["code"] == 0:
            assert "llama" in result["stdout"] and "tensors:" in result["stdout"], mutant.id
        else:
            assert f"mutant-{INDEX[mutant.id]:04d}.gguf" in result["stderr"], "the line names the file"
    for kind, counts in outcome_counts(info_results).items():
        print(f"info  {kind}: {dict(counts)}")


def test_info_json_stays_json_on_every_accepted_mutant(info_results, mutant_folder, tmp_path):
    """Odd but harmless values (NaN, a key with a newline) must not break `info --json` for jq."""
    accepted = [m for m in MUTANTS if info_results[m.id]["code"] == 0]
    cases = [call_case(m.id, "tests.fuzz.gguf_mutants:info_json", INDEX[m.id], str(mutant_folder)) for m in accepted]
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused(results, codes=(0,))
    assert all(results[m.id]["stdout"].strip() == "llama" for m in accepted)


def test_engine_load_agrees_with_info(info_results, mutant_folder, tmp_path):
    """Engine.load refuses what `info` refused (before llama.cpp sees it, or with llama.cpp's
    reason) and loads what `info` accepted: every mutant llama.cpp itself refused, a sixth of
    those llamadesk's checks refused (the same code as `info`), and a spread of the accepted."""
    accepted = [m for m in MUTANTS if info_results[m.id]["code"] == 0]
    by_llama_cpp = [m for m in MUTANTS if "llama.cpp cannot load it" in info_results[m.id]["stderr"]]
    by_llamadesk = [m for m in MUTANTS if info_results[m.id]["code"] == 2 and m not in by_llama_cpp]
    chosen = by_llama_cpp + by_llamadesk[::6] + accepted[:: max(1, len(accepted) // LOAD_SAMPLE)]
    cases = [call_case(m.id, "tests.fuzz.gguf_mutants:load", INDEX[m.id], str(mutant_folder)) for m in chosen]
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused(results, codes=(0, 2))
    disagree = [
        f"{m.id}: info {info_results[m.id]['code']}, Engine.load {results[m.id]['code']}: "
        f"{results[m.id]['stderr'][-300:]}"
        for m in chosen
        if results[m.id]["code"] != info_results[m.id]["code"]
    ]
    assert not disagree, "\n".join(disagree)
    for kind, counts in outcome_counts(results).items():
        print(f"load  {kind}: {dict(counts)}")


def test_chat_answers_on_harmless_mutants_and_refuses_the_known_crashers(info_results, mutant_folder, tmp_path):
    accepted = [m for m in MUTANTS if info_results[m.id]["code"] == 0 and m.id not in KNOWN_CRASHERS]
    sample = accepted[:: max(1, len(accepted) // CHAT_SAMPLE)][:CHAT_SAMPLE]
    cases = [
        call_case(m.id, "tests.fuzz.gguf_mutants:chat", INDEX[m.id], str(mutant_folder), timeout=60)
        for m in sample + [MUTANTS[INDEX[name]] for name in KNOWN_CRASHERS]
    ]
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused({m.id: results[m.id] for m in sample}, codes=(0,))
    assert_all_refused({name: results[name] for name in KNOWN_CRASHERS}, codes=(2,))
    assert "block_count is 0" in results["value-block_count-0"]["stderr"]
    assert "context_length is 4294967295" in results["value-context_length-max"]["stderr"]
    assert "layer_norm_rms_epsilon is -1.0; it must be at least 0" in results["value-rms_epsilon-negative"]["stderr"]
    print(f"chat: {len(sample)} harmless mutants answered, {len(KNOWN_CRASHERS)} known crashers refused")


# Mutants llama.cpp's quantizer aborted on (SIGABRT, exit 1) or quantized into a file nothing loads (exit 0).
QUANTIZER_CRASHERS = (
    "value-block_count-0",
    "value-block_count-513",
    "value-rope.scaling.type-bogus",
    "value-expert_used-9-of-8",
    "value-expert_count-2000",
    "value-nextn_predict_layers-31",
    "value-tokens-duplicate",
)
USELESS_QUANTIZED = (
    "value-context_length-0",
    "value-rms_epsilon-nan",
    "value-rms_epsilon-negative",
    "value-bos-out-of-vocabulary",
)


def test_quantize_refuses_what_info_refuses_with_the_same_line(info_results, mutant_folder, tmp_path):
    chosen = QUANTIZER_CRASHERS + USELESS_QUANTIZED
    cases = [
        call_case(name, "tests.fuzz.gguf_mutants:quantize", INDEX[name], str(mutant_folder), timeout=120)
        for name in chosen
    ]
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused(results, codes=(2,))
    for name in chosen:
        assert results[name]["stderr"].strip() == info_results[name]["stderr"].strip(), name


def test_models_lists_a_folder_of_damaged_files_with_a_note_for_each(info_results, tmp_path, gemma_path, smollm2_path):
    """A folder added with `models add` holding damaged files: `models` (and the listing the
    model manager uses) shows the good model and skips each bad one with a one-line note."""
    home = tmp_path / "home"
    (home / "data" / "models").mkdir(parents=True)
    (home / "data" / "models" / gemma_path.name).symlink_to(gemma_path)  # shared, not re-assembled
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "good.gguf").symlink_to(smollm2_path)
    refused = [i for i, m in enumerate(MUTANTS) if info_results[m.id]["code"] == 2]
    chosen = refused[:: max(1, len(refused) // 60)]
    for i in chosen:
        write_mutant(i, folder)
    env = {"LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf")}
    cases = [
        cli_case("add", "models", "add", str(folder), env=env),
        cli_case("list", "models", env=env, timeout=60),
        cli_case("json", "models", "--json", env=env, timeout=60),
        call_case("library", "tests.fuzz.gguf_mutants:list_library", env=env, timeout=60),
    ]
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    for case_id, result in results.items():
        assert problems(result, codes=(0,)) is None, f"{case_id}: {problems(result, codes=(0,))}"
    listed = {entry["name"]: entry for entry in json.loads(results["json"]["stdout"])}
    assert {"smollm2", "gemma3-270m", "good"} <= set(listed)
    notes = [line for line in results["list"]["stderr"].splitlines() if line.strip()]
    assert all(line.startswith("llamadesk: skipped ") for line in notes), notes[:3]
    in_folder = [name for name, entry in listed.items() if entry["source"] == "folder"]
    assert len(notes) + len(in_folder) == len(chosen) + 1, "every file is either listed or noted"
    assert int(results["library"]["stdout"]) == len(listed)
    print(f"models: {len(chosen)} damaged files, {len(notes)} skipped with a note, {len(in_folder) - 1} listed")
