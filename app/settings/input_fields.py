"""Conversation settings typed by the user, checked: each field's text to a value or a clear error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llamadesk.app.chat.store import ConversationSettings
from llamadesk.app.core.errors import BadInputError


@dataclass(frozen=True)
class SettingField:
    name: str
    label: str
    parse: Callable[[str], object]


def _model(text: str) -> str:
    if not text.strip():
        raise BadInputError("model: give a model name or a path to a .gguf file")
    return text.strip()


def _number_in(low: float, high: float, name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise BadInputError(f"{name}: '{text}' is not a number") from None
        if not low <= value <= high:
            raise BadInputError(f"{name}: must be between {low:g} and {high:g}")
        return value

    return parse


def _optional_count(name: str, minimum: int) -> Callable[[str], int | None]:
    def parse(text: str) -> int | None:
        if not text.strip():
            return None
        try:
            value = int(text)
        except ValueError:
            raise BadInputError(f"{name}: '{text}' is not a whole number (leave it empty for automatic)") from None
        if value < minimum:
            raise BadInputError(f"{name}: must be at least {minimum} (leave it empty for automatic)")
        return value

    return parse


# The form, as data: the settings screen draws one input per row and parses it with `parse`.
SETTING_FIELDS = (
    SettingField("model", "Model", _model),
    SettingField("system_prompt", "System prompt", str),
    SettingField("temperature", "Temperature (0 = greedy)", _number_in(0, 5, "temperature")),
    SettingField("top_p", "Top-p", _number_in(0.01, 1, "top-p")),
    SettingField("repeat_penalty", "Repeat penalty (1 = none)", _number_in(1, 2, "repeat penalty")),
    SettingField("max_tokens", "Max tokens per reply (empty = up to the context)", _optional_count("max tokens", 1)),
    SettingField("context_length", "Context length (empty = what fits)", _optional_count("context length", 256)),
)


def settings_fields(settings: ConversationSettings) -> dict[str, str]:
    """The settings as the text the form shows."""
    return {f.name: "" if getattr(settings, f.name) is None else str(getattr(settings, f.name)) for f in SETTING_FIELDS}


def parse_settings(fields: Mapping[str, str]) -> ConversationSettings:
    """The form's text as settings; raises BadInputError naming the first wrong field."""
    return ConversationSettings(**{f.name: f.parse(fields.get(f.name, "")) for f in SETTING_FIELDS})
