"""Adapters at run time: `chat`/`translate`/`serve --lora FILE[:SCALE]`, applied wherever the model decodes
(batched too), refused before loading when they do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece
from llamadesk.convert.lora import plan_adapter, write_adapter
from tests.conftest import PINNED_FLAGS, PINNED_LOAD, PINNED_SAMPLING_FLAGS, run_cli
from tests.fixtures import lora_adapters
from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

PROMPT = "What is the capital of France?"


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def adapters(smollm2_path, tmp_path_factory) -> dict[str, Path]:
    """GGUF adapters: one for SmolLM2 (the starter's base) and one for another model."""
    root = tmp_path_factory.mktemp("adapters")
    smollm2 = lora_adapters.make_adapter("smollm2", smollm2_hf_checkpoint(smollm2_path))
    return {
        "smollm2": write_adapter(plan_adapter(smollm2, None, "f16"), root / "smollm2-lora.gguf"),
        "tiny": write_adapter(plan_adapter(lora_adapters.make_adapter("plain"), None, "f16"), root / "tiny-lora.gguf"),
    }


def _chat(*extra: str):
    return run_cli("chat", "-m", "smollm2", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "8", *extra, PROMPT)


def test_chat_with_adapter_answers_differently_and_scale_zero_is_the_base(adapters):
    plain = _chat()
    tuned = _chat("--lora", f"{adapters['smollm2']}:1.5")
    off = _chat("--lora", f"{adapters['smollm2']}:0")
    assert plain.returncode == tuned.returncode == off.returncode == 0, tuned.stderr
    assert tuned.stdout != plain.stdout
    assert off.stdout == plain.stdout


def _refused(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llamadesk: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_adapter_for_another_base_is_refused_before_loading(adapters, gemma_path, tmp_path):
    text = tmp_path / "hello.txt"
    text.write_text("Hello.\n")
    _refused(_chat("--lora", str(adapters["tiny"])), "tiny_llama", "give the model it was trained on")
    _refused(
        run_cli("chat", "-m", str(gemma_path), "--lora", str(adapters["smollm2"]), "hi"),
        "gemma3",
        "adapter for a llama model",
    )
    _refused(run_cli("translate", "--to", "fr", "--lora", str(adapters["tiny"]), str(text)), "tiny_llama")
    _refused(run_cli("chat", "-m", str(adapters["smollm2"]), "hi"), "LoRA adapter, not a model")
    _refused(_chat("--lora", "/nowhere/adapter.gguf"), "no such file")
    _refused(_chat("--lora", f"{adapters['smollm2']}:1e9"), "scale")


def test_models_lists_adapters_with_their_base(adapters, tmp_path):
    out = tmp_path / "mine.gguf"
    made = run_cli("convert", str(lora_adapters.make_adapter("plain")), "-o", str(out))
    assert made.returncode == 0, made.stderr
    listed = run_cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {e["name"]: e for e in json.loads(listed.stdout)}
    assert entries["mine"]["kind"] == "adapter" and entries["mine"]["base"] == "tiny_llama"
    assert entries["smollm2"]["kind"] == "model"
    table = run_cli("models")
    assert "LoRA adapters" in table.stdout and "tiny_llama" in table.stdout
    # By its library name, for a model it does not fit: refused before loading, naming its base.
    _refused(_chat("--lora", "mine:0.5"), "tiny_llama")


def test_store_keeps_a_conversations_adapters_and_reads_a_damaged_column_as_none(tmp_path):
    import sqlite3

    from llamadesk.app.chat.store import ConversationSettings, Store

    store = Store(tmp_path / "c.sqlite3")
    try:
        chosen = (("/models/a.gguf", 1.0), ("/models/b.gguf", 0.5))
        conversation = store.new_conversation("t", ConversationSettings(adapters=chosen))
        assert store.conversation(conversation.id).settings.adapters == chosen
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        db.execute("UPDATE conversations SET adapters = ?", ('[["x", "not a number"]]',))
    store = Store(tmp_path / "c.sqlite3")
    try:
        assert store.conversation(conversation.id).settings.adapters == ()
    finally:
        store.close()


def test_a_conversation_saved_with_an_adapter_continues_with_it(adapters, monkeypatch):
    """`chat --save --lora A` stores A with the conversation, and `chat --continue` loads the model with A again."""
    from llamadesk.app.chat.store import Store
    from llamadesk.app.engine.llama_engine import Engine

    adapter = f"{adapters['smollm2']}:1.5"
    saved = _chat("--lora", adapter, "--save")
    assert saved.returncode == 0, saved.stderr
    store = Store()
    try:
        (conversation,) = store.conversations()
        assert conversation.settings.adapters == ((str(adapters["smollm2"]), 1.5),)
    finally:
        store.close()
    loaded = []
    real_load = Engine.load.__func__
    monkeypatch.setattr(
        Engine,
        "load",
        classmethod(
            lambda cls, path, settings, *rest: loaded.append(settings) or real_load(cls, path, settings, *rest)
        ),
    )
    continued = run_cli("chat", "--continue", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "8", PROMPT)
    assert continued.returncode == 0, continued.stderr
    assert loaded[-1].lora == ((str(adapters["smollm2"]), 1.5),)


def _served_reply(served, model: str) -> str:
    import httpx

    ask = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0, "max_tokens": 8}
    reply = httpx.post(f"{served.openai_url}/chat/completions", json=ask, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


def test_serve_applies_adapters_to_its_m_models_only(adapters):
    """`serve -m smollm2 --lora A`: smollm2 answers with A applied; a library model of another family
    (which A would not fit) still loads and answers without it; a wrong base is refused at start."""
    import httpx

    from tests.conftest import run_cli_process
    from tests.serve_process import serving

    with serving("--lora", f"{adapters['smollm2']}:1.5") as served:
        tuned = _served_reply(served, "smollm2")
        ask = {"model": "gemma3-270m", "prompt": "The capital of France is", "temperature": 0, "max_tokens": 4}
        completion = httpx.post(f"{served.openai_url}/completions", json=ask, timeout=120)
        assert completion.status_code == 200 and completion.json()["choices"][0]["text"], completion.text
        assert "smollm2-lora.gguf (scale 1.5)" in served.log_text()
    with serving() as served:
        plain = _served_reply(served, "smollm2")
    assert tuned != plain
    wrong = run_cli_process("serve", "-m", "smollm2", "--port", "1", "--lora", str(adapters["tiny"]), timeout=60)
    _refused(wrong, "tiny_llama", "give the model it was trained on")
    alone = run_cli_process("serve", "--port", "1", "--lora", str(adapters["smollm2"]), timeout=60)
    _refused(alone, "-m")


# -- the batched decoder's own context gets the adapters too ------------------------------------
# llama.cpp applies adapters per context; the batched decoder makes its own, and without them set
# there `translate` (at its default --parallel), `--candidates`, the app's translation screen and
# `serve --parallel` answered as the bare base model while naming the adapter.

GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=12)
COMPLETION_PROMPT = "The capital of France is"
TO_TRANSLATE = "Good morning, my friend.\n"


@pytest.fixture(scope="module")
def tuned_engine(smollm2_path, adapters):
    from llamadesk.app.engine.llama_engine import Engine

    settings = LoadSettings(n_ctx=1024, lora=((str(adapters["smollm2"]), 1.5),), **PINNED_LOAD)
    with Engine.load(smollm2_path, settings) as engine:
        yield engine


def _completion(engine, prompt: str) -> str:
    return "".join(e.text for e in engine.stream_completion(prompt, GREEDY) if isinstance(e, TextPiece))


def test_the_batched_decoder_answers_with_the_engines_adapter(tuned_engine, smollm2_engine):
    tuned = _completion(tuned_engine, COMPLETION_PROMPT)
    assert tuned != _completion(smollm2_engine, COMPLETION_PROMPT)  # the adapter changes the answer
    with tuned_engine.batched_decoder(1, n_ctx=512) as decoder:
        assert decoder.generate(tuned_engine.tokenize(COMPLETION_PROMPT), GREEDY).text == tuned


def _translate(*extra: str):
    common = ("translate", "--to", "fr", "--from", "en", "-m", "smollm2", *PINNED_FLAGS)
    return run_cli(*common, *extra, input=TO_TRANSLATE)


def test_translate_with_an_adapter_says_the_same_in_parallel_as_one_at_a_time(adapters):
    adapter = ("--lora", f"{adapters['smollm2']}:1.5")
    alone = _translate(*adapter, "--parallel", "1")
    batched = _translate(*adapter, "--parallel", "2")
    base = _translate("--parallel", "2")
    assert alone.returncode == batched.returncode == base.returncode == 0, batched.stderr
    assert batched.stdout == alone.stdout
    assert base.stdout != batched.stdout  # the adapter was applied, not dropped


def test_serve_parallel_replies_with_the_adapter(adapters):
    import httpx

    from tests.serve_process import serving

    def reply(*args: str) -> str:
        ask = {"model": "smollm2", "prompt": COMPLETION_PROMPT, "temperature": 0, "max_tokens": 8}
        with serving("--lora", f"{adapters['smollm2']}:1.5", *args) as served:
            answer = httpx.post(f"{served.openai_url}/completions", json=ask, timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json()["choices"][0]["text"]

    assert reply("--parallel", "2") == reply()
