"""The engine: the only code in llamadesk that touches llama_cpp.

One Engine holds one loaded model. It is used from one thread at a time (the thread that loaded
it, or the UI's single worker); only `request_stop` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import llama_cpp
import llama_cpp.llama_chat_format
import numpy as np
from gguf import GGMLQuantizationType

from llamadesk.app.core.errors import BadInputError, LlamadeskError, PromptTooLong
from llamadesk.app.core.gguf_adapter import AdapterSummary, check_adapter_fits, is_adapter
from llamadesk.app.core.gguf_file import ADVICE, GGUFSummary, check_model, open_header, summarize
from llamadesk.app.core.machine import MachineFacts, machine_facts
from llamadesk.app.core.rpc_endpoints import parse_endpoints
from llamadesk.app.engine.batch_invariance import disable_tiled_products, weights_not_repacked
from llamadesk.app.engine.batched_decoder import BatchedDecoder
from llamadesk.app.engine.build_info import build_info
from llamadesk.app.engine.chat_template import TEMPLATE_KEY, ChatTemplate
from llamadesk.app.engine.context_cells import usable_context
from llamadesk.app.engine.continuation_score import continuation_logprobs
from llamadesk.app.engine.devices import backend_devices
from llamadesk.app.engine.fitted_settings import (
    ONE_REPLY_REASON,
    OffloadTarget,
    choose_settings,
    offload_target,
    reply_context,
)
from llamadesk.app.engine.llama_log import use_default_log
from llamadesk.app.engine.load_check import llama_cpp_refusal
from llamadesk.app.engine.lora_context import LoadedAdapter, set_adapters_on_context
from llamadesk.app.engine.omp_pool import release_worker_threads
from llamadesk.app.engine.output_tiles import output_matrix_type, output_row_tile
from llamadesk.app.engine.prefix_shelf import PrefixShelf
from llamadesk.app.engine.reply_context import context_sized_by
from llamadesk.app.engine.rpc import add_servers
from llamadesk.app.engine.sequence_state import SequenceSnapshot, capture, restore, state_identity
from llamadesk.app.engine.special_text import prompt_tokens
from llamadesk.app.engine.stop_flag import StopFlag
from llamadesk.app.engine.token_loop import TokenLoop
from llamadesk.app.engine.token_prefix import common_prefix
from llamadesk.app.engine.token_sampler import TokenText, token_logprob
from llamadesk.app.engine.types import (
    ActiveSettings,
    BenchResult,
    ChatMessage,
    GenerationDone,
    GenerationStats,
    LoadSettings,
    OneReply,
    Sampling,
    StopReason,
    StreamEvent,
    TextPiece,
    generation_rate,
)
from llamadesk.app.engine.utf8_stream import Utf8Stream

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's "pick a random seed"
# Before the model loads, a one-shot reply's context is bounded by its rendered prompt's bytes
# (every token covers at least one byte, a special token its whole text, plus BOS and a
# SentencePiece leading space): that bound decides whether the reply gets a context of its own and
# the settings chosen for it. Once the vocabulary is loaded the prompt's tokens are counted
# (reply_context.py) and the same slack leaves prompt lookup's guesses room past the last token.
ONE_REPLY_SLACK = 64


def ggml_type_id(name: str) -> int:
    """A KV cache type name ("f16", "q8_0") as the ggml type id llama.cpp's type_k/type_v take."""
    # gguf's enum mirrors ggml's type ids, and it covers bf16, which llama_cpp does not export.
    return int(GGMLQuantizationType[name.upper()])


def current_offload_target(machine: MachineFacts) -> OffloadTarget | None:
    """The GPU memory this build can offload to now, or None for a CPU-only build."""
    return offload_target(build_info().gpu_offload, backend_devices(), machine)


class _UnusedChatFormatter:
    """Stands in for llama-cpp-python's Jinja2ChatFormatter while a model loads (see below)."""

    def __init__(self, **_: object) -> None:
        pass

    def to_chat_handler(self):
        def refuse(*_: object, **__: object) -> None:
            raise LlamadeskError("llamadesk renders chat templates itself (app/engine/chat_template.py)")

        return refuse


_LOADING = threading.Lock()


