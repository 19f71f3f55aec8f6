"""The prompt cache on disk (chat/prompt_cache.py, engine/sequence_state.py).

With the real SmolLM2 (pinned, greedy): a conversation continued from its cache file says exactly
what it says when decoded from scratch, and a stale, truncated, damaged or foreign file is ignored
(the answer is still the same). With a fake engine beside it (bytes only, no model): the budget,
least-recently-used eviction, budget 0, and writing off the caller's thread.
"""

from __future__ import annotations

import hashlib
import threading
import time
from array import array
from dataclasses import dataclass

import pytest

from llamadesk.app.chat.prompt_cache import (
    HEADER,
    MAGIC,
    PromptCache,
    identity_digest,
    read_header,
)
from llamadesk.app.engine.sequence_state import SequenceSnapshot
from llamadesk.app.engine.token_prefix import common_prefix
from llamadesk.app.engine.types import GenerationDone, LoadSettings, Sampling, TextPiece
from tests.conftest import PINNED_LOAD

GREEDY = Sampling(temperature=0.0, max_tokens=12, seed=0)
SYSTEM = {"role": "system", "content": "You are a helpful assistant who answers in full sentences."}
FIRST = [SYSTEM, {"role": "user", "content": "Tell me three facts about the history of Paris."}]


# -- a fake engine: the cache's bookkeeping without a model ------------------------------------


@dataclass
class BytesEngine:
    """Holds `tokens` and a state of `state_size` bytes; restore checks it got them back."""

    tokens: tuple[int, ...] = (1, 2, 3)
    state_size: int = 1000
    identity: str = "model-a"
    restored: tuple[int, ...] | None = None

    def state_identity(self) -> dict[str, object]:
        return {"model": self.identity}

    def cached_prefix(self, tokens) -> int:
        return 0

    def save_sequence(self) -> SequenceSnapshot:
        state = bytes([len(self.tokens) % 251]) * self.state_size
        return SequenceSnapshot(self.tokens, memoryview(state))

    def restore_sequence(self, tokens, state: bytearray) -> bool:
        assert bytes(state) == bytes([len(tokens) % 251]) * len(state)
        self.restored = tuple(tokens)
        return True


def file_size(engine: BytesEngine) -> int:
    return HEADER.size + 4 * len(engine.tokens) + engine.state_size


def test_a_saved_conversation_comes_back_for_the_same_model_and_prompt_only(tmp_path):
    cache = PromptCache(tmp_path, budget=10**6)
    engine = BytesEngine(tokens=(5, 6, 7, 8))
    cache.save(engine, 1)
    assert cache.flush(10)
    assert cache.restore(engine, 1, [5, 6, 7, 9, 10]) == 3  # the shared prefix
    assert engine.restored == (5, 6, 7, 8)  # all of it is loaded; generation drops what differs
    assert cache.restore(engine, 2, [5, 6, 7]) == 0  # another conversation has no file
    assert cache.restore(BytesEngine(identity="model-b"), 1, [5, 6, 7]) == 0  # another model's is not used
    assert cache.restore(engine, 1, [9, 9, 9]) == 0  # nothing in common: the file is not even read
    usage = cache.usage()
    assert (usage.files, usage.used) == (1, file_size(engine))


def test_budget_zero_writes_nothing(tmp_path):
    folder = tmp_path / "cache"
    cache = PromptCache(folder, budget=0)
    assert not cache.enabled
    cache.save(BytesEngine(), 1)
    assert cache.flush(10)
    assert not folder.exists()
    # What an earlier, larger budget left is not used either: 0 means off.
    earlier, engine = PromptCache(folder, budget=10**6), BytesEngine()
    earlier.save(engine, 1)
    assert earlier.flush(10) and len(list(folder.glob("*.kvc"))) == 1
    assert cache.restore(engine, 1, list(engine.tokens)) == 0 and engine.restored is None


