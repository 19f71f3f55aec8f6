"""The translation screen through Pilot: switch to it, translate, swap, a file with progress, stop.

A fake engine 'translates' by upper-casing the segment the few-shot prompt asks for, so the
screen's wiring is tested fast; the library's logic and the real model are tested in
tests/test_translate_*.py, and the real model in this screen by the last test.
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, Label, ProgressBar, Select, TextArea

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.screens.dialogs import TextInputScreen
from llamadesk.app.tui.screens.translate import WAITING_FOR_CHAT, TranslateScreen
from llamadesk.app.tui.screens.translation_history import TranslationHistoryScreen
from llamadesk.app.tui.widgets.review_text_area import ReviewTextArea
from tests.tui.chat_pilot import ask
from tests.tui.fake_engine import FakeEngine
from tests.tui.fake_translator import (
    FRENCH,
    FakeTranslatingEngine,
    make_app,
    open_translation,
)
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


async def open_file(pilot, path) -> None:
    """ctrl+o, the file's path in the dialog, enter: what a user does to translate a file."""
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TextInputScreen), what="the file dialog")
    pilot.app.screen.query_one(Input).value = str(path)
    await pilot.press("enter")


async def test_one_key_switches_between_chat_and_translation(store):
    async with make_app(store).run_test() as pilot:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), what="the chat screen")
        await open_translation(pilot)
        await pilot.press("f6")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), what="chat again")


async def test_translate_a_sentence_then_swap(store):
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        progress = screen.query_one("#progress", ProgressBar)
        assert not progress.visible  # nothing running yet: no bar sweeping under "--%"
        screen.query_one("#source", TextArea).text = "Hello %s, the weather is nice today."
        await pilot.press("ctrl+r")
        target = screen.query_one("#target", TextArea)
        await wait_until(pilot, lambda: not screen.running and target.text, what="the translation")
        assert target.text == "HELLO %s, THE WEATHER IS NICE TODAY."
        assert progress.visible and progress.percentage == 1.0
        assert "English (detected" in str(screen.query_one("#status").render())
        await pilot.press("f7")
        assert screen.query_one("#source-language", Select).value == "fr"
        assert screen.query_one("#target-language", Select).value == "en"
        assert screen.query_one("#source", TextArea).text == "HELLO %s, THE WEATHER IS NICE TODAY."
        assert target.text == ""


async def test_a_segment_shows_word_by_word_as_it_streams(store):
    async with make_app(store, delay=0.2).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source-language", Select).value = "en"
        screen.query_one("#source", TextArea).text = "One two three four five six."
        await pilot.press("ctrl+r")
        target = screen.query_one("#target", TextArea)
        # Part of the segment is on screen while the model is still writing the rest.
        await wait_until(pilot, lambda: "TWO" in target.text, what="the first words")
        assert screen.running and "SIX." not in target.text
        await wait_until(pilot, lambda: not screen.running, what="the end")
        assert screen.translation == "ONE TWO THREE FOUR FIVE SIX."


async def test_a_fast_stream_wakes_the_screen_a_few_times_a_second_not_per_token(store):
    """Each wake-up is the UI thread's work, taken from llama.cpp's threads on a small machine: a
    segment streaming 80 words as fast as it can reaches the pane in a few updates, complete."""
    from llamadesk.app.translate.events import ChunkText

    words = " ".join(f"word{i}" for i in range(80)) + "."
    async with make_app(store, delay=0.004).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        wakes: list[float] = []
        post = screen.post_message
        screen.post_message = lambda message: (
            (  # type: ignore[method-assign]
                wakes.append(1.0) if isinstance(getattr(message, "event", None), ChunkText) else None
            )
            or post(message)
        )
        screen.query_one("#source-language", Select).value = "en"
        screen.query_one("#source", TextArea).text = words
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running, what="the end")
    assert screen.translation == words.upper()
    pieces = len(words.split())  # the fake engine streams a word a piece, 4 ms apart
    assert 1 <= len(wakes) < pieces / 4, (len(wakes), pieces)


