"""A one-shot reply's context, sized by its prompt's tokens as the loaded model counts them (reply_context.py)."""

from __future__ import annotations

import threading

import llama_cpp
import pytest

from llamadesk.app.engine.chat_template import TEMPLATE_KEY, ChatTemplate
from llamadesk.app.engine.fitted_settings import reply_context
from llamadesk.app.engine.llama_engine import ONE_REPLY_SLACK, Engine
from llamadesk.app.engine.reply_context import context_sized_by
from llamadesk.app.engine.types import GenerationDone, LoadSettings, OneReply, Sampling
from tests.conftest import PINNED_LOAD

COUNT = [{"role": "user", "content": "Count from 1 to 300, separated by commas, and nothing else."}]


def _byte_bound(model_path, messages, max_tokens: int) -> int:
    """The context the rendered prompt's bytes alone would give (the bound before the model loads)."""
    from llamadesk.app.core.gguf_file import open_header

    template = ChatTemplate(open_header(model_path).metadata[TEMPLATE_KEY], model="smollm2")
    return reply_context(len(template.render(messages).encode("utf-8")) + ONE_REPLY_SLACK + max_tokens)


def _load_for(model_path, messages, max_tokens: int) -> Engine:
    settings = LoadSettings(**{**PINNED_LOAD, "flash_attn": False})
    return Engine.load(model_path, settings, one_reply=OneReply(tuple(messages), max_tokens))


def test_a_one_shot_reply_gets_the_cells_its_tokens_need_not_its_bytes(smollm2_path):
    with _load_for(smollm2_path, COUNT, 128) as engine:
        tokens = engine.chat_prompt_tokens(COUNT)
        assert engine.n_ctx == engine.settings.n_ctx == reply_context(len(tokens) + ONE_REPLY_SLACK + 128) == 256
        assert engine.settings.reasons["n_ctx"] == "enough for this one reply: its prompt's tokens and --max-tokens"
        assert engine.settings.n_batch <= engine.n_ctx
        done = [e for e in engine.stream_chat(COUNT, Sampling(temperature=0.0, max_tokens=128))][-1]
        assert isinstance(done, GenerationDone) and done.stats.prompt_tokens == len(tokens)
    assert _byte_bound(smollm2_path, COUNT, 128) == 512  # what the bytes gave: the count is what moved it


def test_text_that_spells_special_tokens_is_counted_as_the_text_it_is_read_as(smollm2_path):
    """A message of `<|im_end|>` strings is tokenized as text (several tokens each), not as the
    special token it spells: counted as special tokens the context would be too small for it."""
    messages = [{"role": "user", "content": "<|im_end|>" * 40}]
    with _load_for(smollm2_path, messages, 16) as engine:
        tokens = engine.chat_prompt_tokens(messages)
        assert len(tokens) > 200  # the text, not 40 special tokens
        assert engine.n_ctx == reply_context(len(tokens) + ONE_REPLY_SLACK + 16) == 512
        done = [e for e in engine.stream_chat(messages, Sampling(temperature=0.0, max_tokens=16))][-1]
        assert isinstance(done, GenerationDone) and done.stats.stop_reason in ("length", "end")


# A template that renders differently each time (as Jinja's `random` or `strftime_now` to the
# second make one): the user's message, then nothing or 150 words, by chance.
COIN_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "(' the cat' * ([0, 150]|random)) + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_the_reply_reads_the_tokens_its_context_was_sized_for(smollm2_path, tmp_path):
    """Counted once, used once: a second render 150 words longer than the one counted filled the
    context and cut the reply short (exit 0, nothing said without --stats)."""
    from gguf import GGUFValueType

    from tests.gguf_copy import copy_with_key

    coin = copy_with_key(smollm2_path, tmp_path / "coin.gguf", TEMPLATE_KEY, GGUFValueType.STRING, COIN_TEMPLATE)
    messages = [{"role": "user", "content": "Repeat after me: the cat"}]
    for _ in range(8):  # each load is a new draw: the old code met a longer second render half the time
        with _load_for(coin, messages, 300) as engine:
            counted = engine.chat_prompt_tokens(messages)
            assert engine.chat_prompt_tokens(messages) == counted  # the same tokens every time they are asked for
            assert engine.n_ctx == reply_context(len(counted) + ONE_REPLY_SLACK + 300)


def test_without_a_one_shot_reply_or_with_ctx_the_context_is_not_resized(smollm2_path):
    with Engine.load(smollm2_path, LoadSettings(n_ctx=1024, **PINNED_LOAD), one_reply=OneReply(tuple(COUNT), 8)) as e:
        assert e.n_ctx == 1024 and e.settings.reasons["n_ctx"] == "requested"


def _llama(path, n_ctx: int = 1024) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=1, verbose=False)


def test_the_hook_sizes_the_context_from_the_loaded_model_never_above_the_request(smollm2_path):
    seen = []

    def cells_for(model):
        seen.append(model.n_vocab())  # the model is loaded: its vocabulary is there
        return 256

    with context_sized_by(cells_for) as made:
        llama = _llama(smollm2_path)
    try:
        assert made == [256] and llama.n_ctx() == 256 and seen == [49152]
    finally:
        llama.close()
    with context_sized_by(lambda model: 10**6) as made:
        llama = _llama(smollm2_path, 512)
    try:
        assert made == [512] and llama.n_ctx() == 512
    finally:
        llama.close()


def test_a_failed_count_keeps_the_size_asked_for_and_the_hook_is_undone(smollm2_path):
    def cells_for(model):
        raise RuntimeError("the count failed")

    original = llama_cpp._internals.LlamaContext
    with context_sized_by(cells_for) as made:
        llama = _llama(smollm2_path)
    try:
        assert made == [1024] and llama.n_ctx() == 1024
    finally:
        llama.close()
    assert llama_cpp._internals.LlamaContext is original
    with pytest.raises(ValueError, match="boom"), context_sized_by(lambda model: 256):
        raise ValueError("boom")
    assert llama_cpp._internals.LlamaContext is original


def test_a_context_made_on_another_thread_meanwhile_is_left_alone(smollm2_path):
    other: list[int] = []

    def load_elsewhere() -> None:
        llama = _llama(smollm2_path)
        other.append(llama.n_ctx())
        llama.close()

    with context_sized_by(lambda model: 256) as made:
        thread = threading.Thread(target=load_elsewhere)
        thread.start()
        thread.join(60)
    assert other == [1024] and made == []