def test_opening_the_cache_with_a_smaller_budget_removes_files_down_to_it(tmp_path):
    # prompt_cache_mb 0 ("0 keeps nothing") after the cache held files left them on disk for good.
    engine = BytesEngine(state_size=10_000)
    earlier = PromptCache(tmp_path, budget=10**6)
    for conversation in (1, 2, 3):
        earlier.save(engine, conversation)
        assert earlier.flush(10)
        time.sleep(0.02)  # distinct modification times
    (tmp_path / "notes.txt").write_text("not the cache's")
    smaller = PromptCache(tmp_path, budget=int(2.5 * file_size(engine)))
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.kvc")) == ["c2", "c3"]  # 1 was least recently used
    assert smaller.usage().used <= smaller.budget
    looking = PromptCache(tmp_path, budget=0, trim=False)  # doctor reports; looking removes nothing
    assert looking.usage().files == 2
    PromptCache(tmp_path, budget=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_least_recently_used_file_goes_first_and_one_larger_than_the_budget_is_not_kept(tmp_path):
    engine = BytesEngine(state_size=10_000)
    cache = PromptCache(tmp_path, budget=int(2.5 * file_size(engine)))
    for conversation in (1, 2):
        cache.save(engine, conversation)
        assert cache.flush(10)
        time.sleep(0.02)  # distinct modification times
    assert cache.restore(engine, 1, list(engine.tokens)) == 3  # 1 is now the most recently used
    time.sleep(0.02)
    cache.save(engine, 3)
    assert cache.flush(10)
    names = sorted(p.name.split("-")[0] for p in tmp_path.glob("*.kvc"))
    assert names == ["c1", "c3"]  # 2 was least recently used
    assert cache.usage().used <= cache.budget
    # Rewriting a conversation's file replaces it, never counts it twice.
    cache.save(engine, 3)
    assert cache.flush(10)
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.kvc")) == ["c1", "c3"]
    huge = BytesEngine(state_size=cache.budget)
    cache.save(huge, 4)
    assert cache.flush(10)
    assert not list(tmp_path.glob("c4-*"))


def test_saving_returns_before_the_file_is_written(tmp_path, monkeypatch):
    """The copy is the caller's; hashing and writing happen in the cache's own thread."""
    cache = PromptCache(tmp_path, budget=10**6)
    release = threading.Event()
    writer_threads: list[str] = []
    real_write = cache._write

    def slow_write(*args):
        writer_threads.append(threading.current_thread().name)
        release.wait(10)
        real_write(*args)

    monkeypatch.setattr(cache, "_write", slow_write)
    started = time.perf_counter()
    cache.save(BytesEngine(), 1)
    assert time.perf_counter() - started < 1.0
    assert not list(tmp_path.glob("*.kvc"))
    assert not cache.flush(timeout=0.2)  # still writing
    release.set()
    assert cache.flush(10)
    assert writer_threads == ["prompt-cache-writer"] and len(list(tmp_path.glob("*.kvc"))) == 1
    cache.close(10)


def test_forget_removes_a_deleted_conversations_files(tmp_path):
    cache = PromptCache(tmp_path, budget=10**6)
    cache.save(BytesEngine(), 1)
    cache.save(BytesEngine(), 11)
    assert cache.flush(10)
    cache.forget(1)
    assert [p.name.split("-")[0] for p in tmp_path.glob("*.kvc")] == ["c11"]


def test_a_conversation_keeps_only_the_cache_of_the_model_and_settings_it_used_last(tmp_path):
    # A file made under another identity (the model file changed, another KV type, an upgrade) can
    # never be read again; it stayed until the budget filled, and doctor counted it.
    cache = PromptCache(tmp_path, budget=10**6)
    cache.save(BytesEngine(identity="before"), 1)
    cache.save(BytesEngine(identity="before"), 11)
    assert cache.flush(10)
    cache.save(BytesEngine(identity="after"), 1)
    assert cache.flush(10)
    assert sorted(p.name for p in tmp_path.glob("*.kvc")) == sorted(
        [
            cache.path_for(1, identity_digest({"model": "after"})).name,
            cache.path_for(11, identity_digest({"model": "before"})).name,
        ]
    )


def test_headers_that_do_not_add_up_are_refused():
    tokens, state = 3, 10
    good = HEADER.pack(MAGIC, b"i" * 32, 1, tokens, state, b"d" * 32)
    size = HEADER.size + 4 * tokens + state
    assert read_header(good, size) is not None
    assert read_header(good, size - 1) is None  # cut short
    assert read_header(good, size + 1) is None  # something appended
    assert read_header(good[:-1], size) is None
    assert read_header(HEADER.pack(b"LDKVC02\n", b"i" * 32, 1, tokens, state, b"d" * 32), size) is None
    assert read_header(HEADER.pack(MAGIC, b"i" * 32, 1, 0, state, b"d" * 32), HEADER.size + state) is None
    assert read_header(HEADER.pack(MAGIC, b"i" * 32, 1, 2**31, state, b"d" * 32), HEADER.size + 2**33 + state) is None


# -- the real model ----------------------------------------------------------------------------


def answer(engine, messages) -> tuple[str, int]:
    text, cached = [], 0
    for event in engine.stream_chat(messages, GREEDY):
        if isinstance(event, TextPiece):
            text.append(event.text)
        elif isinstance(event, GenerationDone):
            cached = event.stats.cached_prompt_tokens
    return "".join(text), cached


def forget_in_memory(engine) -> None:
    """As after a restart: the engine holds nothing of the conversation."""
    answer(engine, [{"role": "user", "content": "Unrelated."}])


@pytest.fixture(scope="module")
def engine(smollm2_path):
    from llamadesk.app.engine.llama_engine import Engine

    with Engine.load(smollm2_path, LoadSettings(n_ctx=1024, **PINNED_LOAD)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def conversation(engine, tmp_path_factory):
    """A first reply saved to a cache file, the next question, and its answer decoded from scratch."""
    folder = tmp_path_factory.mktemp("prompt-cache")
    cache = PromptCache(folder, budget=10**9)
    reply, _ = answer(engine, FIRST)
    cache.save(engine, 7)
    assert cache.flush(30) and cache.problem is None
    following = [*FIRST, {"role": "assistant", "content": reply}, {"role": "user", "content": "And of Lyon?"}]
    forget_in_memory(engine)
    reference, cached = answer(engine, following)
    assert cached < 10  # decoded from scratch
    (path,) = folder.glob("c7-*.kvc")
    return folder, path, path.read_bytes(), following, reference


def continue_from(engine, folder, following) -> tuple[int, str, int, str | None]:
    forget_in_memory(engine)
    cache = PromptCache(folder, budget=10**9)
    restored = cache.restore(engine, 7, engine.chat_prompt_tokens(following))
    text, cached = answer(engine, following)
    return restored, text, cached, cache.problem


def test_a_continued_conversation_says_what_it_says_without_the_cache(engine, conversation):
    folder, path, original, following, reference = conversation
    path.write_bytes(original)
    restored, text, cached, problem = continue_from(engine, folder, following)
    prompt = len(engine.chat_prompt_tokens(following))
    assert problem is None
    assert restored > prompt // 2 and cached >= restored  # most of the prompt came from the file
    assert text == reference


def test_a_file_for_an_earlier_version_of_the_conversation_gives_only_what_still_matches(engine, conversation):
    """Stale: the first question was edited since the file was written."""
    folder, path, original, following, reference = conversation
    path.write_bytes(original)
    edited = [SYSTEM, {"role": "user", "content": "Tell me three facts about the history of Rome."}, *following[2:]]
    forget_in_memory(engine)
    fresh, _ = answer(engine, edited)
    restored, text, _, _ = continue_from(engine, folder, edited)
    still_matching = common_prefix(engine.chat_prompt_tokens(FIRST), engine.chat_prompt_tokens(edited))
    assert restored == still_matching > 10  # the system prompt and the question up to "Rome"
    assert text == fresh


@pytest.mark.parametrize(
    "damage",
    ["truncated-in-the-state", "truncated-in-the-header", "one-byte-of-state-flipped", "one-token-changed", "empty"],
)
def test_a_damaged_file_is_ignored_removed_and_the_answer_is_the_same(engine, conversation, damage):
    folder, path, original, following, reference = conversation
    data = bytearray(original)
    if damage == "truncated-in-the-state":
        data = data[: len(data) - 1000]
    elif damage == "truncated-in-the-header":
        data = data[: HEADER.size - 5]
    elif damage == "one-byte-of-state-flipped":
        data[len(data) // 2] ^= 0x10
    elif damage == "one-token-changed":  # late in the prompt: the file is worth reading, and its checksum fails
        n_tokens = HEADER.unpack_from(data)[3]
        data[HEADER.size + 4 * (n_tokens - 20)] ^= 0x01
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    restored, text, cached, problem = continue_from(engine, folder, following)
    assert restored == 0 and cached < 10
    assert problem is not None and "ignored" in problem
    assert not path.exists()  # never read again
    assert text == reference


def test_a_file_of_another_conversation_or_settings_is_ignored(engine, conversation):
    """Foreign: right name, but the header says another conversation, or another model's settings."""
    folder, path, original, following, reference = conversation
    header = bytearray(original[: HEADER.size])
    magic, identity, _, n_tokens, n_state, digest = HEADER.unpack(header)
    path.write_bytes(HEADER.pack(magic, identity, 8, n_tokens, n_state, digest) + original[HEADER.size :])
    assert continue_from(engine, folder, following)[:2] == (0, reference)
    other = identity_digest({**engine.state_identity(), "kv_cache_type": "q8_0"})
    path.write_bytes(HEADER.pack(magic, other, 7, n_tokens, n_state, digest) + original[HEADER.size :])
    assert continue_from(engine, folder, following)[:2] == (0, reference)


def test_another_models_state_under_a_sound_header_is_refused_by_llama_cpp(engine, conversation, gemma_path):
    """The deepest foreign file: header, identity and checksum all right, the state from Gemma 3."""
    from llamadesk.app.engine.llama_engine import Engine

    folder, path, original, following, reference = conversation
    with Engine.load(gemma_path, LoadSettings(n_ctx=512, **PINNED_LOAD)) as gemma:
        for _ in gemma.stream_completion("The history of Paris", Sampling(temperature=0.0, max_tokens=4)):
            pass
        foreign = gemma.save_sequence()
    assert foreign is not None
    tokens = array("i", engine.chat_prompt_tokens(following))
    state = bytes(foreign.state)
    digest = hashlib.sha256(tokens.tobytes() + state).digest()
    identity = identity_digest(engine.state_identity())
    path.write_bytes(HEADER.pack(MAGIC, identity, 7, len(tokens), len(state), digest) + tokens.tobytes() + state)
    restored, text, cached, problem = continue_from(engine, folder, following)
    assert restored == 0 and cached < 10
    assert problem is not None and "did not accept" in problem
    assert text == reference


def test_a_file_written_with_one_context_size_serves_another(conversation, smollm2_path):
    """The context size is not part of what a file is for: the one llamadesk picks moves with free memory."""
    from llamadesk.app.engine.llama_engine import Engine

    folder, path, original, following, reference = conversation
    path.write_bytes(original)
    with Engine.load(smollm2_path, LoadSettings(n_ctx=2048, **PINNED_LOAD)) as larger:
        restored, text, _, problem = continue_from(larger, folder, following)
    assert problem is None and restored > 0
    assert text == reference


def test_a_state_saved_without_an_adapter_is_not_for_the_model_with_one(engine, tmp_path):
    """A LoRA adapter changes every layer's keys and values: the same model with an adapter, or
    with the same adapter at another scale, is another identity (so its cache file is another)."""
    from llamadesk.app.engine.sequence_state import state_identity

    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")  # only its file identity counts here
    plain = identity_digest(state_identity(engine.summary, engine.settings))
    assert plain == identity_digest(engine.state_identity())
    with_adapter = identity_digest(state_identity(engine.summary, engine.settings, [(adapter, 1.0)]))
    at_half = identity_digest(state_identity(engine.summary, engine.settings, [(adapter, 0.5)]))
    assert len({plain, with_adapter, at_half}) == 3