async def test_without_memory_for_the_batched_decoder_a_document_translates_one_segment_at_a_time(store):
    from llamadesk.app.core.errors import LlamadeskError

    class NoRoomForBatches(FakeTranslatingEngine):
        def batched_decoder(self, n_sequences, n_ctx=None, cells_per_sequence=None):
            raise LlamadeskError(f"llama.cpp could not create a context for {n_sequences} sequences")

    app = LlamadeskApp(
        store=store,
        config=Config(translate_parallel=4),
        engine_loader=lambda spec, settings: NoRoomForBatches(),
        save_settings=False,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source-language", Select).value = "en"
        screen.query_one("#source", TextArea).text = "One.\n\nTwo.\n\nThree."
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running and screen.translation, what="the translation")
        assert screen.translation == "ONE.\n\nTWO.\n\nTHREE." and screen.job.parallel is None
        assert any("one segment at a time" in str(n.message) for n in app._notifications)


# French 'translations' for the fake model: upper-cased English reads as English, which the
# confidence score rightly flags; these read as French, so only the model's doubt marks one.


async def test_low_confidence_segments_are_highlighted_for_review(store):
    async with make_app(store, replies=FRENCH).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source-language", Select).value = "en"
        screen.query_one("#source", TextArea).text = "The station is near.\n\nPerhaps the train is late today."
        await pilot.press("ctrl+r")
        target = screen.query_one("#target", ReviewTextArea)
        status = screen.query_one("#status")
        await wait_until(
            pilot, lambda: not screen.running and target.text, timeout=30, what=f"the translation ({status.render()})"
        )
        assert target.text == "La gare est proche.\n\nLe train est peut-être en retard aujourd'hui."
        assert target.marked_text == ["Le train est peut-être en retard aujourd'hui."]
        assert "1 low-confidence segment(s) to review" in str(screen.query_one("#status").render())
        # The marked line is drawn in the review style; the sure one is not.
        style = target.get_component_rich_style("review-text-area--low")
        assert style.bgcolor is not None
        assert [span.style for span in target.get_line(2).spans] == [style]
        assert target.get_line(0).spans == []
        target.text = "something else"  # new text: the marks were for the old one
        assert target.marked_text == [] and target.get_line(0).spans == []


async def test_translate_a_file_with_a_progress_bar(store, tmp_path):
    source = tmp_path / "notes.md"
    source.write_text(
        "# Notes\n\n" + "".join(f"Paragraph number {n} is here.\n\n" for n in range(1, 6)), encoding="utf-8"
    )
    async with make_app(store, delay=0.05).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        await open_file(pilot, source)
        bar = screen.query_one("#progress", ProgressBar)
        await wait_until(
            pilot,
            lambda: bar.total == 6 and 0 < bar.progress < 6,
            timeout=30,
            what=f"progress mid-file ({bar.total}, {bar.progress})",
        )
        out = tmp_path / "notes.fr.md"
        await wait_until(pilot, lambda: out.exists(), timeout=30, what="the translated file")
        assert bar.progress == 6
        assert out.read_text(encoding="utf-8").startswith("# NOTES\n\nPARAGRAPH NUMBER 1 IS HERE.\n\n")
        [entry] = store.translations()  # the file's translation is in the history too
        assert entry.source == source.read_text(encoding="utf-8") and entry.translation.startswith("# NOTES")


@pytest.mark.parametrize(("name", "translated_name"), [("notes", "notes.fr"), ("notes.txt", "notes.fr.txt")])
async def test_a_plain_text_file_has_its_indented_paragraphs_translated(store, tmp_path, name, translated_name):
    # A file without an extension was read as Markdown in the app (as `translate` read it): its
    # indented paragraph was taken for code and left untranslated.
    source = tmp_path / name
    source.write_text("Dear team,\n\n    this indented paragraph is a letter's.\n", encoding="utf-8")
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        await open_translation(pilot)
        await open_file(pilot, source)
        out = tmp_path / translated_name
        status = pilot.app.screen.query_one("#status", Label)
        await wait_until(pilot, lambda: out.exists(), timeout=30, what=f"the translated file ({status.render()})")
        assert "THIS INDENTED PARAGRAPH IS A LETTER'S." in out.read_text(encoding="utf-8")


async def test_a_file_with_windows_line_endings_is_translated_with_them(store, tmp_path):
    # The CLI kept CRLF; the app wrote the translation of a CRLF file with LF.
    source = tmp_path / "notes.md"
    text = "# Notes\n\n" + "".join(f"Paragraph number {n} is here.\n\n" for n in range(1, 6))
    source.write_bytes(text.replace("\n", "\r\n").encode())
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        await open_translation(pilot)
        await open_file(pilot, source)
        out = tmp_path / "notes.fr.md"
        status = pilot.app.screen.query_one("#status", Label)
        await wait_until(pilot, lambda: out.exists(), timeout=30, what=f"the translated file ({status.render()})")
        written = out.read_bytes()
        assert written.startswith(b"# NOTES\r\n\r\nPARAGRAPH NUMBER 1 IS HERE.\r\n")
        assert b"\n" not in written.replace(b"\r\n", b"")


