"""The model side of translation: a prompt in, one line of text out, streamed and stoppable.

`ModelGenerator` is what the translator needs from a model; `EngineGenerator` provides it with
the llamadesk engine. Unit tests give the translator a scripted generator instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from llamadesk.app.core.errors import Interrupted
from llamadesk.app.engine.types import GenerationDone, Sampling, TextPiece
from llamadesk.app.translate.prompts import Prompt
from llamadesk.app.translate.repetition import LoopWatch

# Greedy: the same input gives the same translation, and small models translate best greedily.
GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=0)


class GenerationStopped(Exception):
    """The generation was stopped on request (Ctrl-C, the UI's cancel)."""


class ModelGenerator(Protocol):
    """What translation needs from a model."""

    def generate(self, prompt: Prompt, max_tokens: int, on_text: Callable[[str], None] | None = None) -> str:
        """The model's output for `prompt` up to the end of its first line of content."""
        ...

    def generate_samples(
        self, prompt: Prompt, max_tokens: int, samplings: Sequence[Sampling]
    ) -> list[tuple[str, float | None]]:
        """One answer to `prompt` per sampling (its first line of content, its mean token log-probability)."""
        ...

    def generate_sample_sets(
        self, asks: Sequence[tuple[Prompt, int, Sequence[Sampling]]]
    ) -> list[list[tuple[str, float | None]]]:
        """generate_samples for each (prompt, max_tokens, samplings), all in flight together where the model batches."""
        ...

    def generate_all(self, prompts: Sequence[Prompt], max_tokens: Sequence[int]) -> list[str]:
        """generate() for each of several independent prompts (side by side where the model batches)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def request_stop(self) -> None: ...

    @property
    def context_size(self) -> int: ...

    # A generator may also set `last_mean_logprob` (float | None) after each generate(): the mean
    # natural-log probability of the tokens of its answer, which the confidence score reads.


COLONS = (":", "：")  # ASCII and full-width (CJK)


def is_content_line(line: str, source: str | None) -> bool:
    """Whether a line of output can be the answer: it has text, and it does not only introduce
    the answer ("Here is the translation:"), which a line ending in a colon does, unless the text
    being translated ends in one too ("Example:", "Do the following:")."""
    line = line.strip()
    if not line:
        return False
    return not line.endswith(COLONS) or (source is not None and source.rstrip().endswith(COLONS))


class LineEnd:
    """Decides when one line of output is complete: at a newline after some real content
    (is_content_line: a line that only introduces the answer does not end the output)."""

    def __init__(self, source: str | None = None) -> None:
        self.text = ""
        self.source = source

    def feed(self, piece: str) -> bool:
        """Add a piece; True once the output holds a complete line of content."""
        self.text += piece
        lines = self.text.split("\n")
        return any(is_content_line(line, self.source) for line in lines[:-1])


class AnswerLine:
    """Collects one answer's pieces: its first line of content and the mean log-probability of its
    tokens (what the confidence score reads). Both generators below feed it, streamed or batched.

    With `answer_to` (the text being translated), an answer caught in a loop that text does not
    have ends as soon as the loop shows (repetition.py's measure, REPEATS back-to-back units): a
    small model that starts one rarely leaves it, and ran on to its token budget (156 tokens of one
    German segment, alone at the end of a --parallel 8 run, 4 s of its 21). What the segment does
    with a looping answer is unchanged: it sees the same loop, only shorter.
    """

    def __init__(self, on_text: Callable[[str], None] | None = None, answer_to: str | None = None) -> None:
        self.on_text = on_text
        self._loop = LoopWatch(answer_to) if answer_to is not None else None
        self.line = LineEnd(answer_to)
        self.logprob = 0.0
        self.tokens = 0

    def feed(self, piece: TextPiece) -> bool:
        """Take a piece; True once the line is complete or looping (no need to let the model ramble on)."""
        if self.on_text is not None:
            self.on_text(piece.text)
        if piece.logprob is not None:
            self.logprob += piece.logprob
            self.tokens += piece.tokens
        if self.line.feed(piece.text):
            return True
        return self._loop is not None and self._loop.loops(self.line.text)

    @property
    def text(self) -> str:
        return self.line.text

    @property
    def mean_logprob(self) -> float | None:
        return self.logprob / self.tokens if self.tokens else None


class EngineGenerator:
    """A loaded llamadesk Engine as a translation model, greedy by default."""

    def __init__(self, engine, sampling: Sampling = GREEDY):
        self.engine = engine
        self.sampling = sampling
        self.last_stats = None
        self.last_mean_logprob: float | None = None

    @property
    def context_size(self) -> int:
        return self.engine.n_ctx

    def count_tokens(self, text: str) -> int:
        return len(self.engine.tokenize(text, add_bos=False))

    def request_stop(self) -> None:
        self.engine.request_stop()

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        if prompt.kind == "chat":
            try:
                return self.engine.chat_prompt_tokens(list(prompt.messages))
            except Interrupted as stop:
                # A stop that lands while the chat template renders is the same stop as one
                # during decoding: the job keeps what it finished and says so.
                raise GenerationStopped() from stop
        return self.engine.tokenize(prompt.text, add_bos=True, special=prompt.special_tokens)

    def answer_sampling(self, max_tokens: int, sampling: Sampling | None = None) -> Sampling:
        """One answer's sampling (this generator's or `sampling`): at most `max_tokens`, with log-probabilities."""
        chosen = sampling if sampling is not None else self.sampling
        return Sampling(**{**chosen.__dict__, "max_tokens": max_tokens, "logprobs": True})

    def generate(self, prompt: Prompt, max_tokens: int, on_text: Callable[[str], None] | None = None) -> str:
        answer = AnswerLine(on_text, prompt.answer_to)
        return self._generate(self.prompt_tokens(prompt), self.answer_sampling(max_tokens), answer)

    def generate_all(self, prompts: Sequence[Prompt], max_tokens: Sequence[int]) -> list[str]:
        """One after another on the engine's single stream."""
        return [self.generate(prompt, n) for prompt, n in zip(prompts, max_tokens, strict=True)]

    def generate_samples(
        self, prompt: Prompt, max_tokens: int, samplings: Sequence[Sampling]
    ) -> list[tuple[str, float | None]]:
        """One after another on the engine's single stream; the prompt is read once and kept in the cache."""
        tokens = self.prompt_tokens(prompt)
        answers = []
        for sampling in samplings:
            answer = AnswerLine(None, prompt.answer_to)
            text = self._generate(tokens, self.answer_sampling(max_tokens, sampling), answer)
            answers.append((text, self.last_mean_logprob))
        return answers

    def generate_sample_sets(
        self, asks: Sequence[tuple[Prompt, int, Sequence[Sampling]]]
    ) -> list[list[tuple[str, float | None]]]:
        """One prompt after another on the engine's single stream."""
        return [self.generate_samples(prompt, max_tokens, samplings) for prompt, max_tokens, samplings in asks]

    def _generate(self, tokens: list[int], sampling: Sampling, answer: AnswerLine) -> str:
        self.last_mean_logprob = None
        events = self.engine.stream_tokens(tokens, sampling, shelve=True)
        try:
            for event in events:
                if isinstance(event, TextPiece):
                    complete = answer.feed(event)
                    self.last_mean_logprob = answer.mean_logprob
                    if complete:
                        break
                elif isinstance(event, GenerationDone):
                    self.last_stats = event.stats
                    if event.stats.stop_reason == "stopped":
                        raise GenerationStopped()
        finally:
            events.close()
        return answer.text
