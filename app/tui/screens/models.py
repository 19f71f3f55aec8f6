"""The model manager: the library as a table, with delete, set-as-default, pull and convert.

The screen turns keys into calls of the library (app/library.py), the config and the jobs in
model_jobs.py; every call that reads files or the network runs in a thread worker, and what it
finds comes back by message. One job (pull or convert) runs at a time; Esc or ctrl+c cancels it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.tui.model_jobs import DEFAULT_CONVERT_TYPE, CancelToken, JobProgress
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.mode_screen import ModeScreen
from llamadesk.app.tui.screens.model_picker import library_failure

if TYPE_CHECKING:
    from llamadesk.app.library.catalog import LibraryEntry, Removal

COLUMNS = ("Model", "Arch", "Params", "Quant", "Size", "Ctx", "Chat", "Fits", "Source")
# The modes a model can be the default for: config key -> what the user reads.
DEFAULT_MODES = {"chat": "chat", "translate": "translation"}


def eval_text(entry: LibraryEntry) -> str:
    """The latest saved evaluation (`llamadesk eval --save`), or a dash."""
    from llamadesk.quantize.evaluation import summary_line  # the sidecar's format is quantize's

    return summary_line(entry.eval_results[-1]) if entry.eval_results else "-"


def job_failure(job: str, err: Exception) -> str:
    """The one line a failed job leaves. The library's errors are written for the user; anything
    else is a bug, still shown as one line so the app (and the user's other work) keeps running."""
    if isinstance(err, LlamadeskError):
        return str(err)
    if isinstance(err, OSError):
        return f"the {job} failed: {err}"
    return f"the {job} failed unexpectedly ({type(err).__name__}: {err}); please report it"


def library_rows(entries: list[LibraryEntry]) -> list[tuple[str, ...]]:
    """One table row per model, in COLUMNS order."""
    return [
        (
            e.name,
            e.architecture,
            e.size_label,
            e.quantization,
            format_bytes(e.file_size),
            str(e.context_length),
            "yes" if e.has_chat_template else "no",
            "yes" if e.fits else "no",
            e.source,
        )
        for e in entries
    ]


def entry_details(entry: LibraryEntry, defaults: dict[str, str]) -> str:
    """Everything about one model, for the panel under the table."""
    from llamadesk.app.library.catalog import (
        describe_origin,  # the library loads with the first listing, not at start-up
    )

    default_for = [label for mode, label in DEFAULT_MODES.items() if defaults.get(mode) == entry.name]
    fits = "fits" if entry.fits else "does not fit"
    lines = [
        f"{entry.name} · {entry.architecture} · {entry.parameters:,} parameters · {entry.quantization}"
        f"{' · default for ' + ' and '.join(default_for) if default_for else ''}",
        f"file: {entry.path}" + (f" ({entry.parts} parts)" if entry.parts > 1 else ""),
        f"origin: {describe_origin(entry)} ({'deletable' if entry.deletable else 'not made by llamadesk: kept'})"
        f" · eval: {eval_text(entry)}",
        f"memory: needs {format_bytes(entry.memory_needed)} "
        f"(+{format_bytes(entry.memory_reserved)} kept free for the system), "
        f"{format_bytes(entry.memory_available)} free ({fits})",
    ]
    return "\n".join(lines)


class LibraryRead(Message):
    """The library, read in a thread."""

    def __init__(self, entries: list[LibraryEntry], select: str | None = None, skipped: list | None = None) -> None:
        super().__init__()
        self.entries = entries
        self.select = select  # the model to put the cursor on (a new one), else the one it was on
        self.skipped = skipped or []  # catalog.SkippedModel: files that could not be read, and why


class LibraryUnreadable(Message):
    """The library could not be read at all (a damaged library.json): one line for the user."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class JobProgressed(Message):
    def __init__(self, progress: JobProgress) -> None:
        super().__init__()
        self.progress = progress


class JobEnded(Message):
    """A job (or a delete) finished: one line for the user; failed says whether it went wrong."""

    def __init__(self, line: str, failed: bool = False, select: str | None = None, job: bool = True) -> None:
        super().__init__()
        self.line = line
        self.failed = failed
        self.select = select  # the model to put the cursor on afterwards
        self.job = job  # False: a delete, which runs beside a job


class ModelsScreen(ModeScreen):
    """Manage the local library; every action has a key and a command-palette entry."""

    CSS_PATH = Path(__file__).with_name("models.tcss")
    BINDINGS = [
        Binding("p", "pull", "Pull from the Hub"),
        Binding("k", "convert", "Convert a checkpoint"),
        Binding("c", "set_default('chat')", "Default for chat"),
        Binding("t", "set_default('translate')", "Default for translation"),
        Binding("f8,delete", "delete", "Delete model"),
        Binding("r", "refresh", "Reread the library", show=False),
        Binding("escape,ctrl+c", "cancel_job", "Cancel the job", show=False, priority=True),
    ]
    WIDGET_KEYS = (("up/down", "Choose a model"), ("ctrl+p", "Command palette"))

    def __init__(self, defaults: dict[str, str], set_default: Callable[[str, str], None]) -> None:
        """`defaults`: mode -> model name now; `set_default(mode, name)` saves a new default."""
        super().__init__()
        self.defaults = dict(defaults)
        self._set_default = set_default
        self.entries: list[LibraryEntry] = []
        self.job: CancelToken | None = None
        self.job_name = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="manager"):
            yield DataTable(id="library", cursor_type="row")
            yield Static("Reading the library…", id="details")
            with Horizontal(id="job"):
                yield Label("", id="job-line")
                yield ProgressBar(id="job-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.query_one("#job-progress").display = False
        self.action_refresh()

    def on_unmount(self) -> None:
        # The app is closing: a thread cannot be killed, so ask the job to stop at its next step
        # (a download keeps its partial file, a conversion leaves nothing) rather than wait for it.
        if self.job is not None:
            self.job.cancel()

    # -- the library ------------------------------------------------------------------------

    def action_refresh(self, select: str | None = None) -> None:
        self._read_library(select)

    @work(thread=True, exclusive=True, group="library")
    def _read_library(self, select: str | None = None) -> None:
        # Imported here: reading GGUF headers pulls in gguf and numpy, which would slow the app's start.
        from llamadesk.app.library.catalog import read_library

        try:
            entries, skipped = read_library()
        except (LlamadeskError, OSError) as err:
            # A damaged library record is the user's file to fix, not a reason to end the app.
            self.post_message(LibraryUnreadable(library_failure(err)))
            return
        self.post_message(LibraryRead(entries, select, skipped))

    @on(LibraryUnreadable)
    def _show_unreadable(self, message: LibraryUnreadable) -> None:
        self.entries = []
        self.query_one(DataTable).clear()
        self.query_one("#details", Static).update(Text(message.line))
        self._say(message.line, failed=True)

    @on(LibraryRead)
    def _show_library(self, message: LibraryRead) -> None:
        table = self.query_one(DataTable)
        current = message.select or (self.selected.name if self.selected else None)
        self.entries = message.entries
        table.clear()
        for row in library_rows(self.entries):
            table.add_row(*row, key=row[0])
        if current is not None:
            self._select(current)
        self._show_details()
        table.focus()
        if message.skipped:
            # A damaged file in an added folder never hides the rest; the user learns which and why.
            first = message.skipped[0]
            more = f" (and {len(message.skipped) - 1} more)" if len(message.skipped) > 1 else ""
            self.notify(f"skipped {first.name}: {first.reason}{more}", severity="warning", markup=False)

    def _select(self, name: str) -> None:
        names = [e.name for e in self.entries]
        if name in names:
            self.query_one(DataTable).move_cursor(row=names.index(name))
            self._show_details()

    @property
    def selected(self) -> LibraryEntry | None:
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row < 0 or table.cursor_row >= len(self.entries):
            return None
        return self.entries[table.cursor_row]

    @on(DataTable.RowHighlighted)
    def _show_details(self) -> None:
        entry = self.selected
        details = self.query_one("#details", Static)
        if entry is None:
            details.update("The library is empty: pull a model (p) or convert a checkpoint (k).")
        else:
            details.update(Text(entry_details(entry, self.defaults)))

    # -- defaults and delete ----------------------------------------------------------------

    def action_set_default(self, mode: str) -> None:
        entry = self.selected
        if entry is None:
            return
        self._set_default(mode, entry.name)
        self.defaults[mode] = entry.name
        self._show_details()
        self._say(f"{entry.name} is now the default for {DEFAULT_MODES[mode]}")

    def action_delete(self) -> None:
        entry = self.selected
        if entry is not None:
            self._plan_removal(entry.name)

    @work(thread=True, group="delete")
    def _plan_removal(self, name: str) -> None:
        from llamadesk.app.library.catalog import plan_removal

        try:
            removal = plan_removal(name)
        except LlamadeskError as err:
            self.post_message(JobEnded(str(err), failed=True, job=False))
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(removal)

        self.app.call_from_thread(
            self.app.push_screen, ConfirmScreen(f"Remove {name}? This will {removal.summary}."), confirmed
        )

    @work(thread=True, group="delete")
    def _remove(self, removal: Removal) -> None:
        try:
            removed = removal.apply()
        except (LlamadeskError, OSError) as err:
            self.post_message(JobEnded(f"could not remove {removal.name}: {err}", failed=True, job=False))
            return
        line = f"removed {removal.name} ({len(removed)} file(s) deleted)"
        was_default = [label for mode, label in DEFAULT_MODES.items() if self.defaults.get(mode) == removal.name]
        if was_default:
            line += f"; it was the default for {' and '.join(was_default)}: choose another (c / t)"
        self.post_message(JobEnded(line, job=False))

    # -- jobs: pull and convert -------------------------------------------------------------

    def _start(self, name: str) -> CancelToken | None:
        if self.job is not None:
            self._say(f"{self.job_name} is still running; Esc cancels it", failed=True)
            return None
        self.job, self.job_name = CancelToken(), name
        bar = self.query_one("#job-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._say(f"{name}…")
        return self.job

    def action_pull(self) -> None:
        def asked(spec: str | None) -> None:
            if spec and (token := self._start(f"pulling {spec}")):
                self._pull(spec, token)

        self.app.push_screen(TextInputScreen("Pull from the Hub: REPO, REPO:QUANT or REPO:FILE", ""), asked)

    @work(thread=True, group="job")
    def _pull(self, spec: str, token: CancelToken) -> None:
        from llamadesk.app.tui.model_jobs import pull

        try:
            result = pull(spec, self._report, token)
        except Exception as err:  # noqa: BLE001 (any failure ends the job with one line; see job_failure)
            self.post_message(JobEnded(job_failure("pull", err), failed=True))
        else:
            got = "downloaded" if result.downloaded else "found in the cache"
            self.post_message(JobEnded(f"pulled {result.name} ({result.repo}, {got})", select=result.name))

    def action_convert(self) -> None:
        def asked_folder(folder: str | None) -> None:
            if folder:
                self.app.push_screen(
                    TextInputScreen(f"Quantization type for {folder} (Q8_0, F16, Q4_K_M…)", DEFAULT_CONVERT_TYPE),
                    lambda qtype: asked_type(folder, qtype),
                )

        def asked_type(folder: str, qtype: str | None) -> None:
            if qtype and (token := self._start(f"converting {folder}")):
                self._convert(folder, qtype, token)

        self.app.push_screen(
            TextInputScreen("Convert a checkpoint folder (config.json and weights):", ""), asked_folder
        )

    @work(thread=True, group="job")
    def _convert(self, folder: str, qtype: str, token: CancelToken) -> None:
        from llamadesk.app.core.gguf_naming import model_stem
        from llamadesk.app.tui.model_jobs import convert

        try:
            path, notes = convert(folder, qtype, self._report, token)
        except Exception as err:  # noqa: BLE001 (any failure ends the job with one line; see job_failure)
            self.post_message(JobEnded(job_failure("conversion", err), failed=True))
        else:
            # The CLI's `note:` lines (an index left unread beside model.safetensors: which weights
            # went in), kept where the user can read them whole; the job line shortens them.
            for note in notes:
                self.app.call_from_thread(self.notify, note, severity="warning", markup=False, timeout=30)
            said = "".join(f"; note: {note}" for note in notes)
            self.post_message(JobEnded(f"converted into {path}{said}", select=model_stem(path.name)))

    def _report(self, progress: JobProgress) -> None:
        self.post_message(JobProgressed(progress))  # from the job's thread; post_message is thread-safe

    @on(JobProgressed)
    def _progressed(self, message: JobProgressed) -> None:
        progress = message.progress
        if self.job is None:
            return
        self.query_one("#job-progress", ProgressBar).update(total=progress.total, progress=progress.done)
        amount = ""
        if progress.total and progress.stage.startswith("downloading"):
            amount = f" {format_bytes(progress.done)}/{format_bytes(progress.total)}"
        elif progress.total:
            amount = f" {progress.done}/{progress.total}"
        self._say(f"{progress.stage}{amount} · Esc cancels")

    @on(JobEnded)
    def _ended(self, message: JobEnded) -> None:
        if message.job:
            self.job = None
            self.query_one("#job-progress").display = False
        self._say(message.line, failed=message.failed)
        self.action_refresh(message.select)

    def action_cancel_job(self) -> None:
        if self.job is None:
            self._say("no job is running")
            return
        self.job.cancel()
        self._say(f"cancelling {self.job_name} (it stops after the step in progress)…")

    def _say(self, line: str, failed: bool = False) -> None:
        label = self.query_one("#job-line", Label)
        label.update(Text(" ".join(line.split())))  # one line, whatever the error's text holds
        label.set_class(failed, "failed")
