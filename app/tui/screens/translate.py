"""The translation screen: language pickers with swap, source and translation panes, streaming
output, open/save a file with a progress bar, copy the result, history of past translations.
Several segments are translated at once on the batched decoder where the machine has the memory
(as `translate --parallel`; config.json's `translate_parallel`), shown in document order.

All translation logic is the `llamadesk.app.translate` library; this screen only turns keys into
a job for the engine's thread (EngineHost.run_with_model) and shows the events that come back.
"""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Footer, Label, ProgressBar, Select, TextArea

from llamadesk.app.chat.store import Store, StoredTranslation
from llamadesk.app.core.atomic_file import atomic_output, check_writable_target
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.value_ranges import PARALLEL
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.translate import (
    ChunkDone,
    ChunkText,
    JobCancelled,
    JobFinished,
    JobSettings,
    JobStarted,
    ResumeLog,
    TranslationEvent,
    TranslationJob,
    existing_mode,
    find_language,
    model_identity,
    sidecar_path,
    translator_for,
)
from llamadesk.app.translate.confidence import is_low, low_confidence_spans
from llamadesk.app.translate.detection import SourceLanguageUnknown, load_in_background
from llamadesk.app.translate.file_job import FileJob, TranslatableFile
from llamadesk.app.translate.formats import format_of, read_translatable, reads_as_markdown
from llamadesk.app.translate.languages import LANGUAGES
from llamadesk.app.translate.parallel import ParallelTranslators, default_parallel_for
from llamadesk.app.translate.segment import SegmentResult
from llamadesk.app.translate.source_text import read_source_bytes, read_source_text
from llamadesk.app.tui.engine_host import EngineFailed, EngineHost, ModelLoaded, ModelLoading
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.mode_screen import ModeScreen
from llamadesk.app.tui.screens.translation_history import TranslationHistoryScreen
from llamadesk.app.tui.widgets.plain_text_area import PlainTextArea
from llamadesk.app.tui.widgets.review_text_area import ReviewTextArea

DETECT = "auto"
AUTOMATIC = "auto"  # segments at once chosen from the machine's memory
TRANSLATION_MODEL = "gemma3-270m"  # the starter made for this mode; the chat model stays for chat
WAITING_FOR_CHAT = "waiting for the chat reply to finish (esc in chat stops it)"
# The app's words for what the CLI's advice (--from, --force) would say.
CHOOSE_SOURCE_LANGUAGE = "choose the source language in the picker on the left"
SAVE_ELSEWHERE = "ctrl+s saves the translation, under another name or over it"
# The pane shows a streaming segment's new text at most this often (as often as a chat reply is
# redrawn). Each wake-up is the UI thread's work, which on a small machine takes a CPU from
# llama.cpp's threads while they wait for each other at every operation: bench/tui_translate.py's
# document one segment at a time on 2 threads took 21.8 s woken for every token, 18.9 s every 0.1 s,
# 17.7 s every 0.25 s and 15.8 s never (bench/RESULTS.md "tui translate").
STREAM_REDRAW_S = 0.25
LANGUAGE_OPTIONS = [(language.name, code) for code, language in sorted(LANGUAGES.items(), key=lambda kv: kv[1].name)]


class TranslationUpdate(Message):
    """One event of the running translation, posted from the engine's thread."""

    def __init__(self, event: TranslationEvent | ChunkText) -> None:
        super().__init__()
        self.event = event


