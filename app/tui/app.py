"""The llamadesk app: modes (chat and translation, F6 switches; F5 the model manager), the engine's
thread, the store, the config, themes, help and the command palette.

Adding a screen (as "translate" and "models" were): a module and a .tcss under screens/,
one entry in MODE_SCREENS (its screen gets the app's store, engine host and config), and one
app binding such as Binding(KEY, "switch_mode('translate')", "Translate") (Textual's own
switch_mode action). Every binding a screen declares becomes a command-palette entry and a line
of the help screen by itself. All screens share the one EngineHost, so the model in memory is
the last one asked for, whichever screen asked.

What goes wrong with the files the app keeps never stops it from opening: a broken config.json or
load.json gives a notification and the defaults, and the store says itself when it had to start
afresh or cannot save (chat/store.py). When the app itself dies, `llamadesk` exits 1 with one line
on stderr; the traceback goes to crash.log in the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from rich.console import Console
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from llamadesk.app.chat.prompt_cache import PromptCache, budget_from_megabytes, default_cache_folder
from llamadesk.app.chat.store import Store
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.paths import data_dir
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.settings.load_config import configured_load_settings
from llamadesk.app.settings.user_config import Config, load_config, update_config
from llamadesk.app.tui.engine_host import EngineHost, EngineLoader, load_llama_engine
from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.screens.help import HelpScreen
from llamadesk.app.tui.screens.models import ModelsScreen
from llamadesk.app.tui.screens.translate import TRANSLATION_MODEL, TranslateScreen

TRANSLATE_CONTEXT = 4096  # translation needs little; load.json's ctx wins when it sets one

# Mode name -> how to build its screen. One key per mode switches to it (see BINDINGS).
MODE_SCREENS: dict[str, Callable[[LlamadeskApp], Screen]] = {
    "chat": lambda app: ChatScreen(app.store, app.host, app.config.conversation_settings("chat"), app.load_defaults),
    "translate": lambda app: TranslateScreen(
        app.store,
        app.host,
        replace(app.load_defaults, n_ctx=app.load_defaults.n_ctx or TRANSLATE_CONTEXT),
        model=app.config.models.get("translate", TRANSLATION_MODEL),
        parallel=app.config.translate_parallel,
        remember_parallel=app.set_translate_parallel,
    ),
    "models": lambda app: ModelsScreen(app.config.models, app.set_default_model),
}
ENGINE_SHUTDOWN_TIMEOUT_S = 5.0
NOTICE_TIMEOUT_S = 20.0  # a line about the user's files stays long enough to be read
CRASH_LOG = "crash.log"


class LlamadeskApp(App[None]):
    """Chat with local models; keyboard first."""

    TITLE = "llamadesk"
    BINDINGS = [
        Binding("f1", "help", "Keys", show=True),
        # Priority: the text areas would otherwise take f5/f6 for themselves.
        Binding("f6", "app.toggle_mode", "Chat / Translate", priority=True),
        Binding("f5", "app.switch_mode('models')", "Models", priority=True),
        Binding("question_mark", "help", "Keys", show=False),
        # Not in the footer (F1 and the palette list it; the README says it): room for the mode's own keys.
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        store: Store | None = None,
        config: Config | None = None,
        engine_loader: EngineLoader = load_llama_engine,
        save_settings: bool = True,
        load_defaults: LoadSettings | None = None,
        prompt_cache: PromptCache | None = None,
    ) -> None:
        super().__init__()
        # Lines about the user's files, shown once the app is on screen.
        self.startup_notices: list[str] = []
        self._save_settings = save_settings
        self.config = config if config is not None else self._read_config()
        # How models load here (load.json, shared with the CLI); a conversation's own context wins.
        self.load_defaults = load_defaults if load_defaults is not None else self._read_load_settings()
        # The store's own lines are shown from store.notices at mount, not printed under the app.
        self.store = store if store is not None else Store(on_notice=lambda _line: None)
        if prompt_cache is None:  # config.json's prompt_cache_mb (0: off); by default sized from the free disk
            folder = default_cache_folder()
            prompt_cache = PromptCache(folder, budget_from_megabytes(self.config.prompt_cache_mb, folder))
        self.host = EngineHost(engine_loader, prompt_cache)
        self.crash: BaseException | None = None
        self.stopped_by: int | None = None  # SIGTERM or SIGHUP, when one ended the app
        self._engine_thread_done = threading.Event()
        self.mode_screens: dict[str, Screen] = {}  # the screens the modes have built so far
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme

    def _read_config(self) -> Config:
        try:
            return load_config()
        except LlamadeskError as err:
            # Saving the theme would overwrite the user's file with the defaults: not until it is fixed.
            self._save_settings = False
            self.startup_notices.append(f"{err} (until then the app uses the defaults and saves no settings)")
            return Config()

    def _read_load_settings(self) -> LoadSettings:
        try:
            return configured_load_settings()
        except LlamadeskError as err:
            self.startup_notices.append(f"{err} (until then models load with the settings that fit this machine)")
            return LoadSettings()

    def show_notice(self, line: str) -> None:
        """A line about the user's files (any thread: Textual's notify is thread-safe)."""
        self.notify(line, severity="warning", timeout=NOTICE_TIMEOUT_S, markup=False)

    def on_mount(self) -> None:
        # SIGTERM and SIGHUP end the app as ctrl+q does: without this their default killed the
        # process at once, leaving the terminal in the app's screen with mouse reporting on.
        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # Windows; not the main thread
                    loop.add_signal_handler(signum, self._stop_by_signal, signum)
        for line in [*self.startup_notices, *self.store.notices]:
            self.show_notice(line)
        self.store.on_notice = self.show_notice
        for mode in MODE_SCREENS:
            self.add_mode(mode, partial(self._build_mode, mode))
        # The one thread that owns the model (EngineHost.serve), as a Textual thread worker.
        self.run_worker(self._serve_engine, thread=True, name="engine", group="engine")
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.switch_mode("chat")

    def _stop_by_signal(self, signum: int) -> None:
        self.stopped_by = signum
        self.exit()

    def _build_mode(self, mode: str) -> Screen:
        screen = MODE_SCREENS[mode](self)
        self.mode_screens[mode] = screen
        return screen

    def set_default_model(self, mode: str, name: str) -> None:
        """Make `name` the model `mode` opens with (saved in the config); a new chat or the next
        translation uses it at once."""
        self.config = replace(self.config, models={**self.config.models, mode: name})
        self._save_setting({"models": {mode: name}})
        screen = self.mode_screens.get(mode)
        if isinstance(screen, ChatScreen):
            screen.defaults = replace(screen.defaults, model=name)
        elif isinstance(screen, TranslateScreen):
            screen.model = name

    def set_translate_parallel(self, segments: int | None) -> None:
        """Remember how many segments the translation screen keeps in flight (None: the machine's choice)."""
        self.config = replace(self.config, translate_parallel=segments)
        self._save_setting({"translate_parallel": segments})

    def _save_setting(self, changes: dict[str, object]) -> None:
        """Write `changes` into config.json (only them: a hand edit made meanwhile stays). A file that
        cannot be written (a full disk, a read-only folder) is said in a notification, not a crash:
        the setting still applies until the app closes."""
        if not self._save_settings:
            return
        try:
            update_config(changes)
        except (OSError, LlamadeskError) as err:
            self.notify(
                f"could not save the setting in config.json ({err}); it applies until the app closes",
                severity="warning",
                timeout=NOTICE_TIMEOUT_S,
                markup=False,
            )

    def action_toggle_mode(self) -> None:
        """Switch between chat and translation (one key, both ways)."""
        self.switch_mode("translate" if self.current_mode == "chat" else "chat")

    def _serve_engine(self) -> None:
        try:
            self.host.serve()
        finally:
            self._engine_thread_done.set()

    def _remember_theme(self, theme) -> None:
        self.config = replace(self.config, theme=theme.name)
        self._save_setting({"theme": theme.name})

    async def action_quit(self) -> None:
        self.shutdown_engine()
        self.exit()

    def shutdown_engine(self) -> None:
        """Stop any reply and close the model (its memory goes back) before the app ends."""
        self.host.shutdown()
        self._engine_thread_done.wait(ENGINE_SHUTDOWN_TIMEOUT_S)

    def on_unmount(self) -> None:
        if not self._engine_thread_done.is_set():
            self.shutdown_engine()

    # -- help and the command palette -------------------------------------------------------

    def key_rows(self) -> list[tuple[str, str]]:
        """(key, description) for the current screen's actions, the app's, and the widgets' keys."""
        bindings = [*self.screen.BINDINGS, *self.BINDINGS]
        rows = [(self.get_key_display(b), b.description) for b in bindings if isinstance(b, Binding) and b.description]
        rows += list(getattr(self.screen, "WIDGET_KEYS", ()))
        seen: set[str] = set()
        return [row for row in rows if not (row[1] in seen or seen.add(row[1]))]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_rows()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action of the screen and the app, by its key's description, then Textual's own commands.

        An entry's help line names its key as the footer shows it. Textual's commands whose title
        one of ours has (its "Keys" panel, where F1 opens llamadesk's help screen) are left out, so
        that no title stands twice in the palette for two different things.
        """
        ours: dict[str, SystemCommand] = {}
        # Each binding's action runs where its key would run it: the screen's on the screen, the
        # app's on the app (the screen has no "help" or "quit" of its own).
        bound = [(binding, screen) for binding in screen.BINDINGS] + [(binding, self) for binding in self.BINDINGS]
        for binding, owner in bound:
            if not isinstance(binding, Binding) or not binding.description or binding.description in ours:
                continue
            ours[binding.description] = SystemCommand(
                binding.description,
                f"key: {self.get_key_display(binding)}",
                partial(self.run_action, binding.action, owner),
            )
        yield from ours.values()
        yield from (command for command in super().get_system_commands(screen) if command.title not in ours)

    def _handle_exception(self, error: Exception) -> None:
        # Textual's hook for an exception no handler caught (it then ends the app): remembered so
        # that run_app can say what happened in one line.
        if self.crash is None:
            self.crash = error
        super()._handle_exception(error)


def run_app(app: LlamadeskApp | None = None, headless: bool = False) -> int:
    """Open the app and return the exit code: 0, or 1 with one line on stderr when it died.

    Textual prints the traceback of an error that ended the app on stderr, a screenful; it goes
    to crash.log in the data folder instead, and the line says where.
    """
    app = app if app is not None else LlamadeskApp()
    report = io.StringIO()
    app.error_console = Console(file=report, width=120, color_system=None, markup=False, highlight=False)
    app.run(headless=headless)
    if app.stopped_by is not None and app.crash is None:
        print(f"llamadesk: stopped by {signal.Signals(app.stopped_by).name}", file=sys.stderr)
        return 128 + app.stopped_by
    if app.crash is None and not app.return_code:
        return 0
    if isinstance(app.crash, LlamadeskError):
        print(f"llamadesk: {app.crash}", file=sys.stderr)
        return app.crash.exit_code
    log = _write_crash_log(report.getvalue())
    what = f"{type(app.crash).__name__}: {app.crash}" if app.crash is not None else "an unexpected error"
    what = " ".join(what.split())[:300]
    where = f"; the details are in {log}" if log is not None else ""
    print(f"llamadesk: the app stopped on an unexpected error ({what}){where}", file=sys.stderr)
    return app.return_code or 1


def _write_crash_log(text: str) -> Path | None:
    try:
        log = data_dir() / CRASH_LOG
        log.write_text(text, encoding="utf-8")
        return log
    except (OSError, LlamadeskError):  # LlamadeskError: no data folder to write it in
        return None
