"""Per-conversation settings: model, system prompt, sampling, reply and context length."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from llamadesk.app.chat.store import ConversationSettings
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.settings.input_fields import SETTING_FIELDS, parse_settings, settings_fields


def check_model_exists(spec: str) -> None:
    """Refuse a model the library does not have, as `chat -m` does: saved, it would fail every reply.

    Raises BadInputError naming the models there are (LlamadeskError for a damaged library record)."""
    # Imported here: the library pulls in the GGUF reader, which the app's start does without.
    from llamadesk.app.library.catalog import resolve_model

    resolve_model(spec)


class SettingsScreen(ModalScreen[ConversationSettings | None]):
    """Edit one conversation's settings; ctrl+s or Save applies, Esc cancels."""

    CSS_PATH = Path(__file__).with_name("settings.tcss")
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, settings: ConversationSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        values = settings_fields(self.settings)
        with VerticalScroll(id="settings"):
            yield Label("Conversation settings", classes="title")
            for field in SETTING_FIELDS:
                yield Label(field.label)
                yield Input(values[field.name], id=field.name)
            yield Label("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def action_save(self) -> None:
        fields = {f.name: self.query_one(f"#{f.name}", Input).value for f in SETTING_FIELDS}
        try:
            settings = parse_settings(fields)
            if settings.model != self.settings.model:
                check_model_exists(settings.model)
        except (LlamadeskError, OSError) as err:
            self.query_one("#error", Label).update(Text(str(err)))
            return
        self.dismiss(settings)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()
