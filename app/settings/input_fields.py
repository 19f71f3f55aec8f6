"""Conversation settings typed by the user, checked: each field's text to a value or a clear error.

The ranges are core/value_ranges', the same as the flags' and config.json's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llamadesk.app.chat.store import ConversationSettings
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.value_ranges import (
    CHAT_CONTEXT,
    MAX_TOKENS,
    REPEAT_PENALTY,
    TEMPERATURE,
    TOP_P,
    ValueRange,
)


@dataclass(frozen=True)
class SettingField:
    name: str
    label: str
    parse: Callable[[str], object]


def _model(text: str) -> str:
    if not text.strip():
        raise BadInputError("model: give a model name or a path to a .gguf file")
    return text.strip()


def _number(value_range: ValueRange, name: str) -> Callable[[str], int | float]:
    return lambda text: value_range.parse(text.strip(), name)


def _optional_count(value_range: ValueRange, name: str) -> Callable[[str], int | float | None]:
    def parse(text: str) -> int | float | None:
        if not text.strip():
            return None
        try:
            return value_range.parse(text.strip(), name)
        except BadInputError as err:
            raise BadInputError(f"{err} (leave it empty for automatic)") from None

    return parse


# The form, as data: the settings screen draws one input per row and parses it with `parse`.
SETTING_FIELDS = (
    SettingField("model", "Model", _model),
    SettingField("system_prompt", "System prompt", str),
    SettingField("temperature", "Temperature (0 = greedy)", _number(TEMPERATURE, "temperature")),
    SettingField("top_p", "Top-p", _number(TOP_P, "top-p")),
    SettingField("repeat_penalty", "Repeat penalty (1 = none)", _number(REPEAT_PENALTY, "repeat penalty")),
    SettingField(
        "max_tokens", "Max tokens per reply (empty = up to the context)", _optional_count(MAX_TOKENS, "max tokens")
    ),
    SettingField(
        "context_length", "Context length (empty = what fits)", _optional_count(CHAT_CONTEXT, "context length")
    ),
)


def settings_fields(settings: ConversationSettings) -> dict[str, str]:
    """The settings as the text the form shows."""
    return {f.name: "" if getattr(settings, f.name) is None else str(getattr(settings, f.name)) for f in SETTING_FIELDS}


def parse_settings(fields: Mapping[str, str]) -> ConversationSettings:
    """The form's text as settings; raises BadInputError naming the first wrong field."""
    return ConversationSettings(**{f.name: f.parse(fields.get(f.name, "")) for f in SETTING_FIELDS})
