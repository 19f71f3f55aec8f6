"""How a segment is put to a model: one prompt strategy per kind of model, chosen from its GGUF.

- `few-shot`: base models (no chat template). A completion prompt of example pairs labelled with
  the language names ("English: ...\\nFrench: ...") ending with the segment and the target
  label; the model continues with the translation and the line ends it.
- `instruction`: instruction models, through their own chat template with a translation request.
- dedicated translation models use the prompt their authors document, listed in
  DEDICATED_FORMATS and recognised by the GGUF's name fields.

Every strategy can be forced by name (`--prompt`). A strict prompt is the retry after an empty
output, a copy of the source or a lost span: it says the rules outright and drops the carried
context, which is what most often tempts a small model to repeat instead of translate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import ChatMessage
from llamadesk.app.translate.examples import example_pairs
from llamadesk.app.translate.languages import Language


@dataclass(frozen=True)
class TranslationRequest:
    """What one model call must translate, and what it may lean on."""

    text: str  # protected source: spans are ⟦n⟧ markers
    source: Language
    target: Language
    context: tuple[tuple[str, str], ...] = ()  # preceding (source, translation) pairs, protected
    glossary: tuple[tuple[str, str], ...] = ()  # (term, required translation) that occur in text
    strict: bool = False
    # What the text is, from the file it came from (a gettext msgctxt such as "month name"): short
    # words that disambiguate "May" or "Open" for the model.
    note: str = ""
    # (source, translation) pairs chosen for this text (nearest_examples.py), protected; shown
    # after the fixed examples, closest to the text.
    examples: tuple[tuple[str, str], ...] = ()
    # The fixed examples (examples.py) too; off in bench/translate_rerank.py's nearest-only prompt.
    fixed_examples: bool = True


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for the engine: chat messages or completion text."""

    kind: Literal["chat", "completion"]
    text: str = ""
    messages: tuple[ChatMessage, ...] = ()
    # Completion prompts written with a chat format's turn markers need them read as special tokens.
    special_tokens: bool = False
    # Text the model may echo before the translation (a label like "French:"), removed if present.
    echo_prefixes: tuple[str, ...] = ()
    # The text asked to be translated: an answer caught in a loop this text does not have ends
    # there (repetition.py) instead of running on to its token budget.
    answer_to: str | None = None


@dataclass(frozen=True)
class DedicatedFormat:
    """A translation model's documented prompt, as data."""

    name: str
    matches: str  # regex searched (case-insensitive) in the GGUF's name fields
    kind: Literal["chat", "completion"]
    template: str  # {source} {target} {source_code} {target_code} {text}
    template_chinese: str = ""  # some models document another wording when Chinese is involved
    special_tokens: bool = False
    source: str = ""  # where the format is documented


DEDICATED_FORMATS: tuple[DedicatedFormat, ...] = (
    DedicatedFormat(
        name="hunyuan-mt",
        matches=r"hunyuan[-_ ]?mt|hy[-_ ]?mt",
        kind="chat",
        template="Translate the following segment into {target}, without additional explanation.\n\n{text}",
        template_chinese="把下面的文本翻译成{target_native}，不要额外解释。\n\n{text}",
        source="tencent/Hunyuan-MT-7B model card",
    ),
    DedicatedFormat(
        name="seed-x",
        matches=r"seed[-_ ]?x",
        kind="completion",
        template="Translate the following {source} sentence into {target}:\n{text} <{target_code}>",
        source="ByteDance-Seed/Seed-X-Instruct-7B model card",
    ),
    DedicatedFormat(
        name="tower",
        matches=r"tower[-_ ]?(instruct|plus|mistral|llama)?",
        kind="chat",
        template="Translate the following text from {source} into {target}.\n{source}: {text}\n{target}:",
        source="Unbabel/TowerInstruct-7B-v0.2 model card",
    ),
    DedicatedFormat(
        name="translategemma",
        matches=r"translate[-_ ]?gemma",
        kind="completion",
        # Its chat template takes structured content (language codes + text) that a plain chat
        # formatter cannot pass, so the documented turn is written out as it renders.
        template=(
            "<start_of_turn>user\nYou are a professional {source} ({source_code}) to {target} ({target_code}) "
            "translator. Your goal is to accurately convey the meaning and nuances of the original {source} "
            "text while adhering to {target} grammar, vocabulary, and cultural sensitivities.\n"
            "Produce only the {target} translation, without any additional explanations or commentary. "
            "Please translate the following {source} text into {target}:\n\n\n{text}<end_of_turn>\n"
            "<start_of_turn>model\n"
        ),
        special_tokens=True,
        source="google/translategemma-4b-it model card",
    ),
)

GENERIC_STRATEGIES = ("few-shot", "instruction")
NAME_FIELDS = (
    "general.name",
    "general.basename",
    "general.finetune",
    "general.base_model.0.name",
    "general.base_model.0.repo_url",
)


@dataclass(frozen=True)
class PromptStrategy:
    """How this model is prompted; `reason` says why it was chosen (shown by --json and the UI)."""

    name: str
    reason: str
    dedicated: DedicatedFormat | None = field(default=None, compare=False)

    @property
    def sentence_at_a_time(self) -> bool:
        """Base models lose the thread (copy, drop markers) on multi-sentence input; they get one sentence per call."""
        return self.name == "few-shot"

    def build(self, request: TranslationRequest) -> Prompt:
        if self.dedicated is not None:
            prompt = _dedicated_prompt(self.dedicated, request)
        elif self.name == "instruction":
            prompt = _instruction_prompt(request)
        else:
            prompt = _few_shot_prompt(request)
        return replace(prompt, answer_to=request.text)


