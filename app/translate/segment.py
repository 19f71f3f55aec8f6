"""Translating one segment: protect, prompt, check, retry once strictly, fall back, restore.

One segment in, one segment out (a base model gets it one sentence per call). The model's line
is cleaned (echoed labels and added quotes removed, marker slips mended where the fix is
certain) and checked: empty, a mere copy of the source, an answer stuck in a loop
(repetition.py), a lost span, a missing glossary term, a broken Markdown link or a link text
left untranslated (markdown_links.py) each earn one retry
with the strict prompt (with glossary terms then protected, so their required translation is put
in by restoration). If spans are still lost (or a link still broken), the words between the
spans are translated piece by piece so every span survives (so is a segment the model keeps
copying: the shorter pieces often get through); an answer that loops again is cut before its
loop; an output still empty keeps the source text.
Whatever happened is reported on the result, never hidden.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from llamadesk.app.core.errors import PromptTooLong
from llamadesk.app.translate.candidates import (
    CANDIDATE_PROMPTS,
    Candidate,
    candidate_samplings,
    candidate_split,
    choose,
)
from llamadesk.app.translate.detection import reads_as_source
from llamadesk.app.translate.generation import GREEDY, EngineGenerator, ModelGenerator, is_content_line
from llamadesk.app.translate.glossary import missing_terms, terms_in
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.markdown_links import broken_links, untranslated_link_texts
from llamadesk.app.translate.nearest_examples import ExampleCorpus, shipped_corpus
from llamadesk.app.translate.placeholder_spacing import space_glued_placeholders
from llamadesk.app.translate.prompts import Prompt, PromptStrategy, TranslationRequest, choose_strategy
from llamadesk.app.translate.protection import (
    MARKER_RE,
    ProtectedText,
    lost_spans,
    missing_markers,
    piecewise_parts,
    protect,
)
from llamadesk.app.translate.repetition import runaway_repetition, without_repetition
from llamadesk.app.translate.segmentation import split_sentences
from llamadesk.app.translate.typography import is_typeset, typeset

# Quotes a model adds around its answer: (opening, closing).
QUOTE_PAIRS = (('"', '"'), ("'", "'"), ("“", "”"), ("«", "»"), ("„", "“"), ("‘", "’"), ("「", "」"))
# A generous bound on output length: translations run up to ~2x the source in tokens.
OUTPUT_TOKENS_PER_SOURCE_TOKEN = 3
OUTPUT_TOKENS_EXTRA = 24


@dataclass(frozen=True)
class SegmentResult:
    """A translated segment and how it was obtained."""

    source: str
    translation: str
    seconds: float = 0.0
    attempts: int = 0  # model calls for the segment as a whole (piecewise parts not counted)
    fallback: str | None = None  # None, "piecewise" (spans kept by translating between them) or "source-kept"
    problems: tuple[str, ...] = field(default=())  # what went wrong on the way, for the user
    resumed: bool = False  # taken from the resume sidecar, not translated now
    # Set for files (confidence.py): 0..1 and why it is below 1; None where it was not assessed.
    confidence: float | None = None
    confidence_reasons: tuple[str, ...] = field(default=())
    # The mean log-probability of the model's tokens for this translation, where the model reports it.
    mean_logprob: float | None = None

    def to_json(self) -> dict:
        report = {
            "source": self.source,
            "translation": self.translation,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "fallback": self.fallback,
            "problems": list(self.problems),
            "resumed": self.resumed,
        }
        if self.mean_logprob is not None:
            report["mean_logprob"] = round(self.mean_logprob, 4)
        if self.confidence is not None:
            report["confidence"] = round(self.confidence, 3)
            report["confidence_reasons"] = list(self.confidence_reasons)
        return report


def clean_output(raw: str, prompt: Prompt, source: str) -> str:
    """The translation in a model's raw output: its first line of content, without echoes or added quotes."""
    content = [line.strip() for line in raw.split("\n") if is_content_line(line, source)]
    text = content[0] if content else ""
    for prefix in prompt.echo_prefixes:
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    for opening, closing in QUOTE_PAIRS:
        added = text.startswith(opening) and text.endswith(closing) and len(text) >= 2
        if added and not (source.startswith(opening) and source.endswith(closing)):
            text = text[len(opening) : len(text) - len(closing)].strip()
            break
    return text