@contextlib.contextmanager
def _chat_templates_left_to_llamadesk() -> Iterator[None]:
    """While llama_cpp.Llama() runs, it does not compile the GGUF's chat templates.

    llama-cpp-python compiles every chat template in the file as it loads a model, with Jinja's
    constant folding and none of chat_template.py's limits: `{{ 9**9**9 }}` there is a CPU bomb no
    one can stop, `{{ 'x' * 10**10 }}` a MemoryError, a syntax error a traceback from the load.
    llamadesk never uses those compiled handlers (it renders with chat_template.py), so the class
    that would compile them is swapped for a stand-in for the duration; the lock keeps two loads
    from interleaving the swap.
    """
    module = llama_cpp.llama_chat_format
    with _LOADING:
        original = module.Jinja2ChatFormatter
        module.Jinja2ChatFormatter = _UnusedChatFormatter  # type: ignore[assignment,misc]
        try:
            yield
        finally:
            module.Jinja2ChatFormatter = original


def _require_utf8_name(path: Path) -> None:
    """llama.cpp takes file names as UTF-8: one that is not (a Latin-1 name Python keeps as lone
    surrogates) was an internal error when handed over."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise BadInputError(
            f"{os.fsencode(path)!r}: the file's name is not UTF-8, and llama.cpp opens files by UTF-8 names; "
            "rename it (convmv converts names)"
        ) from None


def _apply_adapters(llama: llama_cpp.Llama, adapters: list[tuple[AdapterSummary, float]]) -> list[LoadedAdapter]:
    """Load LoRA adapters onto the model and set them, with their scales, on its context.

    llama.cpp owns them from then on: they are freed with the model. The handles come back for
    the other contexts the engine makes (batched_decoder), which need them set too (lora_context.py).
    """
    loaded: list[LoadedAdapter] = []
    for adapter, scale in adapters:
        handle = llama_cpp.llama_adapter_lora_init(llama._model.model, str(adapter.path).encode("utf-8"))
        if not handle:
            llama.close()
            raise BadInputError(f"llama.cpp could not load the adapter {adapter.path}; convert it again")
        loaded.append((handle, scale))
    if not set_adapters_on_context(llama._ctx.ctx, loaded):
        llama.close()
        raise LlamadeskError("llama.cpp could not apply the adapters to the model's context")
    return loaded


def _set_template_tokens(chat_template: ChatTemplate, model: llama_cpp._internals.LlamaModel) -> None:
    """The template's bos_token and eos_token, as the model spells them."""
    eos, bos = model.token_eos(), model.token_bos()
    chat_template.set_special_tokens(
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        eos_token=model.token_get_text(eos) if eos != -1 else "",
    )


def _chat_tokens(
    chat_template: ChatTemplate,
    messages: Sequence[ChatMessage],
    tokenize,
    spells_special: dict[str, bool],
    model: llama_cpp._internals.LlamaModel,
) -> list[int]:
    """The tokens the model sees for `messages`: the template's markup as special tokens, the
    messages' own text as text (special_text.py), BOS first where the model wants one."""
    prompt = chat_template.render(messages)
    texts = [i for i, m in enumerate(messages) if isinstance(m.get("content"), str)]  # messages with text
    contents = [messages[i]["content"] for i in texts]

    def render_replaced(replaced: dict[int, str]) -> str:
        changed = [dict(m) for m in messages]
        for index, text in replaced.items():
            changed[texts[index]]["content"] = text
        return chat_template.render(changed)

    tokens = prompt_tokens(prompt, contents, tokenize, spells_special, render_replaced)
    # The template writes BOS itself when the model wants one; never add a second.
    bos = model.token_bos()
    if model.add_bos_token() and bos != -1 and (not tokens or tokens[0] != bos):
        tokens.insert(0, bos)
    return tokens


