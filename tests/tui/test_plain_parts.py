"""The UI's plain parts, without a terminal: status text, code blocks, memory fit, printable text, the
engine host."""

from __future__ import annotations

import threading

from llamadesk.app.chat.code_blocks import code_blocks
from llamadesk.app.core.printable import printable
from llamadesk.app.engine.types import LoadSettings, Sampling
from llamadesk.app.tui.engine_host import (
    EngineHost,
    ModelLoaded,
    ReplyDone,
    ReplyProgress,
    ReplyRequest,
    ReplyStarted,
)
from llamadesk.app.tui.screens.chat import free_export_path, title_from_prompt
from llamadesk.app.tui.widgets.status_bar import StatusFacts, context_gauge, status_text
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until_sync


def test_status_text_shows_speed_first_token_context_and_backend():
    facts = StatusFacts(
        model="smollm2",
        backend="CUDA",
        threads=8,
        tokens_per_second=42.25,
        time_to_first_token=0.1234,
        context_tokens=512,
        n_ctx=2048,
        memory_start=6,
    )
    text = status_text(facts)
    assert text.split(" │ ") == [
        "smollm2",
        "42.2 tok/s",
        "TTFT 123 ms",
        "ctx ▰▰▱▱▱▱▱▱ 512/2048",
        "forgot 6 msgs",
        "CUDA ×8",
    ]
    assert status_text(StatusFacts(activity="loading smollm2…")) == "loading smollm2…"
    # The prompt tokens the last reply did not decode again, and whether they came from the disk.
    cached = StatusFacts(model="smollm2", time_to_first_token=0.2, cached_tokens=2950, cache_from_disk=True)
    assert status_text(cached).split(" │ ") == ["smollm2", "TTFT 200 ms", "2950 cached from disk"]
    assert status_text(StatusFacts(cached_tokens=120, n_ctx=512)).startswith("120 cached │ ctx")


def test_context_gauge_fills_in_proportion_and_never_overflows():
    assert context_gauge(0, 100) == "▱" * 8 + " 0/100"
    assert context_gauge(100, 100) == "▰" * 8 + " 100/100"
    assert context_gauge(500, 100).startswith("▰" * 8 + " ")


def test_code_blocks_are_found_fenced_indented_and_unclosed():
    text = "Intro\n\n```python\nprint(1)\n```\n\n    indented()\n\n```sh\necho still streaming"
    assert code_blocks(text) == ["print(1)\n", "indented()\n", "echo still streaming"]
    assert code_blocks("no code here") == []


def test_title_from_prompt_is_the_first_line_shortened():
    assert title_from_prompt("Hello\nmore") == "Hello"
    assert len(title_from_prompt("x" * 200)) == 48 and title_from_prompt("x" * 200).endswith("…")


def test_control_characters_become_visible_stand_ins():
    assert printable("a\x1b[2Jb") == "a^[[2Jb"
    assert printable("\x1b]0;PWNED\x07 x") == "^[]0;PWNED^G x"
    assert printable("del\x7f c1\x9b end") == "del^? c1\ufffd end"
    # What a terminal does not act on stays: newlines, tabs, a Windows line end, any other text.
    assert printable("line\r\nnext\tcol é ✓") == "line\nnext\tcol é ✓"
    assert printable("lone\rcarriage") == "lone^Mcarriage"


def test_an_export_name_is_never_one_already_taken(tmp_path):
    assert free_export_path(tmp_path, 7, "md") == tmp_path / "conversation-7.md"
    (tmp_path / "conversation-7.md").write_text("another conversation's")
    (tmp_path / "conversation-7-2.md").symlink_to(tmp_path / "gone")  # a dangling link is taken too
    assert free_export_path(tmp_path, 7, "md") == tmp_path / "conversation-7-3.md"
    assert free_export_path(tmp_path, 7, "json") == tmp_path / "conversation-7.json"


class Inbox:
    """Collects what the host posts, as a Textual widget would receive it."""

    def __init__(self) -> None:
        self.messages: list[object] = []
        self.done = threading.Event()

    def post_message(self, message: object) -> bool:
        self.messages.append(message)
        if isinstance(message, ReplyDone):
            self.done.set()
        return True


def run_host(loader) -> tuple[EngineHost, threading.Thread]:
    host = EngineHost(loader)
    thread = threading.Thread(target=host.serve)
    thread.start()
    return host, thread


def request(text: str, model: str = "fake", n_ctx: int | None = None) -> ReplyRequest:
    return ReplyRequest(model, LoadSettings(n_ctx=n_ctx), "sys", ({"role": "user", "content": text},), Sampling())


