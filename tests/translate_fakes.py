"""A scripted stand-in for the model, for fast unit tests of the translation logic.

It answers each prompt with the next scripted reply (or a function of the prompt), so tests can
make a 'model' that drops a marker, copies the source or answers with nothing, and check what
the translator does about it. The real model is exercised in test_translate_model.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llamadesk.app.translate.file_job import Unit
from llamadesk.app.translate.generation import GenerationStopped
from llamadesk.app.translate.prompts import Prompt


def segment_of(prompt: Prompt) -> str:
    """The text a prompt asks to translate (its last 'Source: text' line)."""
    text = prompt.text if prompt.kind == "completion" else prompt.messages[-1]["content"]
    return text.rstrip().rsplit("\n", 2)[-2].split(": ", 1)[1]


class ScriptedGenerator:
    def __init__(self, reply: Callable[[Prompt], str] | list[str], context_size: int = 4096):
        self.reply = reply
        self.prompts: list[Prompt] = []
        self.context_size = context_size
        self.stop_after: int | None = None  # raise GenerationStopped on this call number
        self.samples: Callable[[Prompt, object], str] | None = None  # sampled answers (generate_samples)
        self.sampled: list[tuple[Prompt, list]] = []  # each generate_samples call: its prompt and samplings
        self.sample_sets: list[int] = []  # each generate_sample_sets call: how many prompts it asked at once

    def generate(self, prompt: Prompt, max_tokens: int, on_text=None) -> str:
        self.prompts.append(prompt)
        if self.stop_after is not None and len(self.prompts) > self.stop_after:
            raise GenerationStopped()
        out = self.reply.pop(0) if isinstance(self.reply, list) else self.reply(prompt)
        if on_text is not None:
            on_text(out)
        return out

    def generate_all(self, prompts, max_tokens) -> list[str]:
        return [self.generate(prompt, n) for prompt, n in zip(prompts, max_tokens, strict=True)]

    def generate_samples(self, prompt: Prompt, max_tokens: int, samplings) -> list[tuple[str, float | None]]:
        """Sampled answers: `samples(prompt, sampling)` when the test gives it, else the scripted reply."""
        self.sampled.append((prompt, list(samplings)))
        answers = []
        for sampling in samplings:
            if self.samples is not None:
                answers.append((self.samples(prompt, sampling), None))
            else:
                answers.append((self.generate(prompt, max_tokens), None))
        return answers

    def generate_sample_sets(self, asks) -> list[list[tuple[str, float | None]]]:
        self.sample_sets.append(len(asks))
        return [self.generate_samples(prompt, max_tokens, samplings) for prompt, max_tokens, samplings in asks]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def request_stop(self) -> None:
        self.stop_after = len(self.prompts)


def upper_translation(prompt: Prompt) -> str:
    """A 'translation' that upper-cases the words and keeps markers: easy to check."""
    return " " + segment_of(prompt).upper() + "\n"


@dataclass
class Units:
    """The smallest TranslatableFile: its units, rendered one per line."""

    units: list[Unit]

    def render(self, results):
        return "\n".join(r.translation for r in results)

    def readable(self, index, text):
        return text


def translated_html(page: str) -> tuple[str, list[str]]:
    """An HTML page as the scripted model (upper case) translates it into French, and the texts it was given."""
    from llamadesk.app.translate import JobFinished, JobSettings, SegmentTranslator, choose_strategy, resolve_language
    from llamadesk.app.translate.file_job import FileJob
    from llamadesk.app.translate.formats import read_translatable

    english, french = resolve_language("en"), resolve_language("fr")
    generator = ScriptedGenerator(upper_translation)
    document = read_translatable("page.html", page.encode(), french)
    strategy = choose_strategy({}, has_chat_template=False)
    finished = list(FileJob(SegmentTranslator(generator, strategy), document, JobSettings(french, english)).run())[-1]
    assert isinstance(finished, JobFinished)
    return finished.text, [segment_of(prompt) for prompt in generator.prompts]