class _OneReplySizing:
    """cells_for (reply_context.py): the context one reply needs, its prompt counted in the model's
    tokens. The tokens counted are kept for the reply itself (`tokens`): a template that renders
    differently each time (Jinja's `random`, `strftime_now` to the second) rendered longer for the
    reply than for the count, and the reply stopped at a context sized for the shorter render."""

    def __init__(self, chat_template: ChatTemplate, one_reply: OneReply):
        self._chat_template = chat_template
        self._one_reply = one_reply
        self.tokens: list[int] | None = None

    def __call__(self, model: llama_cpp._internals.LlamaModel) -> int:
        def tokenize(text: str, add_bos: bool = True, special: bool = False) -> list[int]:
            return model.tokenize(text.encode("utf-8"), add_bos, special)

        _set_template_tokens(self._chat_template, model)
        self.tokens = _chat_tokens(self._chat_template, self._one_reply.messages, tokenize, {}, model)
        return reply_context(len(self.tokens) + ONE_REPLY_SLACK + self._one_reply.max_tokens)


class Engine:
    """A loaded model that streams replies, stops on request and reports what it costs."""

    def __init__(
        self,
        llama: llama_cpp.Llama,
        summary: GGUFSummary,
        settings: ActiveSettings,
        chat_template: ChatTemplate | None = None,
    ):
        self._llama = llama
        self.summary = summary
        self.settings = settings
        self._stop = StopFlag()
        # llama.cpp contexts are not thread-safe: one reply (or benchmark) at a time.
        self._busy = threading.Lock()
        self._closed = False
        self.adapters: list[tuple[AdapterSummary, float]] = []  # applied LoRA adapters and their scales
        self._loaded_adapters: list[LoadedAdapter] = []  # the same, as llama.cpp handles for other contexts
        self.output_tile = 1  # logits rows the output product takes per sweep (output_tiles.py)
        self._stop.install(self._llama._ctx.ctx)  # a long prompt stops mid-decode
        self._token_loop = TokenLoop(llama)
        self._shelf = PrefixShelf(llama)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama._model.model)
        self._token_text = TokenText(self._vocab)  # llama.detokenize([token]), without its per-call setup
        self._chat_template = chat_template
        if chat_template is not None:
            _set_template_tokens(chat_template, llama._model)
        # The last conversation tokenized and its tokens: the UI counts a conversation's tokens to
        # fit it into the context, then streams that same conversation; templating and tokenizing
        # it twice would cost ~5 ms per 3,000 tokens of time to first token (more on a Pi).
        self._last_tokenized: tuple[list[ChatMessage], list[int]] | None = None
        # Which message texts spell a special token (special_text.py), looked at once each.
        self._spells_special: dict[str, bool] = {}

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: Path | str, requested: LoadSettings = LoadSettings(), one_reply: OneReply | None = None
    ) -> Engine:
        """Validate the GGUF (its chat template too), choose settings for this machine and load it.

        `one_reply`: the load is for that reply alone, so the context (unless --ctx gives one) is
        sized for it rather than for a conversation (fitted_settings: context_ceiling)."""
        path = Path(path)
        for file in (path, *(Path(adapter) for adapter, _ in requested.lora)):
            _require_utf8_name(file)
        header = open_header(path)
        if is_adapter(header):
            raise BadInputError(f"{path} is a LoRA adapter, not a model; apply it to its base with --lora")
        summary = summarize(path, header)
        check_model(path, header, summary.architecture)  # what llama.cpp would abort on, refused first
        adapters = [(check_adapter_fits(Path(p), path, header), float(scale)) for p, scale in requested.lora]
        # Checked (and compiled) before llama.cpp spends seconds loading the weights.
        source = header.metadata.get(TEMPLATE_KEY)
        chat_template = ChatTemplate(source, model=summary.name) if source not in (None, "") else None
        if one_reply is not None and chat_template is not None and requested.n_ctx is None:
            rendered = chat_template.render(list(one_reply.messages))
            ceiling = len(rendered.encode("utf-8")) + ONE_REPLY_SLACK + one_reply.max_tokens
            requested = replace(requested, context_ceiling=ceiling)
        if requested.rpc_servers:
            add_servers(parse_endpoints(requested.rpc_servers))
        # Watching the CPUs takes 0.2 s and only chooses the thread count: skipped when it is given.
        machine = machine_facts(measure_busy=requested.n_threads is None)
        target = current_offload_target(machine)  # asks the backend's devices: once, for both choices below
        settings = choose_settings(summary, machine, target, requested)
        kv_type = ggml_type_id(settings.kv_cache_type)
        use_default_log()
        if settings.batch_invariant:
            disable_tiled_products()
        repacking = weights_not_repacked() if settings.batch_invariant else contextlib.nullcontext()
        one_reply_sized = settings.reasons.get("n_ctx", "").startswith(ONE_REPLY_REASON)
        sizer = None
        if one_reply_sized and chat_template is not None and one_reply is not None:
            sizer = _OneReplySizing(chat_template, one_reply)
        sizing, asked_cells = contextlib.nullcontext([]), settings.n_ctx
        if sizer is not None:
            # Asked for what a conversation would get in this memory, and cut to the count once the
            # vocabulary is there. The bytes bound alone falls short only when the prompt changes
            # between two renders (see _OneReplySizing), and the count must win then.
            unbounded = replace(requested, context_ceiling=None)
            asked_cells = choose_settings(summary, machine, target, unbounded).n_ctx
            sizing = context_sized_by(sizer)
        try:
            with _chat_templates_left_to_llamadesk(), repacking, sizing:
                llama = llama_cpp.Llama(
                    model_path=str(summary.path),
                    n_ctx=asked_cells,
                    n_batch=settings.n_batch,
                    n_ubatch=settings.n_batch,
                    n_threads=settings.n_threads,
                    n_threads_batch=settings.n_threads,
                    n_gpu_layers=settings.n_gpu_layers,
                    flash_attn=settings.flash_attn,
                    type_k=kv_type,
                    type_v=kv_type,
                    use_mmap=settings.use_mmap,
                    use_mlock=settings.use_mlock,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as err:
            refusal = llama_cpp_refusal(summary.path)  # the model, not the context: llama.cpp says why
            if refusal is not None:
                raise BadInputError(f"{summary.path}: llama.cpp cannot load it: {refusal}; {ADVICE}") from err
            if "llama_context" in str(err):  # the model loaded; its context did not (memory, most often)
                raise LlamadeskError(
                    f"llama.cpp loaded {summary.path} but could not create a context of {settings.n_ctx} tokens "
                    "for it (too little memory for its buffers?); use a smaller --ctx"
                ) from err
            raise LlamadeskError(
                f"llama.cpp could not load {summary.path} ({err}); "
                "check that it is a complete model for this llama.cpp version"
            ) from err
        if sizer is not None and llama.n_ctx() != settings.n_ctx:  # the count's size, as llama.cpp made it
            n_tokens = llama.n_ctx()
            settings = replace(
                settings,
                n_ctx=n_tokens,
                n_batch=min(settings.n_batch, n_tokens),
                reasons={**settings.reasons, "n_ctx": f"{ONE_REPLY_REASON}: its prompt's tokens and --max-tokens"},
            )
        loaded = _apply_adapters(llama, adapters) if adapters else []
        engine = cls(llama, summary, settings, chat_template)
        if sizer is not None and sizer.tokens is not None and one_reply is not None:
            # The reply reads the very tokens its context was sized for (see _OneReplySizing).
            engine._last_tokenized = ([dict(message) for message in one_reply.messages], list(sizer.tokens))
        engine.output_tile = output_row_tile(
            output_matrix_type(header),
            build_info().cpu_features,
            output_on_cpu=settings.n_gpu_layers == 0 or build_info().backend == "CPU",
        )
        engine.adapters = [(a, scale) for a, scale in adapters]
        engine._loaded_adapters = loaded
        return engine

    def close(self) -> None:
        """Free the model and its context now (memory comes back to the OS)."""
        if not self._closed:
            self._closed = True
            self._token_loop.close()
            self._shelf.clear()
            self._llama.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stopping ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop the reply in progress as soon as possible; safe from any thread and from a signal handler.

        A chat template still rendering stops too: the call that rendered it raises Interrupted.
        """
        self._stop.set()
        if self._chat_template is not None:
            self._chat_template.interrupt()

    # -- tokens -----------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return usable_context(self._llama)

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            # Python keeps bytes that are not UTF-8 (a Latin-1 argument, a JSON "\ud800") as lone
            # surrogates, which no encoder takes: bad input, not an internal error.
            raise BadInputError(
                "the text holds bytes that are not UTF-8; give it as UTF-8 (iconv converts it)"
            ) from None
        return self._llama.tokenize(data, add_bos=add_bos, special=special)

    @property
    def has_chat_template(self) -> bool:
        return self._chat_template is not None

    def position_logits(self, tokens: Sequence[int]) -> np.ndarray:
        """The logits after each prefix of `tokens` (one row per position), from an empty context.

        For checking a model against a reference (convert --verify); tokens are decoded one at a
        time so every position's logits are kept without loading the model with logits_all.
        """
        with self._exclusive():
            llama = self._llama
            llama.reset()
            rows = []
            n_vocab = llama.n_vocab()
            for token in tokens:
                llama.eval([token])
                # eval keeps no logits unless the model was loaded with logits_all: read the
                # context's last-token logits before the next decode overwrites them.
                rows.append(np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(n_vocab,)).astype(np.float32))
            llama.reset()
            return np.stack(rows)

    def continuation_logprobs(self, prompt: Sequence[int], continuation: Sequence[int]) -> list[float]:
        """log p(each token of `continuation` | `prompt` and the tokens before it) (continuation_score.py)."""
        if not prompt or not continuation:
            raise BadInputError("both the prompt and the text to score need at least one token")
        if len(prompt) + len(continuation) > self.n_ctx:
            raise BadInputError(
                f"the prompt and the text to score are {len(prompt) + len(continuation)} tokens but the "
                f"context holds {self.n_ctx}; shorten them or load the model with a larger --ctx"
            )
        with self._exclusive():
            self._stop.clear()
            return continuation_logprobs(self._llama, prompt, continuation)

    def chat_prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The tokens the model sees for a conversation, through the model's own chat template.

        Raises BadInputError when the template fails or refuses the conversation (see
        chat_template.py), and Interrupted when request_stop() comes while it renders.
        """
        if self._chat_template is None:
            raise BadInputError(
                f"{self.summary.name} has no chat template (it is a base model); "
                "use it for completion or translation, or pick a chat model"
            )
        last = self._last_tokenized  # read once: callers on other threads (serve --parallel) replace it
        if last is not None and last[0] == list(messages):
            return list(last[1])
        tokens = _chat_tokens(self._chat_template, messages, self.tokenize, self._spells_special, self._llama._model)
        self._last_tokenized = ([dict(message) for message in messages], list(tokens))  # copies: callers may mutate
        return tokens

    # -- the KV cache between runs (engine/sequence_state.py, chat/prompt_cache.py) ---------

    def state_identity(self) -> dict[str, object]:
        """What a saved KV state of this engine is valid for (model file, KV-shaping settings)."""
        return state_identity(self.summary, self.settings, [(a.path, scale) for a, scale in self.adapters])

    def cached_prefix(self, tokens: Sequence[int]) -> int:
        """How many of `tokens`, from the first, the KV cache holds now (reused, not decoded)."""
        return common_prefix(self._llama.input_ids[: self._llama.n_tokens].tolist(), tokens)

    def save_sequence(self) -> SequenceSnapshot | None:
        """A copy of the conversation's KV cache and its tokens (None when it holds nothing)."""
        with self._exclusive():
            return capture(self._llama)

    def restore_sequence(self, tokens: Sequence[int], state: bytearray) -> bool:
        """Load a saved KV cache; True when it holds `tokens` now, else the cache is empty."""
        with self._exclusive():
            return restore(self._llama, list(tokens), state)

    # -- generation -------------------------------------------------------------------------

    def stream_chat(self, messages: Sequence[ChatMessage], sampling: Sampling = Sampling()) -> Iterator[StreamEvent]:
        """Stream the assistant's reply to `messages`; ends with one GenerationDone."""
        return self.stream_tokens(self.chat_prompt_tokens(messages), sampling)

    def stream_completion(self, prompt: str, sampling: Sampling = Sampling()) -> Iterator[StreamEvent]:
        """Stream the continuation of a plain text prompt (base models)."""
        return self.stream_tokens(self.tokenize(prompt, add_bos=True, special=False), sampling)

    def stream_tokens(
        self, prompt_tokens: list[int], sampling: Sampling = Sampling(), *, shelve: bool = False
    ) -> Iterator[StreamEvent]:
        """Generate after `prompt_tokens`, reusing whatever prefix is already in the KV cache.

        `shelve`: a caller that alternates between two long prompts (translation's few-shot
        prompt and its strict retry) keeps the other prompt's cache aside (prefix_shelf.py).
        """
        n_ctx = self.n_ctx
        if not prompt_tokens:
            # llama.cpp has nothing to decode (llama-cpp-python asserts on it): nothing to answer.
            raise BadInputError("the prompt is empty (no tokens); give the model some text to continue")
        if len(prompt_tokens) >= n_ctx:
            raise PromptTooLong(
                f"the prompt is {len(prompt_tokens)} tokens but the context holds {n_ctx}; "
                "shorten it or load the model with a larger --ctx"
            )
        with self._exclusive():
            if shelve:
                self._shelf.prepare(prompt_tokens)
            yield from self._generate(prompt_tokens, sampling, n_ctx)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One use of the model at a time; after it, this thread lets go of llama.cpp's OpenMP
        workers, which would otherwise slow other threads' decodes (omp_pool.py)."""
        if not self._busy.acquire(blocking=False):
            raise LlamadeskError("the model is busy with another reply; stop that one first")
        try:
            yield
        finally:
            self._busy.release()
            release_worker_threads()

    def _generate(self, prompt_tokens: list[int], sampling: Sampling, n_ctx: int) -> Iterator[StreamEvent]:
        self._stop.clear()
        llama = self._llama
        llama.set_seed(sampling.seed if sampling.seed is not None else DEFAULT_SEED)
        cached = common_prefix(llama.eval_tokens, prompt_tokens)
        decoder = Utf8Stream()
        started = time.perf_counter()
        first_token_at: float | None = None
        generated = 0
        reason: StopReason = "end"
        ended_on_eog = False
        budget = sampling.max_tokens if sampling.max_tokens is not None else n_ctx
        pending_logprob, pending_tokens = 0.0, 0  # for tokens not yet shown as text (a split character)
        token_text, vocab, stop = self._token_text, self._vocab, self._stop
        n_vocab = llama.n_vocab()

        tokens = self._token_loop.generate(prompt_tokens, sampling)  # token_loop.py: llama.generate, leaner
        try:
            while True:
                if stop.is_set():
                    reason = "stopped"
                    break
                try:
                    token = next(tokens)
                except StopIteration:
                    break
                except RuntimeError:
                    # llama_decode returned "aborted": the stop came mid-decode.
                    if stop.is_set():
                        reason = "stopped"
                        break
                    raise
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    ended_on_eog = True
                    break
                generated += 1
                if sampling.logprobs:
                    pending_logprob += token_logprob(llama.ctx, -1, n_vocab, token)
                    pending_tokens += 1
                text = decoder.feed(token_text(token))
                if text:
                    if sampling.logprobs:
                        yield TextPiece(text, pending_logprob, pending_tokens)
                        pending_logprob, pending_tokens = 0.0, 0
                    else:
                        yield TextPiece(text)
                if generated >= budget:
                    reason = "length"
                    break
                if llama.n_tokens >= n_ctx:
                    reason = "context"
                    break
        finally:
            tokens.close()
        decoder.flush()  # a character the reply was cut inside of is dropped, never shown as U+FFFD
        finished = time.perf_counter()
        yield GenerationDone(
            _stats(
                len(prompt_tokens),
                cached,
                generated,
                started,
                first_token_at,
                finished,
                llama.n_tokens,
                n_ctx,
                reason,
                ended_on_eog,
            )
        )

    # -- several sequences at once ------------------------------------------------------------

    def batched_decoder(
        self, n_sequences: int, n_ctx: int | None = None, cells_per_sequence: int | None = None
    ) -> BatchedDecoder:
        """A decoder advancing up to `n_sequences` sequences per llama_decode on this model (batched_decoder.py).

        It has its own context (`n_ctx` cells shared by all sequences; default: this engine's), so
        it runs beside this engine's single stream; close() it to free that memory. The engine's
        LoRA adapters are set on that context too: llama.cpp applies them per context.

        An engine loaded batch-invariant gets a decoder whose sequences come out as this engine's
        single stream would give them: each sequence has a stream of its own, of
        `cells_per_sequence` cells (what one of the caller's sequences needs) or `n_ctx`, whichever
        is smaller (default: this engine's context, so a prompt fits there when it fits here).
        """
        settings = self.settings
        cells = n_ctx if n_ctx is not None else settings.n_ctx
        if settings.batch_invariant and cells_per_sequence is not None:
            cells = min(cells, cells_per_sequence)
        return BatchedDecoder(
            self._llama._model.model,
            n_sequences=n_sequences,
            n_ctx=cells,
            # batch-invariant: each sequence reads at most n_batch prompt tokens a step, all of them at once
            n_batch=settings.n_batch * n_sequences if settings.batch_invariant else settings.n_batch,
            n_threads=settings.n_threads,
            kv_type=ggml_type_id(settings.kv_cache_type),
            flash_attn=settings.flash_attn,
            adapters=self._loaded_adapters,
            batch_invariant=settings.batch_invariant,
            output_tile=self.output_tile,
        )

    # -- benchmark --------------------------------------------------------------------------

    def bench(self, n_prompt: int = 512, n_gen: int = 128, repetitions: int = 5, depth: int = 0) -> list[BenchResult]:
        """Prompt processing and generation throughput, measured as llama-bench does.

        Random tokens, KV cache cleared before each run, one warm-up run first; prompt
        processing decodes n_prompt tokens in batches, generation decodes n_gen tokens one by one.
        With `depth`, each run starts after that many random tokens already in the cache (decoded
        before the clock starts), as llama-bench's `-d`: a chat reply's tokens come after its
        prompt and attend over it, which costs time the runs from position 0 do not show.
        """
        with self._exclusive():
            return self._bench(n_prompt, n_gen, repetitions, depth)

    def _bench(self, n_prompt: int, n_gen: int, repetitions: int, depth: int) -> list[BenchResult]:
        rng = random.Random(42)
        n_vocab = self._llama.n_vocab()
        results = []
        for test, n_tokens, batched in (("pp", n_prompt, True), ("tg", n_gen, False)):
            if n_tokens <= 0:
                continue
            if depth + n_tokens > self.n_ctx:
                raise BadInputError(f"bench needs a context of at least {depth + n_tokens} tokens; pass --ctx")
            samples = []
            for rep in range(repetitions + 1):
                tokens = [rng.randrange(n_vocab) for _ in range(n_tokens)]
                self._llama.reset()
                if depth:
                    self._llama.eval([rng.randrange(n_vocab) for _ in range(depth)])
                start = time.perf_counter()
                if batched:
                    self._llama.eval(tokens)
                else:
                    for token in tokens:
                        self._llama.eval([token])
                elapsed = time.perf_counter() - start
                if rep > 0:  # the first run warms caches, as llama-bench's warm-up does
                    samples.append(n_tokens / elapsed)
            self._llama.reset()
            results.append(
                BenchResult(
                    test=f"{test}{n_tokens}" + (f" @ d{depth}" if depth else ""),  # llama-bench's names
                    n_tokens=n_tokens,
                    tokens_per_second_mean=statistics.fmean(samples),
                    tokens_per_second_stdev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
                    samples=samples,
                )
            )
        return results


def _stats(
    prompt_tokens: int,
    cached: int,
    generated: int,
    started: float,
    first_token_at: float | None,
    finished: float,
    context_tokens: int,
    n_ctx: int,
    reason: StopReason,
    ended_on_eog: bool,
) -> GenerationStats:
    first = first_token_at if first_token_at is not None else finished
    prompt_time = max(first - started, 1e-9)
    # The first token comes out of the prompt's decode; the rest are one decode each.
    gen_time = finished - first
    # Stopped before the first token: only what reached the cache was read, not the whole prompt
    # (counting all of it gave a prompt speed three times the real one).
    read = prompt_tokens if first_token_at is not None else min(context_tokens, prompt_tokens)
    evaluated = max(read - cached, 0)
    return GenerationStats(
        prompt_tokens=prompt_tokens,
        cached_prompt_tokens=cached,
        generated_tokens=generated,
        time_to_first_token=first - started,
        prompt_tokens_per_second=evaluated / prompt_time,
        generated_tokens_per_second=generation_rate(generated, ended_on_eog, gen_time),
        context_tokens=context_tokens,
        n_ctx=n_ctx,
        stop_reason=reason,
    )
