"""Hostile and broken prompt cache files (chat/prompt_cache.py): cut short, bytes flipped, fields
out of range, something else in the file's place, and states altered under a recomputed checksum
so that llama.cpp's own reader is what meets them.

What each must get: a clean run (no crash, no hang, bounded memory), and, unless the checksum was
recomputed, the file ignored and the answer exactly the one decoded without a cache. Every case
runs in a forked child (tests/fuzz/harness.py) with the real SmolLM2; seeds are fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
from pathlib import Path

import pytest

from llamadesk.app.chat.prompt_cache import HEADER, PromptCache
from tests.conftest import PINNED_LOAD
from tests.fuzz.harness import call_case, problems, run_cases

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]
HERE = "tests.fuzz.test_prompt_cache_files"
PRELOAD = ("llamadesk.app.cli", "llamadesk.app.chat.prompt_cache", HERE)
CONVERSATION = 7
FIRST = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France and why is it famous?"},
]
GREEDY = {"temperature": 0.0, "max_tokens": 6, "seed": 0}


# -- what the children run ---------------------------------------------------------------------


def _engine(model: str):
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    return Engine.load(model, LoadSettings(n_ctx=512, **PINNED_LOAD))


def _answer(engine, messages) -> str:
    from llamadesk.app.engine.types import Sampling, TextPiece

    return "".join(e.text for e in engine.stream_chat(messages, Sampling(**GREEDY)) if isinstance(e, TextPiece))


def make_cache_file(model: str, folder: str) -> None:
    """Answer FIRST, save its cache file, and print the next prompt and its answer without a cache."""
    with _engine(model) as engine:
        cache = PromptCache(Path(folder), budget=10**9)
        reply = _answer(engine, FIRST)
        cache.save(engine, CONVERSATION)
        assert cache.flush(60) and cache.problem is None, cache.problem
        following = [*FIRST, {"role": "assistant", "content": reply}, {"role": "user", "content": "And Italy's?"}]
        _answer(engine, [{"role": "user", "content": "Unrelated."}])
        print(json.dumps({"following": following, "reference": _answer(engine, following)}))


def continue_with_files(model: str, folder: str, plan: str) -> None:
    """For each file in the plan, put it in the cache's place, continue the conversation, print the outcome."""
    cases = json.loads(Path(plan).read_text())
    following = cases["following"]
    with _engine(model) as engine:
        for case_id, source in cases["files"]:
            target = Path(folder) / cases["name"]
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            if source == "fifo":
                os.mkfifo(target)
            elif source == "folder":
                target.mkdir()
            elif source == "dev-zero":
                target.symlink_to("/dev/zero")
            else:
                shutil.copyfile(source, target)
            _answer(engine, [{"role": "user", "content": "Unrelated."}])  # as after a restart
            cache = PromptCache(Path(folder), budget=10**9)
            restored = cache.restore(engine, CONVERSATION, engine.chat_prompt_tokens(following))
            print(json.dumps({"case": case_id, "restored": restored, "answer": _answer(engine, following)}), flush=True)


# -- the cases ---------------------------------------------------------------------------------


def plain_mutants(original: bytes, rng: random.Random) -> dict[str, bytes]:
    """Damage as a disk, a killed writer or a stranger leaves it: the checksum no longer matches."""
    size = len(original)
    n_tokens = HEADER.unpack_from(original)[3]
    tokens_end = HEADER.size + 4 * n_tokens
    cases = {
        "empty": b"",
        "header-only": original[: HEADER.size],
        "tokens-only": original[:tokens_end],
        "one-byte-short": original[:-1],
        "one-byte-more": original + b"\0",
        "zeros": bytes(size),
        "doubled": original + original,
    }
    for n in range(3):
        cases[f"truncated-{n}"] = original[: rng.randrange(1, size)]
    # Every header field, and bytes in the tokens (late: the prefix stays worth reading) and the state.
    for field, offset in (("magic", 0), ("identity", 8), ("conversation", 40), ("tokens", 48), ("state", 52)):
        flipped = bytearray(original)
        flipped[offset] ^= 0x40
        cases[f"flipped-{field}"] = bytes(flipped)
    for name, fmt, offset, value in (
        ("n-tokens-huge", "<I", 48, 2**32 - 1),
        ("n-tokens-zero", "<I", 48, 0),
        ("n-state-huge", "<Q", 52, 2**63),
        ("n-state-zero", "<Q", 52, 0),
    ):
        changed = bytearray(original)
        struct.pack_into(fmt, changed, offset, value)
        cases[f"field-{name}"] = bytes(changed)
    for n in range(2):
        flipped = bytearray(original)
        flipped[rng.randrange(tokens_end - 40, tokens_end)] ^= 1 << rng.randrange(8)
        cases[f"token-bit-{n}"] = bytes(flipped)
    for n in range(3):
        flipped = bytearray(original)
        flipped[rng.randrange(tokens_end, size)] ^= 1 << rng.randrange(8)
        cases[f"state-bit-{n}"] = bytes(flipped)
    return cases