class TranslateScreen(ModeScreen):
    """Translate typed text or a file with the translation model."""

    CSS_PATH = Path(__file__).with_name("translate.tcss")
    # Only keys the text panes use themselves (f7 selects all, Esc) are priority bindings. The
    # others reach the screen after the focused pane has taken the keys typed before them, so
    # ctrl+r right after typing translates all of the text (a priority ctrl+r overtook them).
    BINDINGS = [
        Binding("ctrl+r", "translate", "Translate"),
        Binding("f7", "swap", "Swap languages", priority=True),
        Binding("escape", "stop", "Stop", priority=True),
        Binding("ctrl+o", "open_file", "Translate a file"),
        Binding("ctrl+s", "save", "Save translation"),
        Binding("f9", "copy", "Copy translation"),
        Binding("f8", "history", "Past translations"),
        Binding("f4", "segments", "Segments at once"),
    ]

    def __init__(
        self,
        store: Store,
        host: EngineHost,
        load_settings: LoadSettings,
        model: str = TRANSLATION_MODEL,
        source: str = DETECT,
        target: str = "fr",
        parallel: int | None = None,
        remember_parallel: Callable[[int | None], None] | None = None,
    ) -> None:
        """`parallel`: segments in flight at once (None: as `translate --parallel` chooses);
        `remember_parallel` keeps a new choice made on this screen (the app's config)."""
        super().__init__()
        self.parallel = parallel
        self._remember_parallel = remember_parallel
        self.store = store
        self.host = host
        self.load_settings = load_settings
        self.model = model
        self.initial = (source, target)
        self.job: TranslationJob | None = None
        self._stop_requested = threading.Event()  # Esc before the job exists (the model still loading)
        self._resume: ResumeLog | None = None
        self._done: list[SegmentResult] = []
        # The output of each segment in flight as it streams, written by the worker translating it.
        self._partials: dict[int, str] = {}
        # What the output pane shows of the running translation: so many finished segments on so
        # many lines, then the segment on show as far as it has streamed (None: no line for it).
        self._shown_done = self._shown_rows = 0
        self._shown_partial: str | None = None
        self._woken_at = 0.0  # when _streamed last woke the screen (time.monotonic)
        self.translation = ""
        self.output_path: Path | None = None
        self.running = False
        self._route = ""
        self._detected: str | None = None
        self._model_name = model
        self._source_text = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="languages"):
            yield Select(
                [("Detect language", DETECT), *LANGUAGE_OPTIONS],
                value=self.initial[0],
                allow_blank=False,
                id="source-language",
            )
            yield Button("⇄", id="swap", tooltip="Swap languages (F7)")
            yield Select(LANGUAGE_OPTIONS, value=self.initial[1], allow_blank=False, id="target-language")
        with Horizontal(id="panes"):
            yield PlainTextArea(id="source", soft_wrap=True)
            yield ReviewTextArea(id="target", soft_wrap=True, read_only=True)
        yield ProgressBar(id="progress", show_eta=False)
        # Plain text: the lines it shows name files, models and errors, which markup would mangle.
        yield Label("ctrl+r translates · F7 swaps · ctrl+o translates a file", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#source", TextArea).focus()
        # Hidden (its line kept, so the panes do not jump) until a translation starts: with no
        # total yet it would sweep back and forth under "--%", as if something were running.
        self.query_one("#progress", ProgressBar).visible = False
        load_in_background()  # the first translation's confidence check would otherwise wait for it

    # -- languages --------------------------------------------------------------------------

    @property
    def source_code(self) -> str:
        return str(self.query_one("#source-language", Select).value)

    @property
    def target_code(self) -> str:
        return str(self.query_one("#target-language", Select).value)

    @on(Button.Pressed, "#swap")
    def _swap_pressed(self) -> None:
        self.action_swap()

    def action_swap(self) -> None:
        """Swap the languages (a detected source becomes the detected language) and the texts."""
        if self.running:  # it swapped the panes under a running job: the source gave way to half a translation
            self.notify("A translation is running; Esc stops it", severity="warning")
            return
        source, target = self.source_code, self.target_code
        if source == DETECT:
            source = self._detected or "en"
        self.query_one("#source-language", Select).value = target
        self.query_one("#target-language", Select).value = source
        translated = self.query_one("#target", TextArea).text
        if translated:
            self.query_one("#source", TextArea).text = translated
            self.query_one("#target", TextArea).text = ""

    # -- segments at once -------------------------------------------------------------------

    def action_segments(self) -> None:
        """Ask how many segments to translate at once (the next translation uses it)."""
        current = AUTOMATIC if self.parallel is None else str(self.parallel)
        question = (
            f"Segments translated at once: {PARALLEL.describe()}, or auto (as many as this machine's "
            "memory allows). More is faster on long documents and takes more memory."
        )
        self.app.push_screen(TextInputScreen(question, current), self._segments_chosen)

    def _segments_chosen(self, answer: str | None) -> None:
        if answer is None:  # Esc (or an empty line): nothing changes
            return
        try:
            chosen = None if answer.lower() == AUTOMATIC else int(PARALLEL.parse(answer, "segments at once"))
        except BadInputError as err:
            self.notify(str(err), severity="error", markup=False)
            return
        self.parallel = chosen
        if self._remember_parallel is not None:
            self._remember_parallel(chosen)
        shown = "as many as memory allows" if chosen is None else str(chosen)
        self.notify(f"Segments at once: {shown}" + (" (from the next translation)" if self.running else ""))

    # -- translating ------------------------------------------------------------------------

    def action_translate(self) -> None:
        text = self.query_one("#source", TextArea).text
        if not text.strip():
            self.notify("Type or paste something to translate first", severity="warning")
            return
        self.start(text, output=None)

    def start(
        self, text: str, output: Path | None, document: TranslatableFile | None = None, markdown: bool = True
    ) -> None:
        """Translate `text`, or `document` (a catalog, subtitles, a page read from `text`'s file) if given.

        `markdown`: read the text as Markdown (pasted text is); a plain text file's indented lines
        are prose, not code to keep (formats.reads_as_markdown decides from the file's name)."""
        if self.running:
            self.notify("A translation is running; Esc stops it", severity="warning")
            return
        target = find_language(self.target_code)
        source = None if self.source_code == DETECT else find_language(self.source_code)
        settings = JobSettings(target=target, source=source, markdown=markdown)  # type: ignore[arg-type]
        self.running, self.output_path, self.job, self._resume = True, output, None, None
        self._source_text = text
        self._stop_requested.clear()
        self._done, self._partials = [], {}
        self._shown_done = self._shown_rows = 0
        self._shown_partial = None
        self.query_one("#target", TextArea).text = ""
        if self.host.replying:
            # The model's one thread answers the chat first; without a word the screen looked stuck.
            self.query_one("#status", Label).update(WAITING_FOR_CHAT)
        self.host.run_with_model(
            self.model,
            self.load_settings,
            lambda engine: self._run(engine, text, settings, document),
            self,
            stop=self.action_stop,  # quitting the app stops the translation rather than wait for it
        )

    def _run(self, engine, text: str, settings: JobSettings, document: TranslatableFile | None = None) -> None:
        """In the engine's thread: run the job, posting every event back to the screen."""
        self._model_name = getattr(getattr(engine, "summary", None), "name", self.model)
        translator = translator_for(engine)
        if document is not None:
            job: TranslationJob | FileJob = FileJob(translator, document, settings)
            units = len(job.units)
        else:
            job = TranslationJob(translator, text, settings)
            units = len(job.chunks)
        # Several segments in flight on the batched decoder, as `translate --parallel` does; not
        # for a single segment, which would only pay for the decoder's context.
        wanted = self.parallel if self.parallel is not None else default_parallel_for(engine.summary.file_size)
        n_parallel = min(units, wanted)
        if n_parallel > 1:
            try:
                job.parallel = ParallelTranslators(engine, translator.strategy, n_parallel)
            except LlamadeskError as err:  # no memory for the decoder's context: one at a time still works
                self.notify(f"translating one segment at a time: {err}", severity="warning", markup=False)
        if self.output_path is not None:
            # A file's finished chunks go to a sidecar beside its output, so a stopped (or killed)
            # translation of the same file resumes where it was, as the CLI's -o does.
            source = settings.source.code if settings.source else "detected"
            resume = {
                **model_identity(engine),  # the same record as the CLI's: either resumes the other's file
                "strategy": job.translator.strategy.name,
                "to": settings.target.code,
                "mode": (format_of(self.output_path) or settings.mode) if document is not None else settings.mode,
                "from": source,
                "glossary": [],
            }
            sidecar = sidecar_path(self.output_path)
            job.resume = self._resume = ResumeLog(sidecar, resume, existing_mode(self.output_path))
            if self._resume.note:
                self.notify(self._resume.note, severity="warning", markup=False)  # thread-safe
        self.job = job
        if self._stop_requested.is_set():
            job.cancel()
        try:
            for event in self.job.run(on_text=self._streamed):
                self.post_message(TranslationUpdate(event))
        except SourceLanguageUnknown as err:
            # Its message ends with the CLI's advice (--from); here the choice is the source picker.
            self.post_message(EngineFailed(f"{err.reason}; {CHOOSE_SOURCE_LANGUAGE}"))
        except LlamadeskError as err:
            self.post_message(EngineFailed(str(err)))
        finally:
            if job.parallel is not None:
                job.parallel.close()

    def _streamed(self, piece: ChunkText) -> None:
        """From the thread translating segment `piece.index`: keep its text, and wake the screen only
        when that segment is the one on show (the next in the document), at most every
        STREAM_REDRAW_S. With several in flight, a message and a redraw per token of every segment
        would take the CPU and the GIL from the model for text no one sees yet; the others show
        when their turn comes (ChunkDone), and the screen reads what has streamed when it wakes."""
        self._partials[piece.index] = self._partials.get(piece.index, "") + piece.text
        if piece.index != len(self._done):  # read across threads: at worst one redraw late or spare
            return
        now = time.monotonic()
        if now - self._woken_at >= STREAM_REDRAW_S:
            self._woken_at = now
            self.post_message(TranslationUpdate(piece))

    def action_stop(self) -> None:
        if not self.running:
            return
        self._stop_requested.set()  # seen by _run if the job is not made yet: never wait here
        if self.job is not None:
            self.job.cancel()

    @on(TranslationUpdate)
    def _update(self, message: TranslationUpdate) -> None:
        event = message.event
        output = self.query_one("#target", ReviewTextArea)
        progress = self.query_one("#progress", ProgressBar)
        status = self.query_one("#status", Label)
        if isinstance(event, JobStarted):
            self._languages = (event.source.code, event.target.code)
            progress.update(total=max(event.total, 1), progress=event.resumed)
            progress.visible = True
            if event.detected_confidence is not None:
                self._detected = event.source.code
            detected = f" (detected, {event.detected_confidence:.0%})" if event.detected_confidence is not None else ""
            self._route = f"{event.source.name}{detected} → {event.target.name}"
            status.update(f"{self._route}: 0/{event.total}")
        elif isinstance(event, ChunkText):  # a segment's text as it streams, posted by _streamed
            self._show_done(output)
        elif isinstance(event, ChunkDone):
            self._done.append(event.result)
            self._partials.pop(event.index, None)
            progress.update(progress=event.index + 1)
            self._show_done(output)
            status.update(f"{self._route}: {event.index + 1}/{event.total}")
        elif isinstance(event, JobFinished):
            self.running = False
            self.translation = event.text
            # Low-confidence segments stay highlighted in the result, for a person to review.
            output.show(event.text, low_confidence_spans(event.text, event.results))
            notes = sum(1 for r in event.results if r.fallback)
            low = sum(1 for r in event.results if is_low(r))
            status.update(
                f"{self._route}: done in {event.seconds:.1f} s"
                + (f"; {notes} segment(s) needed a fallback" if notes else "")
                + (f"; {low} low-confidence segment(s) to review" if low else "")
            )
            if self.output_path is not None:
                if self._write(self.output_path, event.text) and self._resume is not None:
                    self._resume.finish()
            # A file's translation is history too: its text comes back with F8 like a typed one.
            self.store.add_translation(*self._languages, self._source_text, event.text, self._model_name)
        elif isinstance(event, JobCancelled):
            self.running = False
            kept = "; translate the file again to resume" if self._resume is not None else ""
            if self._resume is not None:
                self._resume.close()
            status.update(f"stopped after {event.done} of {event.total}{kept}")

    def _show_done(self, output: ReviewTextArea) -> None:
        """The finished segments a line each (low-confidence ones highlighted), then the next one as it
        streams. With several in flight, the ones after it show when their turn comes, in order.

        Only what changed is written, at the end of the pane: a token of the segment on show is
        appended, and a segment that finishes replaces its streamed line (its final text can differ:
        a retry, restored placeholders). Rewriting the whole pane would cost in proportion to the
        document on every token."""
        partial = self._partials.get(len(self._done), "").strip() or None  # no line until it has text
        new = self._done[self._shown_done :]
        if not new and partial == self._shown_partial:
            return
        if (
            not new
            and partial is not None
            and self._shown_partial is not None
            and partial.startswith(self._shown_partial)
        ):
            output.append(partial[len(self._shown_partial) :])
        else:
            lines = [result.translation.strip() for result in new]
            finished = "\n".join(lines)
            tail = finished if partial is None else "\n".join([*lines, partial])
            output.replace_from_line(self._shown_rows, tail, low_confidence_spans(finished, new))
            self._shown_rows += sum(line.count("\n") + 1 for line in lines)
            self._shown_done = len(self._done)
        self._shown_partial = partial

    def _write(self, path: Path, text: str, replace: bool = False) -> bool:
        """Write `text` to `path` whole or not at all; an existing file is replaced only if `replace`."""
        if not replace and path.is_file():
            # atomic_output's own line advises the CLI's --force; here ctrl+s asks before replacing.
            self.notify(f"Could not save {path}: it already exists; {SAVE_ELSEWHERE}", severity="error", markup=False)
            return False
        try:
            with atomic_output(path, force=replace) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except (LlamadeskError, OSError) as err:
            self.notify(f"Could not save {path}: {err}", severity="error", markup=False)
            return False
        self.notify(f"Saved {path}", markup=False)
        return True

    @on(EngineFailed)
    def _failed(self, message: EngineFailed) -> None:
        self.running = False
        # Nothing was translated to the end: a bar left at its last value (100% of the previous
        # translation, say) would tell otherwise.
        self.query_one("#progress", ProgressBar).visible = False
        self.query_one("#status", Label).update(message.error)
        self.notify(message.error, severity="error", markup=False)

    @on(ModelLoading)
    def _loading(self, message: ModelLoading) -> None:
        self.query_one("#status", Label).update(f"loading {message.spec}…")

    @on(ModelLoaded)
    def _loaded(self, message: ModelLoaded) -> None:
        self.query_one("#status", Label).update(f"{message.info.name} loaded; translating…")

    # -- files and clipboard ----------------------------------------------------------------

    def action_open_file(self) -> None:
        def chosen(answer: str | None) -> None:
            if not answer:
                return
            path = Path(answer).expanduser()
            document = None
            refusal = _not_a_file(path)
            if refusal is not None:  # a FIFO's open waits for a writer, on the UI thread: the app froze
                self.notify(refusal, severity="error", markup=False)
                return
            try:
                if format_of(path) is not None:  # a catalog, subtitles, a page: translated as that format
                    data = read_source_bytes(path)
                    document = read_translatable(path, data, find_language(self.target_code))  # type: ignore[arg-type]
                    text = data.decode("utf-8")  # the reader has checked it is UTF-8
                else:
                    text = read_source_text(path)  # its own line endings, kept in the translation
            except LlamadeskError as err:
                self.notify(str(err), severity="error", markup=False)
                return
            except OSError as err:
                self.notify(f"Cannot read {path}: {err}", severity="error", markup=False)
                return
            self.query_one("#source", TextArea).text = text
            out = path.with_name(f"{path.stem}.{self.target_code}{path.suffix}")
            if out.exists() or out.is_symlink():  # the checker's line advises the CLI's --force
                self.notify(
                    f"{out} already exists; move it aside to translate {path.name} again",
                    severity="error",
                    markup=False,
                )
                return
            try:
                check_writable_target(out, False)
            except LlamadeskError as err:
                self.notify(f"{err}; move it aside to translate {path.name} again", severity="error", markup=False)
                return
            # markup=False wherever a toast names a file: report[draft].txt is a name, not markup.
            self.notify(f"Translating {path.name} into {out.name}", markup=False)
            self.start(text, output=out, document=document, markdown=reads_as_markdown(path))

        self.app.push_screen(TextInputScreen("File to translate (saved beside it as NAME.LANG.ext)"), chosen)

    def action_save(self) -> None:
        if not self.translation:
            self.notify("Nothing translated yet", severity="warning")
            return

        translation = self.translation

        def chosen(answer: str | None) -> None:
            if not answer:
                return
            path = Path(answer).expanduser()

            def replace_if_asked(yes: bool | None) -> None:
                if yes:
                    self._write(path, translation, replace=True)

            if path.is_file():
                question = f"{path} exists. Replace it with the translation?"
                self.app.push_screen(ConfirmScreen(question), replace_if_asked)
            else:
                self._write(path, translation)

        self.app.push_screen(TextInputScreen("Save the translation as"), chosen)

    def action_history(self) -> None:
        def chosen(entry: StoredTranslation | None) -> None:
            if entry is None:
                return
            self.query_one("#source-language", Select).value = entry.source_language
            self.query_one("#target-language", Select).value = entry.target_language
            self.query_one("#source", TextArea).text = entry.source
            self.query_one("#target", TextArea).text = self.translation = entry.translation

        self.app.push_screen(TranslationHistoryScreen(self.store.translations()), chosen)

    def action_copy(self) -> None:
        text = self.query_one("#target", TextArea).text
        if not text:
            self.notify("Nothing translated yet", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify("Translation copied")


def _not_a_file(path: Path) -> str | None:
    """Why the app does not open `path` (a FIFO, a device, a socket); None for a file, or for what
    the reader will name itself (missing, a folder)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"{path} is not a file (a FIFO, a device or a socket); the app translates files: save it to one first"