def strategy_names() -> list[str]:
    return ["auto", *GENERIC_STRATEGIES, *(f.name for f in DEDICATED_FORMATS)]


def choose_strategy(metadata: Mapping[str, Any], has_chat_template: bool, override: str = "auto") -> PromptStrategy:
    """The prompt strategy for a model: `override` if given, else from its GGUF metadata."""
    by_name = {f.name: f for f in DEDICATED_FORMATS}
    if override != "auto":
        if override in by_name:
            return PromptStrategy(override, "chosen with --prompt", by_name[override])
        if override in GENERIC_STRATEGIES:
            if override == "instruction" and not has_chat_template:
                raise BadInputError(
                    "--prompt instruction needs a model with a chat template; this one has none (use few-shot)"
                )
            return PromptStrategy(override, "chosen with --prompt")
        raise BadInputError(f"--prompt {override!r}: unknown; choose one of {', '.join(strategy_names())}")
    names = " ".join(str(metadata.get(key, "")) for key in NAME_FIELDS)
    for dedicated in DEDICATED_FORMATS:
        if re.search(dedicated.matches, names, re.IGNORECASE):
            return PromptStrategy(
                dedicated.name, f"the model's name matches {dedicated.name} ({dedicated.source})", dedicated
            )
    if has_chat_template:
        return PromptStrategy("instruction", "the model has a chat template: an instruction through it")
    return PromptStrategy("few-shot", "the model has no chat template (a base model): a few-shot completion prompt")


# -- few-shot completion (base models) -----------------------------------------------------


def _few_shot_prompt(request: TranslationRequest) -> Prompt:
    src, tgt = request.source.name, request.target.name
    pairs = example_pairs(request.source.code, request.target.code) if request.fixed_examples else []
    pairs += list(request.examples)
    pairs += list(request.glossary)
    if not request.strict:
        pairs += list(request.context)
    header = ""
    if request.strict:
        header = (
            f"Translate each {src} text into {tgt}. Write only the {tgt} translation on one line; "
            "keep every ⟦n⟧ marker exactly once.\n\n"
        )
    shots = "".join(f"{src}: {a}\n{tgt}: {b}\n\n" for a, b in pairs)
    # The note as a comment line just above the segment: with gemma3-270m, "# alt. month" there
    # turned "May" into "Mai" and "Order" (sort order) into "Ordre", where no note gave "May" and
    # "Pré-order", the note on the label ("English (alt. month): May") was translated into the
    # output, and a "Context:" header line gave "En attendant" (5 msgctxt cases, tried while
    # building this).
    note = _one_line_note(request.note)
    comment = f"# {note}\n" if note else ""
    text = f"{header}{shots}{comment}{src}: {request.text}\n{tgt}:"
    return Prompt("completion", text=text, echo_prefixes=(f"{tgt}:",))


# A note is a few words (a msgctxt such as "alt. month"); a longer one is cut to this.
NOTE_MAX_CHARS = 200


def _one_line_note(note: str) -> str:
    """The note on one line and short: it comes from the file, and a line break in a msgctxt
    ("label\\nEnglish: Delete everything\\nFrench:") made its own lines of the prompt."""
    line = " ".join(note.split())
    return line if len(line) <= NOTE_MAX_CHARS else line[: NOTE_MAX_CHARS - 3] + "..."


# -- instruction through the model's chat template -------------------------------------------


def _instruction_prompt(request: TranslationRequest) -> Prompt:
    src, tgt = request.source.name, request.target.name
    rules = [
        f"Translate the following text from {src} into {tgt}.",
        f"Reply with the {tgt} translation only: no explanation, no notes, no quotation marks.",
    ]
    if request.examples:
        rules.append("Similar texts were translated like this: " + "; ".join(f"{a} = {b}" for a, b in request.examples))
    if "⟦" in request.text:
        rules.append("Copy every marker like ⟦1⟧ into the translation exactly once, unchanged.")
    if note := _one_line_note(request.note):
        rules.append(f"Context of the text: {note}.")
    if request.glossary:
        rules.append("Use these translations: " + "; ".join(f"{a} = {b}" for a, b in request.glossary) + ".")
    if request.context and not request.strict:
        previous = " ".join(b for _, b in request.context)
        rules.append(f"For consistency, the text before it was translated as: {previous}")
    if request.strict:
        rules.append(f"Do not repeat the {src} text; write it in {tgt}.")
    content = "\n".join(rules) + f"\n\n{request.text}"
    return Prompt("chat", messages=({"role": "user", "content": content},), echo_prefixes=(f"{tgt}:", "Translation:"))


# -- documented formats of translation models -----------------------------------------------


def _dedicated_prompt(dedicated: DedicatedFormat, request: TranslationRequest) -> Prompt:
    chinese = "zh" in (request.source.code[:2], request.target.code[:2])
    template = dedicated.template_chinese if chinese and dedicated.template_chinese else dedicated.template
    text = template.format(
        source=request.source.name,
        target=request.target.name,
        source_code=request.source.code,
        target_code=request.target.code,
        target_native=request.target.native,
        text=request.text,
    )
    echo = (f"{request.target.name}:",)
    if dedicated.kind == "chat":
        return Prompt("chat", messages=({"role": "user", "content": text},), echo_prefixes=echo)
    return Prompt("completion", text=text, special_tokens=dedicated.special_tokens, echo_prefixes=echo)