def test_host_batches_tokens_posting_one_progress_until_the_text_is_taken():
    loader = FakeLoader()
    host, thread = run_host(loader)
    inbox = Inbox()
    # 'long' replies never end on their own; stop once plenty has streamed without reading any.
    reply_id = host.reply(request("a long one"), inbox)
    wait_until_sync(lambda: len(host._pending) >= 500, 10, "500 tokens to stream", poll=0.001)
    progress = [m for m in inbox.messages if isinstance(m, ReplyProgress)]
    assert len(progress) == 1  # 500 tokens waiting, one message: the UI is never flooded
    first = host.take_text()
    assert first.startswith("word0 word1 ") and first.count("word") >= 500
    host.stop()
    assert inbox.done.wait(10)
    done = inbox.messages[-1]
    assert done.reply_id == reply_id and done.stopped and done.text.startswith(first)
    host.shutdown()
    thread.join(10)
    assert loader.engines[0].closed


def test_host_loads_once_reloads_on_change_and_closes_the_old_model():
    loader = FakeLoader()
    host, thread = run_host(loader)
    inbox = Inbox()
    host.load("fake", LoadSettings(), inbox)
    host.reply(request("hi"), inbox)
    assert inbox.done.wait(10)
    assert loader.specs == ["fake"]
    started = next(m for m in inbox.messages if isinstance(m, ReplyStarted))
    assert started.fitted.messages[0] == {"role": "system", "content": "sys"}
    assert next(m for m in inbox.messages if isinstance(m, ModelLoaded)).info.n_ctx == 512
    inbox.done.clear()
    host.reply(request("hi", model="other", n_ctx=256), inbox)
    assert inbox.done.wait(10)
    assert loader.specs == ["fake", "other"] and loader.engines[0].closed and not loader.engines[1].closed
    assert inbox.messages[-1].text == "Echo: hi"
    host.shutdown()
    thread.join(10)
    assert loader.engines[1].closed


def test_a_reply_stopped_before_it_began_still_says_done():
    loading = threading.Event()
    fake = FakeLoader()

    def slow_loader(spec, settings):
        loading.wait(10)  # the model is still loading when Esc comes
        return fake(spec, settings)

    host, thread = run_host(slow_loader)
    inbox = Inbox()
    host.reply(request("hi"), inbox)
    host.stop()
    loading.set()
    assert inbox.done.wait(10)
    assert inbox.messages[-1].stopped and inbox.messages[-1].text == ""
    assert fake.engines[0].prompts == []  # nothing was generated
    host.shutdown()
    thread.join(10)


def test_a_chat_reply_and_its_stop_leave_other_work_on_the_model_alone():
    # A translation runs on the same engine: a prompt sent in chat, or Esc there, once stopped it.
    loader = FakeLoader()
    host, thread = run_host(loader)
    inbox = Inbox()
    working, release = threading.Event(), threading.Event()
    stop_seen: list[bool] = []

    def translate(engine) -> None:
        working.set()
        release.wait(10)
        stop_seen.append(engine._stop.is_set())

    host.run_with_model("fake", LoadSettings(), translate, inbox)
    assert working.wait(10)
    assert not host.replying
    host.reply(request("hi"), inbox)
    assert host.replying  # queued behind the work: the translation screen says it waits for it
    host.stop()
    release.set()
    assert inbox.done.wait(10)
    assert stop_seen == [False]
    wait_until_sync(lambda: not host.replying, 10, "the reply to count as ended")
    # A reply that streams is still stopped by the next one.
    inbox.done.clear()
    first = host.reply(request("a long one"), inbox)
    wait_until_sync(lambda: any(isinstance(m, ReplyProgress) for m in inbox.messages), 10, "the reply to stream")
    host.reply(request("hi"), inbox)
    wait_until_sync(lambda: sum(isinstance(m, ReplyDone) for m in inbox.messages) == 3, 10, "both replies to end")
    [stopped] = [m for m in inbox.messages if isinstance(m, ReplyDone) and m.reply_id == first]
    assert stopped.stopped
    assert inbox.messages[-1].text == "Echo: hi"
    host.shutdown()
    thread.join(10)


def test_frame_pacer_stretches_when_drawing_is_costly_and_shrinks_when_cheap():
    from llamadesk.app.tui.frame_pacer import MAX_INTERVAL_S, MIN_INTERVAL_S, START_INTERVAL_S, TARGET_SHARE, FramePacer

    pacer = FramePacer()
    assert pacer.observe(cpu_time=0.0, wall_time=100.0) == START_INTERVAL_S
    # The UI used twice its share over the last second: draws come half as often.
    assert abs(pacer.observe(cpu_time=2 * TARGET_SHARE, wall_time=101.0) - 2 * START_INTERVAL_S) < 1e-9
    assert pacer.observe(cpu_time=2 * TARGET_SHARE + 0.001, wall_time=101.1) == 2 * START_INTERVAL_S  # within a window
    for second in range(102, 110):  # a very busy UI: never slower than MAX
        pacer.observe(cpu_time=float(second), wall_time=float(second))
    assert pacer.interval == MAX_INTERVAL_S
    pacer.pause()
    pacer.observe(cpu_time=200.0, wall_time=200.0)
    for tick in range(1, 20):  # an idle UI: as fast as MIN allows
        pacer.observe(cpu_time=200.0, wall_time=200.0 + tick)
    assert pacer.interval == MIN_INTERVAL_S