def is_copy(source: str, output: str) -> bool:
    """Whether `output` merely repeats a source that has real words to translate.

    One word (a name, "OK", "Django") may rightly stay as it is; two or more words of three
    letters or more that come back unchanged (punctuation aside) were not translated.
    """

    def normal(text: str) -> str:
        return re.sub(r"\W+", " ", text).strip()

    words = re.findall(r"[^\W\d_]{3,}", re.sub(r"⟦\d+⟧", " ", source))
    return len(words) >= 2 and normal(source) == normal(output)


def repair_markers(source: str, output: str) -> str:
    """The output with the marker slips a small model makes mended where the fix is certain.

    Markers the source does not have (⟦7⟧ out of nowhere, a lone ⟦ or ⟧) and second copies of a
    marker are removed; a marker the source has at its very start or end, and the output lost,
    is put back at that edge. A marker lost from the middle is left for the retry.
    """
    known = {int(n) for n in MARKER_RE.findall(source)}
    seen: set[int] = set()

    def keep_first_known(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in known or n in seen:
            return ""
        seen.add(n)
        return match.group(0)

    text = MARKER_RE.sub(keep_first_known, output)
    # Lone brackets go; whole markers stay (the split keeps them at odd positions).
    text = "".join(part if i % 2 else re.sub(r"[⟦⟧]", "", part) for i, part in enumerate(re.split(r"(⟦\d+⟧)", text)))
    text = re.sub(r"(?<=\S) {2,}(?=\S)", " ", text).strip()
    if not text:
        return text
    markers = list(MARKER_RE.finditer(source))
    first, last = MARKER_RE.match(source), (markers[-1] if markers else None)
    if first and int(first.group(1)) not in seen:
        gap = source[first.end() : first.end() + 1]
        text = first.group(0) + (gap if gap.isspace() else "") + text
    if last and last.end() == len(source) and int(last.group(1)) not in seen and last is not first:
        gap = source[last.start() - 1 : last.start()]
        text = text + (gap if gap.isspace() else "") + last.group(0)
    return text


class SegmentTranslator:
    """Translates single segments with one model and one prompt strategy.

    With `examples`, each segment's prompt also shows the corpus sentences nearest to it
    (nearest_examples.py). With `candidates` (a count above 1), the greedy answer is joined by
    answers sampled from the same prompt and, with `candidate_examples`, by answers to prompts that
    also show that corpus's sentences nearest to the segment (candidates.CANDIDATE_PROMPTS);
    candidates.choose keeps one (`_choose`).
    """

    def __init__(
        self,
        generator: ModelGenerator,
        strategy: PromptStrategy,
        examples: ExampleCorpus | None = None,
        candidates: int = 0,
        candidate_examples: ExampleCorpus | None = None,
    ):
        self.generator = generator
        self.strategy = strategy
        self.examples = examples
        self.candidates = candidates
        self.candidate_examples = candidate_examples
        self.last_mean_logprob: float | None = None  # of the last model answer, where the model reports it

    def _budget(self, request: TranslationRequest) -> int:
        return self.generator.count_tokens(request.text) * OUTPUT_TOKENS_PER_SOURCE_TOKEN + OUTPUT_TOKENS_EXTRA

    def _ask(self, request: TranslationRequest, on_text: Callable[[str], None] | None) -> str:
        prompt = self.strategy.build(request)
        raw = self.generator.generate(prompt, self._budget(request), on_text)
        self.last_mean_logprob = getattr(self.generator, "last_mean_logprob", None)
        return _answer_text(raw, prompt, request)

    def _ask_all(self, requests: list[TranslationRequest]) -> list[str]:
        """_ask for several independent requests, through the generator's generate_all."""
        if not requests:
            return []
        prompts = [self.strategy.build(request) for request in requests]
        raws = self.generator.generate_all(prompts, [self._budget(request) for request in requests])
        answered = zip(raws, prompts, requests, strict=True)
        return [_answer_text(raw, prompt, request) for raw, prompt, request in answered]

    def _problems(self, protected: ProtectedText, output: str, required: dict[str, str]) -> list[str]:
        problems = []
        if not output:
            problems.append("empty output")
        elif protected.has_words and is_copy(protected.text, output):
            problems.append("output copied the source")
        repetition = runaway_repetition(protected.text, output)
        if repetition is not None:
            problems.append(repetition.describe())
        lost = missing_markers(protected, output)
        if lost and output:
            problems.append("lost " + ", ".join(repr(span.original) for span in lost))
        restored = protected.restore(output)
        absent = missing_terms(restored, required)
        if absent and output:
            problems.append("glossary term not used: " + ", ".join(absent))
        if output and "⟦" in protected.text:  # links are markers: only then can one break
            original = protected.restore(protected.text)
            problems += broken_links(original, restored)
            kept = untranslated_link_texts(original, restored)
            if kept:
                problems.append("link text not translated: " + ", ".join(map(repr, kept)))
        return problems

    def translate(
        self,
        text: str,
        source: Language,
        target: Language,
        glossary: dict[str, str] | None = None,
        context: tuple[tuple[str, str], ...] = (),
        on_text: Callable[[str], None] | None = None,
        note: str = "",
        typography: bool | None = None,
    ) -> SegmentResult:
        """Translate `text` (one segment); the result keeps every protected span of the source.

        `context` holds preceding (source, translation) pairs for consistency; `note` says what
        the text is (a gettext msgctxt) and goes into the prompt; `on_text`
        receives the model's raw output as it streams (markers not yet restored). The result is
        verified independently of the markers: the source's spans are searched for again in the
        restored text, and any that is missing is reported in `problems`. With `typography` (by
        default: when `text` itself is typeset), the translation gets the target language's
        quotes and apostrophes (typography.py); a job decides it once for its whole document.
        """
        result = self._translate_fitting(text, source, target, glossary, context, on_text, note)
        lost = lost_spans(result.source, result.translation)
        if lost:
            result = replace(result, problems=(*result.problems, "not kept: " + ", ".join(map(repr, lost))))
        if result.fallback != "source-kept":
            translation = space_glued_placeholders(text, result.translation, target.code)
            if is_typeset(text) if typography is None else typography:
                translation = typeset(translation, target.code)
            result = replace(result, translation=translation)
        return result

    def _translate_fitting(
        self,
        text: str,
        source: Language,
        target: Language,
        glossary: dict[str, str] | None,
        context: tuple[tuple[str, str], ...],
        on_text: Callable[[str], None] | None,
        note: str,
    ) -> SegmentResult:
        """`text` translated whole, or a sentence at a time where the strategy says so, within the context.

        Too long for the model's context with the segments before it: asked again without them.
        Too long alone (a table cell of thousands of tags, a cue of thousands of words): kept as it
        was, since stopping the document here would stop it here again on every resume.
        """
        started = time.perf_counter()
        sentences = split_sentences(text) if self.strategy.sentence_at_a_time else [text]
        for given_context in (context, ()) if context else ((),):
            try:
                if len(sentences) > 1:
                    return self._translate_sentences(sentences, source, target, glossary, given_context, on_text, note)
                return self._translate(text, source, target, glossary, given_context, on_text, note)
            except PromptTooLong as error:
                too_long = error
        seconds = time.perf_counter() - started
        return SegmentResult(text, text, seconds, 1, "source-kept", (f"kept as it was: {too_long}",))

    def _translate_sentences(
        self,
        sentences: list[str],
        source: Language,
        target: Language,
        glossary: dict[str, str] | None,
        context: tuple[tuple[str, str], ...],
        on_text: Callable[[str], None] | None,
        note: str = "",
    ) -> SegmentResult:
        """A segment of several sentences, one sentence per model call, each seeing the one before."""
        results: list[SegmentResult] = []
        for sentence in sentences:
            previous = ((results[-1].source.strip(), results[-1].translation.strip()),) if results else context
            results.append(self._translate(sentence, source, target, glossary, previous, on_text, note))
        return SegmentResult(
            source="".join(r.source for r in results),
            translation="".join(r.translation for r in results),
            seconds=sum(r.seconds for r in results),
            attempts=sum(r.attempts for r in results),
            fallback=next((r.fallback for r in results if r.fallback), None),
            problems=tuple(p for r in results for p in r.problems),
            mean_logprob=_mean([r.mean_logprob for r in results]),
        )

    def _translate(
        self,
        text: str,
        source: Language,
        target: Language,
        glossary: dict[str, str] | None,
        context: tuple[tuple[str, str], ...],
        on_text: Callable[[str], None] | None,
        note: str = "",
    ) -> SegmentResult:
        started = time.perf_counter()
        protected = protect(text)
        if not protected.has_words:  # only placeholders, numbers, code: nothing to translate
            return SegmentResult(text, text, time.perf_counter() - started)
        required = terms_in(text, glossary or {})
        protected_context = tuple((protect(a).text, protect(b).text) for a, b in context)
        nearest = tuple(self.examples.nearest(protected.text, source.code, target.code)) if self.examples else ()
        request = TranslationRequest(
            protected.text, source, target, protected_context, tuple(required.items()), note=note, examples=nearest
        )
        output = self._ask(request, on_text)
        logprob = self.last_mean_logprob
        problems = self._problems(protected, output, required)
        if self.candidates > 1:
            output, logprob, problems = self._choose(request, protected, required, (output, logprob, problems))
        attempts = 1
        if problems:
            # The strict retry: rules spelled out, no context, glossary terms protected.
            protected = protect(text, required) if required else protected
            strict = TranslationRequest(protected.text, source, target, (), (), strict=True, note=note)
            retry = self._ask(strict, on_text)
            attempts = 2
            retry_problems = self._problems(protected, retry, {})
            if len(retry_problems) <= len(problems) or not output:
                output, remaining, logprob = retry, retry_problems, self.last_mean_logprob
            else:  # the first answer was better; keep it (and its glossary check)
                protected = protect(text)
                remaining = problems
            problems = [f"first try: {p}" for p in problems] + [f"retry: {p}" for p in remaining]
            if remaining:
                return self._fall_back(text, protected, output, source, target, attempts, problems, started)
        return SegmentResult(
            text,
            protected.restore(output),
            time.perf_counter() - started,
            attempts,
            None,
            tuple(problems),
            mean_logprob=logprob,
        )

    def _choose(
        self,
        request: TranslationRequest,
        protected: ProtectedText,
        required: dict[str, str],
        first: tuple[str, float | None, list[str]],
    ) -> tuple[str, float | None, list[str]]:
        """The best of `first` (the greedy answer to `request`), answers sampled from the same prompt,
        and answers to the prompts that also show the nearest examples of `candidate_examples`
        (greedy, then sampled; candidates.CANDIDATE_PROMPTS), all asked at once.

        candidates.choose picks one. Returns the chosen text, its mean token log-probability (for
        the confidence score) and its problems.
        """
        counts: dict[tuple[tuple[str, str], ...], int] = {}  # the examples a prompt shows -> its candidates
        for (nearest, _), count in zip(CANDIDATE_PROMPTS, candidate_split(self.candidates), strict=True):
            if not count:
                continue
            examples: tuple[tuple[str, str], ...] = ()
            # (With examples, the usual prompt already has them: all candidates answer it.)
            if nearest and self.candidate_examples is not None and not request.examples:
                codes = (request.source.code, request.target.code)
                examples = tuple(self.candidate_examples.nearest(request.text, *codes, k=nearest))
            # Fewer sentences near the segment than the prompt would show: the same prompt as an
            # earlier one (or the usual, with none), which takes these candidates with further seeds.
            counts[examples] = counts.get(examples, 0) + count
        asked = [
            (replace(request, examples=examples), [GREEDY, *candidate_samplings(count)])
            if examples
            else (request, candidate_samplings(count))  # its greedy answer is `first`
            for examples, count in counts.items()
        ]
        prompts = [self.strategy.build(asked_request) for asked_request, _ in asked]
        sample_sets = self.generator.generate_sample_sets(
            [(prompt, self._budget(r), samplings) for prompt, (r, samplings) in zip(prompts, asked, strict=True)]
        )
        answers = [first]
        for prompt, (asked_request, _), samples in zip(prompts, asked, sample_sets, strict=True):
            for raw, logprob in samples:
                text = _answer_text(raw, prompt, asked_request)
                answers.append((text, logprob, self._problems(protected, text, required)))
        candidates = [
            Candidate(
                text,
                tuple(problems),
                bool(text) and reads_as_source(protected.restore(text), request.source, request.target),
                logprob,
            )
            for text, logprob, problems in answers
        ]
        return answers[choose(candidates)]

    def _fall_back(
        self,
        text: str,
        protected: ProtectedText,
        output: str,
        source: Language,
        target: Language,
        attempts: int,
        problems: list[str],
        started: float,
    ) -> SegmentResult:
        repetition = runaway_repetition(protected.text, output)
        if repetition is not None:  # both answers looped: keep what came before the loop, once
            output = without_repetition(output, repetition)
        copied = is_copy(protected.text, output)
        # Markers all there, and (where they make links) in an order that keeps every link working.
        intact = (
            output
            and not missing_markers(protected, output)
            and not broken_links(protected.restore(protected.text), protected.restore(output))
        )
        if intact and not (copied and protected.spans):
            # Spans intact: an unused glossary term (or a copy with nothing to split) is kept, and reported.
            return SegmentResult(
                text, protected.restore(output), time.perf_counter() - started, attempts, None, tuple(problems)
            )
        if protected.spans:
            pieces = list(piecewise_parts(protected))
            wordy = [i for i, (part, kind) in enumerate(pieces) if kind and re.search(r"[^\W\d_]", part)]
            # The parts are independent: asked all at once (a batched model decodes them side by side).
            answers = self._ask_all([TranslationRequest(pieces[i][0].strip(), source, target) for i in wordy])
            translations = dict(zip(wordy, answers, strict=True))
            parts = []
            for i, (part, _) in enumerate(pieces):
                if i in translations:
                    core = part.strip()
                    translated = translations[i] or core
                    if re.search(r"[⟦⟧]", translated):
                        translated = core  # a part must not invent spans of its own
                    parts.append(part[: len(part) - len(part.lstrip())] + translated + part[len(part.rstrip()) :])
                else:
                    parts.append(part)
            return SegmentResult(
                text,
                protected.restore("".join(parts)),
                time.perf_counter() - started,
                attempts,
                "piecewise",
                tuple(problems),
            )
        return SegmentResult(text, text, time.perf_counter() - started, attempts, "source-kept", tuple(problems))


def _answer_text(raw: str, prompt: Prompt, request: TranslationRequest) -> str:
    """A model's raw answer to `prompt` as a translation of `request`: cleaned, its markers repaired."""
    return repair_markers(request.text, clean_output(raw, prompt, request.text))


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def translator_for(engine, prompt: str = "auto", examples: bool = False, candidates: int = 0) -> SegmentTranslator:
    """A greedy translator for a loaded Engine, prompted as its GGUF metadata says (or `prompt`).

    `examples`: nearest examples from the shipped corpus in each prompt (off: with gemma3-270m on
    bench/translate.py, bench/RESULTS.md "translate-candidates", they lost chrF on three of four
    sets and languages); `candidates`: that many answers per segment, the greedy one and sampled
    ones, some of them to prompts with the shipped corpus's nearest examples, one kept
    (SegmentTranslator; `translate --candidates`).
    """
    strategy = choose_strategy(engine.summary.metadata, engine.has_chat_template, prompt)
    corpus = shipped_corpus() if examples else None
    return SegmentTranslator(EngineGenerator(engine), strategy, corpus, candidates, corpus_for_candidates(candidates))


def corpus_for_candidates(candidates: int) -> ExampleCorpus | None:
    """The corpus whose nearest sentences some of `candidates` are asked with (candidates.CANDIDATE_PROMPTS)."""
    return shipped_corpus() if candidates > 1 else None
