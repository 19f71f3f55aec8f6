"""The user's defaults: one JSON file under the config folder (LLAMADESK_HOME honoured).

How models load on this machine (threads, context, KV cache type) is load.json's business
(load_config.py), shared with the CLI; this file holds what the app and its conversations start with.

A missing file means every default; a key the file leaves out keeps its default, so files written
by older versions keep working. Every value is checked for its type and range (core/value_ranges,
as the flags and the settings form are) before anything uses it. When the user changes a default
in the app (the theme, for instance), update_config writes that one setting into the file as it is
now, so an edit made by hand while the app was open stays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from llamadesk.app.chat.store import ConversationSettings
from llamadesk.app.core.atomic_file import atomic_output, locked
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.paths import HOME_NOT_WRITABLE, config_dir
from llamadesk.app.core.value_ranges import (
    CHAT_CONTEXT,
    MAX_TOKENS,
    PARALLEL,
    PROMPT_CACHE_MB,
    REPEAT_PENALTY,
    TEMPERATURE,
    TOP_P,
    shown,
)
from llamadesk.app.settings.chat_defaults import (
    DEFAULT_REPEAT_PENALTY,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
)

CONFIG_FILE = "config.json"
CONFIG_MAX_BYTES = 1024**2  # a few hundred bytes in practice; a long system prompt fits easily
CONFIG_MAX_DEPTH = 4  # {"models": {"chat": "..."}} is the deepest it goes
MODES = ("chat", "translate")


@dataclass(frozen=True)
class Config:
    """Defaults for new conversations and for the app itself."""

    # Which model each mode opens with (a starter name, a library name or a path).
    models: dict[str, str] = field(default_factory=lambda: {"chat": "smollm2", "translate": "gemma3-270m"})
    theme: str = "textual-dark"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    repeat_penalty: float = DEFAULT_REPEAT_PENALTY
    max_tokens: int | None = 1024
    context_length: int | None = None
    # Disk for conversations' KV caches (chat/prompt_cache.py), in MiB: None sizes it from the free
    # disk, 0 keeps nothing.
    prompt_cache_mb: int | None = None
    # Segments the translation screen keeps in flight at once (translate --parallel): None chooses
    # from the machine's memory, 1 translates one at a time.
    translate_parallel: int | None = None

    def conversation_settings(self, mode: str = "chat") -> ConversationSettings:
        """The settings a new conversation starts with."""
        return ConversationSettings(
            model=self.models.get(mode, "smollm2"),
            system_prompt=self.system_prompt,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            context_length=self.context_length,
            repeat_penalty=self.repeat_penalty,
        )


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def _text(max_length: int) -> Callable[[object, str], str]:
    def check(value: object, name: str) -> str:
        if not isinstance(value, str) or len(value) > max_length:
            raise BadInputError(f"{name} must be text of at most {max_length} characters, not {shown(value)}")
        return value

    return check


def _optional(check: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
    return lambda value, name: None if value is None else check(value, name)


def _models(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadInputError(f'{name} must be an object like {{"chat": "smollm2"}}, not {shown(value)}')
    for mode, model in value.items():
        if mode not in MODES:
            raise BadInputError(f"{name}: unknown mode {shown(mode)}; the modes are {', '.join(MODES)}")
        if not isinstance(model, str) or not model.strip() or len(model) > 4096:
            raise BadInputError(f"{name}.{mode} must be a model name or a path, not {shown(model)}")
    return {**Config().models, **value}


# Each setting's check: the value itself when it is usable, else BadInputError naming the setting.
CHECKS: dict[str, Callable[[object, str], Any]] = {
    "models": _models,
    "theme": _text(100),
    "system_prompt": _text(100_000),
    "temperature": TEMPERATURE.check,
    "top_p": TOP_P.check,
    "repeat_penalty": REPEAT_PENALTY.check,
    "max_tokens": _optional(MAX_TOKENS.check),
    "context_length": _optional(CHAT_CONTEXT.check),
    "prompt_cache_mb": _optional(PROMPT_CACHE_MB.check),
    "translate_parallel": _optional(PARALLEL.check),
}
assert set(CHECKS) == {f.name for f in fields(Config)}, "every setting needs a check"


def load_config(path: Path | None = None) -> Config:
    """The config file's values over the defaults; a broken file is a BadInputError naming it and the setting."""
    path = path or config_path()
    if not path.exists() and not path.is_symlink():
        return Config()
    data = read_json_object(path, "config", max_bytes=CONFIG_MAX_BYTES, max_depth=CONFIG_MAX_DEPTH)
    unknown = sorted(set(data) - set(CHECKS))
    if unknown:
        named = ", ".join(repr(key[:40]) for key in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise BadInputError(f"{path}: unknown setting(s) {named}; known: {', '.join(sorted(CHECKS))}")
    fix = "; fix it or delete the line to get the default"
    values = {}
    for key, value in data.items():
        try:
            values[key] = CHECKS[key](value, key)
        except BadInputError as err:
            raise BadInputError(f"{path}: {err}{fix}") from None
    return replace(Config(), **values)


def save_config(config: Config, path: Path | None = None) -> None:
    """Write the config file (complete or not at all)."""
    path = path or config_path()
    with atomic_output(_linked_file(path), force=True, unwritable=HOME_NOT_WRITABLE) as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")


def _linked_file(path: Path) -> Path:
    """The file to replace when writing `path`: through a link (config.json kept in a dotfiles
    repo), the file linked to; replacing the link left that file behind, no longer read."""
    return Path(os.path.realpath(path))


def update_config(changes: dict[str, Any], path: Path | None = None) -> None:
    """Set the given settings in the config file as it is now, leaving its other lines as they are.

    The app once wrote back the whole file it read at start: a hand edit made while it was open was
    reverted, and every default was written out. Here the file is read again under a lock (two app
    windows), checked (a file broken meanwhile is a BadInputError and stays as it is), and only
    `changes` are set; "models" is merged by mode ({"chat": NAME} leaves the translate model).
    Raises OSError when the file cannot be written (a full disk).
    """
    path = path or config_path()
    unknown = set(changes) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}")
    with locked(path):
        load_config(path)  # the file as it is now must be sound before any of it is written back
        exists = path.exists() or path.is_symlink()
        data = read_json_object(path, "config", CONFIG_MAX_BYTES, CONFIG_MAX_DEPTH) if exists else {}
        for key, value in changes.items():
            if key == "models":
                value = {**data.get("models", {}), **value}
            CHECKS[key](value, key)  # a value the file must not hold is refused, not written
            data[key] = value
        with atomic_output(_linked_file(path), force=True, unwritable=HOME_NOT_WRITABLE) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