async def test_escape_stops_a_translation(store):
    async with make_app(store, delay=0.05).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source", TextArea).text = "\n\n".join(
            f"Sentence number {n} is long enough." for n in range(30)
        )
        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: screen.query_one("#progress", ProgressBar).progress >= 1, timeout=30, what="a first chunk"
        )
        # F7 mid-way swapped the panes under the running job: the source gave way to half a translation.
        source_before = screen.query_one("#source", TextArea).text
        await pilot.press("f7")
        await pilot.pause()
        assert screen.query_one("#source", TextArea).text == source_before and screen.running
        assert any("A translation is running" in n.message for n in pilot.app._notifications)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.running, timeout=30, what="the stop")
        assert "stopped after" in str(screen.query_one("#status").render())


async def test_past_translations_are_kept_in_the_store_and_brought_back(store):
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source", TextArea).text = "Good morning to all of you."
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running and screen.translation, what="the translation")
        [entry] = store.translations()
        assert (entry.source_language, entry.target_language) == ("en", "fr")
        assert (entry.source, entry.translation, entry.model) == (
            "Good morning to all of you.",
            "GOOD MORNING TO ALL OF YOU.",
            "fake-translator",
        )
        screen.query_one("#source", TextArea).text = ""
        screen.query_one("#target", TextArea).text = ""
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, TranslationHistoryScreen), what="the history")
        await pilot.press("enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="back to the screen")
        assert screen.query_one("#source", TextArea).text == "Good morning to all of you."
        assert screen.query_one("#target", TextArea).text == "GOOD MORNING TO ALL OF YOU."
        assert screen.query_one("#source-language", Select).value == "en"


async def test_a_stopped_file_keeps_its_sidecar_and_resumes_where_it_stopped(store, tmp_path):
    from llamadesk.app.translate import sidecar_path

    source = tmp_path / "notes.md"
    source.write_text(
        "# Notes\n\n" + "".join(f"Paragraph number {n} is here.\n\n" for n in range(1, 6)), encoding="utf-8"
    )
    out = tmp_path / "notes.fr.md"
    asked: list[str] = []
    # Segments after the second stream slowly until the test has pressed Escape, so a busy machine
    # cannot finish the whole file before the key arrives.
    slow_after_two = [True]

    class CountingEngine(FakeTranslatingEngine):
        def stream_tokens(self, tokens, sampling, *, shelve=False):
            asked.append("".join(map(chr, tokens)).rstrip().rsplit("\n", 1)[0].rsplit("\n", 1)[-1])
            self.delay = 0.5 if slow_after_two[0] and len(asked) > 2 else 0.05
            return super().stream_tokens(tokens, sampling)

    app = LlamadeskApp(
        store=store,
        config=Config(translate_parallel=1),
        engine_loader=lambda spec, settings: CountingEngine(0.05),
        save_settings=False,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source-language", Select).value = "en"
        screen.start(source.read_text(encoding="utf-8"), output=out)
        bar = screen.query_one("#progress", ProgressBar)
        await wait_until(pilot, lambda: bar.total == 6 and bar.progress >= 2, timeout=30, what="two segments")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.running, timeout=30, what="the stop")
        assert not out.exists() and sidecar_path(out).exists()
        assert "resume" in str(screen.query_one("#status").render())
        # The model by its file, as the CLI records it: another file of the same name never resumes it.
        recorded = json.loads(sidecar_path(out).read_text(encoding="utf-8").splitlines()[0])["settings"]
        assert recorded["model_file"] == ["/models/fake-translator.gguf", 1, 1] and recorded["adapters"] == []
        kept = bar.progress
        asked.clear()
        slow_after_two[0] = False
        screen.start(source.read_text(encoding="utf-8"), output=out)
        await wait_until(pilot, lambda: bar.total == 6 and bar.progress >= kept, timeout=30, what="the resumed start")
        await wait_until(pilot, lambda: out.exists(), timeout=30, what="the translated file")
        assert out.read_text(encoding="utf-8").startswith("# NOTES\n\nPARAGRAPH NUMBER 1 IS HERE.\n\n")
        assert not sidecar_path(out).exists()
        assert len(asked) == 6 - kept and not any(
            "# Notes" in line for line in asked
        )  # finished ones came from the sidecar


async def test_an_existing_translation_is_never_overwritten(store, tmp_path):
    source = tmp_path / "notes.md"
    source.write_text("Paragraph number one is here.\n", encoding="utf-8")
    (tmp_path / "notes.fr.md").write_text("mine", encoding="utf-8")
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        await open_file(pilot, source)
        await pilot.pause()
        assert not screen.running
        assert (tmp_path / "notes.fr.md").read_text(encoding="utf-8") == "mine"
        said = [n.message for n in pilot.app._notifications]
        assert any("already exists; move it aside" in n for n in said) and not any("--force" in n for n in said)
        # Saving a result over an existing file is refused too.
        screen.translation = "NEW"
        assert not screen._write(tmp_path / "notes.fr.md", "NEW")
        assert (tmp_path / "notes.fr.md").read_text(encoding="utf-8") == "mine"


async def test_a_subtitle_file_is_translated_as_subtitles(store, tmp_path):
    source = tmp_path / "scene.srt"
    source.write_text(
        "1\n00:00:01,000 --> 00:00:03,500\nThe train to the coast\nleaves in ten minutes.\n\n"
        "2\n00:00:04,000 --> 00:00:06,200\nIf we run now, we can still\n\n"
        "3\n00:00:06,300 --> 00:00:08,900\ncatch it before the doors close.\n",
        encoding="utf-8",
    )
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        await open_file(pilot, source)
        out = tmp_path / "scene.fr.srt"
        await wait_until(pilot, lambda: out.exists(), timeout=30, what="the translated subtitles")
        assert screen.query_one("#progress", ProgressBar).total == 2, "two sentences: the second spans two cues"
        text = out.read_text(encoding="utf-8")
        assert [line for line in text.splitlines() if "-->" in line] == [
            "00:00:01,000 --> 00:00:03,500",
            "00:00:04,000 --> 00:00:06,200",
            "00:00:06,300 --> 00:00:08,900",
        ]
        assert "THE TRAIN TO THE COAST\nLEAVES IN TEN MINUTES." in text and "CATCH IT" in text


async def test_a_broken_subtitle_file_is_refused_with_its_line(store, tmp_path):
    source = tmp_path / "broken.srt"
    source.write_text("1\n00:00:01,000 --> soon\nHello.\n", encoding="utf-8")
    async with make_app(store).run_test(size=(120, 30), notifications=True) as pilot:
        screen = await open_translation(pilot)
        await open_file(pilot, source)
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the dialog closed")
        await pilot.pause()
        assert not screen.running and not (tmp_path / "broken.fr.srt").exists()
        messages = [notification.message for notification in pilot.app._notifications]
        assert any("line 2: bad timestamp" in m for m in messages), messages


async def answer_segments_at_once(pilot, screen: TranslateScreen, text: str) -> None:
    """F4, type `text` into the question and Enter; back on the translation screen."""
    app = pilot.app
    await pilot.press("f4")
    await wait_until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="the question")
    app.screen.query_one("#answer", Input).value = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: app.screen is screen, what="the translation screen again")


