"""What the app's three modes (chat, translation, the model manager) share: a footer that starts with
the app's own keys.

Textual's footer lists the focused widget's keys, then the screen's, then the app's, and cuts off
what does not fit. Each mode has more keys of its own than 80 or 120 columns hold, so the keys
that lead everywhere else (F1 for every key, F6 between chat and translation, F5 for the models)
never showed, and a new user had no way to learn them from the screen. The app's keys now come
first, in the order the app declares them. Only the order changes: which key does what is still
Textual's to decide.
"""

from __future__ import annotations

from textual.binding import ActiveBinding, Binding
from textual.screen import Screen


class ModeScreen(Screen):
    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        bindings = super().active_bindings
        declared = [
            key for binding in self.app.BINDINGS if isinstance(binding, Binding) for key in binding.key.split(",")
        ]
        app_keys = sorted(
            (key for key, active in bindings.items() if active.node is self.app),
            key=lambda key: declared.index(key) if key in declared else len(declared),
        )
        return {key: bindings[key] for key in app_keys} | {k: v for k, v in bindings.items() if k not in app_keys}