def resealed(original: bytes, state: bytes) -> bytes:
    """`original` with another state, under a header and checksum that match it (a crafted file)."""
    magic, identity, conversation, n_tokens, _, _ = HEADER.unpack_from(original)
    tokens = original[HEADER.size : HEADER.size + 4 * n_tokens]
    digest = hashlib.sha256(tokens + state).digest()
    return HEADER.pack(magic, identity, conversation, n_tokens, len(state), digest) + tokens + state


def crafted_mutants(original: bytes, rng: random.Random) -> dict[str, bytes]:
    """States llama.cpp itself must refuse or survive: its meta (magic, stream and cell counts,
    positions), its layer/type/row-size fields, cut short, or random bytes."""
    n_tokens = HEADER.unpack_from(original)[3]
    state = original[HEADER.size + 4 * n_tokens :]
    cases = {
        "state-cut-in-half": resealed(original, state[: len(state) // 2]),
        "state-random": resealed(original, rng.randbytes(len(state))),
        "state-one-byte": resealed(original, state[:1]),
    }
    # llama.cpp's sequence state starts: magic (4), seq id (4), n_stream (4), cell count (4), cells.
    for name, offset, value in (
        ("magic", 0, 0x12345678),
        ("seq-id", 4, 2**31 - 1),
        ("n-stream", 8, 1000),
        ("cell-count-huge", 12, 2**32 - 1),
        ("cell-count-one-more", 12, n_tokens + 1),
        ("first-position", 16, 2**31 - 1),
        ("first-seq-count", 20, 5),
    ):
        changed = bytearray(state)
        struct.pack_into("<I", changed, offset, value)
        cases[f"llama-{name}"] = resealed(original, bytes(changed))
    meta_end = 16 + 12 * n_tokens  # each cell: position, seq count, seq id
    for name, offset in (("v-trans", meta_end), ("n-layer", meta_end + 4), ("k-type", meta_end + 8)):
        changed = bytearray(state)
        changed[offset] ^= 0x7F
        cases[f"llama-{name}"] = resealed(original, bytes(changed))
    return cases


def test_damaged_and_crafted_cache_files_never_crash_and_damage_never_changes_the_answer(tmp_path, smollm2_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    made = run_cases(
        [call_case("make", f"{HERE}:make_cache_file", smollm2_path, folder, timeout=300)], tmp_path, preload=PRELOAD
    )["make"]
    assert problems(made, codes=(0,)) is None, made["stderr"][-2000:]
    made_out = json.loads(made["stdout"].strip().splitlines()[-1])
    (path,) = folder.glob("*.kvc")
    original = path.read_bytes()
    rng = random.Random(20261201)
    plain, crafted = plain_mutants(original, rng), crafted_mutants(original, rng)
    files = tmp_path / "mutants"
    files.mkdir()
    for case_id, data in {**plain, **crafted}.items():
        (files / case_id).write_bytes(data)

    def plan(name: str, entries: list[tuple[str, str]]) -> Path:
        spec = tmp_path / f"plan-{name}.json"
        spec.write_text(json.dumps({"following": made_out["following"], "name": path.name, "files": entries}))
        return spec

    odd = [("fifo", "fifo"), ("folder", "folder"), ("dev-zero", "dev-zero")]
    cases = [
        call_case(
            "plain",
            f"{HERE}:continue_with_files",
            smollm2_path,
            folder,
            plan("plain", [(c, str(files / c)) for c in plain] + odd),
            timeout=600,
        )
    ]
    # Crafted states reach llama.cpp: a few children (a model load each), every case printed as it
    # ends, so a crash names the case that did not.
    crafted_ids = sorted(crafted)
    for n in range(3):
        group = [(case_id, str(files / case_id)) for case_id in crafted_ids[n::3]]
        spec = plan(f"crafted-{n}", group)
        cases.append(call_case(f"crafted-{n}", f"{HERE}:continue_with_files", smollm2_path, folder, spec, timeout=300))
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    bad = {case_id: why for case_id, result in results.items() if (why := problems(result, codes=(0,)))}
    assert not bad, "\n".join(f"{case_id}: {why}" for case_id, why in bad.items())
    outcomes = [json.loads(line) for r in results.values() for line in r["stdout"].splitlines() if line.startswith("{")]
    assert {o["case"] for o in outcomes} == set(plain) | set(crafted) | {c for c, _ in odd}
    for outcome in outcomes:
        if outcome["case"] not in crafted:
            assert outcome["restored"] == 0 and outcome["answer"] == made_out["reference"], outcome
    # llama.cpp refuses what does not fit this model's cache; the rest at worst changes the answer.
    refused = [o["case"] for o in outcomes if o["case"] in crafted and o["restored"] == 0]
    assert {"llama-magic", "llama-n-stream", "llama-cell-count-huge", "state-cut-in-half"} <= set(refused)