async def test_f4_sets_the_segments_at_once_and_the_app_remembers_them(store):
    app = make_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        assert screen.parallel == 1  # make_app's config

        async def answer(text: str) -> None:
            await answer_segments_at_once(pilot, screen, text)

        await answer("4")
        assert screen.parallel == 4 and app.config.translate_parallel == 4
        await answer("auto")
        assert screen.parallel is None and app.config.translate_parallel is None
        for wrong in ("0", "65", "four", "2.5"):  # refused with a line; the choice stays
            await answer(wrong)
            assert screen.parallel is None and app.config.translate_parallel is None
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="the question")
        assert app.screen.query_one("#answer", Input).value == "auto"
        await pilot.press("escape")  # Esc changes nothing
        await wait_until(pilot, lambda: app.screen is screen, what="the translation screen again")
        assert screen.parallel is None
        # The new choice is what the next translation uses: one at a time with this fake engine.
        await answer("1")
        screen.query_one("#source", TextArea).text = "The station is near.\n\nWhere is the station?"
        await pilot.press("ctrl+r")
        target = screen.query_one("#target", TextArea)
        await wait_until(pilot, lambda: not screen.running and target.text, what="the translation")
        assert target.text.count("\n\n") == 1


@pytest.fixture
def config_file_restored():
    """The session's config.json as it was before the test (other tests start the app with it)."""
    from llamadesk.app.settings.user_config import config_path

    path = config_path()
    before = path.read_bytes() if path.exists() else None
    yield
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(before)


