"""The user's defaults: one JSON file under the config folder (LLAMADESK_HOME honoured).

How models load on this machine (threads, context, KV cache type) is load.json's business
(load_config.py), shared with the CLI; this file holds what the app and its conversations start with.

A missing file means every default; a key the file leaves out keeps its default, so files written
by older versions keep working. The app writes the file back when the user changes a default
(the theme, for instance), atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from llamadesk.app.chat.store import ConversationSettings
from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.paths import config_dir
from llamadesk.app.settings.chat_defaults import (
    DEFAULT_REPEAT_PENALTY,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
)

CONFIG_FILE = "config.json"


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


def load_config(path: Path | None = None) -> Config:
    """The config file's values over the defaults; a broken file is a BadInputError naming it."""
    path = path or config_path()
    if not path.exists():
        return Config()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path} is not valid JSON ({err}); fix it or delete it to get the defaults") from err
    if not isinstance(data, dict):
        raise BadInputError(f"{path} must hold a JSON object; fix it or delete it to get the defaults")
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInputError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    defaults = Config()
    if "models" in data:
        data["models"] = {**defaults.models, **data["models"]}
    return replace(defaults, **data)


def save_config(config: Config, path: Path | None = None) -> None:
    """Write the config file (complete or not at all)."""
    path = path or config_path()
    with atomic_output(path, force=True) as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