async def test_the_segments_at_once_are_saved_in_the_config(store, config_file_restored):
    from llamadesk.app.settings.user_config import load_config

    app = LlamadeskApp(
        store=store,
        config=Config(translate_parallel=1),
        engine_loader=lambda spec, settings: FakeTranslatingEngine(),
        save_settings=True,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        await answer_segments_at_once(pilot, screen, "3")
        assert screen.parallel == 3
    assert load_config().translate_parallel == 3


class ChatAndTranslationLoader:
    """The chat model (config's default) is a FakeEngine, any other a translating one; remembers what it loaded."""

    def __init__(self, chat_delay: float = 0.0, translate_delay: float = 0.0) -> None:
        self.chat_delay, self.translate_delay = chat_delay, translate_delay
        self.specs: list[str] = []

    def __call__(self, spec: str, settings):
        self.specs.append(spec)
        if spec == Config().models["chat"]:
            return FakeEngine(spec, 512, self.chat_delay)
        return FakeTranslatingEngine(self.translate_delay)


def chat_and_translation_app(store, loader: ChatAndTranslationLoader, config: Config | None = None) -> LlamadeskApp:
    config = config or Config(translate_parallel=1)
    return LlamadeskApp(store=store, config=config, engine_loader=loader, save_settings=False)


async def switch_to(pilot, screen_type):
    await pilot.press("f6")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, screen_type), what=screen_type.__name__)
    return pilot.app.screen


async def test_a_chat_prompt_waits_for_a_running_translation_instead_of_stopping_it(store):
    app = chat_and_translation_app(store, ChatAndTranslationLoader(translate_delay=0.03))
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source", TextArea).text = "\n\n".join(f"Sentence number {n} is here." for n in range(16))
        await pilot.press("ctrl+r")
        bar = screen.query_one("#progress", ProgressBar)
        await wait_until(pilot, lambda: bar.progress >= 1, timeout=30, what="a first segment")
        chat = await switch_to(pilot, ChatScreen)
        await ask(pilot, "hi", wait=False)
        await switch_to(pilot, TranslateScreen)
        await wait_until(pilot, lambda: not screen.running, timeout=60, what="the translation")
        assert "done in" in str(screen.query_one("#status").render())
        assert screen.translation.count("SENTENCE NUMBER") == 16
        await wait_until(pilot, lambda: chat.reply is None, what="the chat reply, after it")
        assert chat.messages[-1].content == "Echo: hi"


async def test_a_translation_queued_behind_a_chat_reply_says_it_waits(store):
    app = chat_and_translation_app(store, ChatAndTranslationLoader(chat_delay=0.002))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen), what="the chat screen")
        chat = await ask(pilot, "tell a long story", wait=False)
        await wait_until(pilot, lambda: chat.reply is not None and chat.reply.text, what="the reply to stream")
        screen = await open_translation(pilot)
        screen.query_one("#source", TextArea).text = "The station is near."
        await pilot.press("ctrl+r")
        assert str(screen.query_one("#status").render()) == WAITING_FOR_CHAT
        await switch_to(pilot, ChatScreen)
        await pilot.press("escape")  # as the line says
        await switch_to(pilot, TranslateScreen)
        await wait_until(pilot, lambda: not screen.running, timeout=30, what="the translation")
        assert screen.translation == "THE STATION IS NEAR."


async def test_the_default_translation_model_is_the_one_that_translates(store):
    loader = ChatAndTranslationLoader()
    config = Config(translate_parallel=1, models={**Config().models, "translate": "my-translator"})
    app = chat_and_translation_app(store, loader, config)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source", TextArea).text = "The station is near."
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running, what="the translation")
        assert loader.specs[-1] == "my-translator"
        app.set_default_model("translate", "other-translator")  # what t does in the model manager
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running, what="the next translation")
        assert loader.specs[-1] == "other-translator"


async def test_a_fifo_is_refused_without_freezing_the_app(store, tmp_path):
    # Opening a FIFO waited for a writer on the UI thread: no key worked until someone wrote to it.
    import os

    fifo = tmp_path / "notes.txt"
    os.mkfifo(fifo)
    async with make_app(store).run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        await open_file(pilot, fifo)
        await pilot.pause()
        assert not screen.running
        assert any("is not a file (a FIFO" in n.message for n in pilot.app._notifications)
