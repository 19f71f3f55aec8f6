"""The model manager screen through Pilot: the library, delete with confirmation, defaults, pull, convert.

Each test gets its own llamadesk home (LLAMADESK_HOME) holding the starter models and, where a
test needs something deletable, a small GGUF "made by llamadesk" in the models folder. The pull
runs against the Hub stand-in in a child process (huggingface-hub reads HF_ENDPOINT and its
cache folder when it is imported, so a fresh process is the honest way to point it elsewhere).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk.app.chat.store import Store
from llamadesk.app.library.catalog import list_models
from llamadesk.app.settings.user_config import Config, load_config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.models import ModelsScreen
from tests.conftest import REPO
from tests.fixtures.random_checkpoints import build
from tests.gguf_samples import tiny_gguf_bytes
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(tmp_path, monkeypatch, gemma_path, smollm2_path) -> Path:
    """A fresh llamadesk home with the starters and one deletable model, Tiny-Q8_0."""
    home = tmp_path / "home"
    models = home / "data" / "models"
    models.mkdir(parents=True)
    (models / gemma_path.name).symlink_to(gemma_path)  # assembled once per machine, not per test
    tiny_gguf_bytes(models, "Tiny-Q8_0.gguf", "Q8_0")
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    return home


def make_app(tmp_path, save_settings=False) -> LlamadeskApp:
    store = Store(tmp_path / "conversations.sqlite3")
    return LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=save_settings)


async def open_models(pilot) -> ModelsScreen:
    await pilot.press("f5")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ModelsScreen), what="the models screen")
    screen = pilot.app.screen
    await wait_until(pilot, lambda: len(screen.entries) >= 3, timeout=30, what="the library")
    await pilot.pause()
    return screen


async def choose(pilot, screen: ModelsScreen, name: str) -> None:
    screen._select(name)
    await pilot.pause()
    assert screen.selected is not None and screen.selected.name == name


def table_text(screen: ModelsScreen) -> list[list[str]]:
    table = screen.query_one("#library")
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.asyncio
async def test_the_library_is_listed_with_its_fields(home, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_models(pilot)
        rows = {row[0]: row for row in table_text(screen)}
        assert set(rows) == {"smollm2", "gemma3-270m", "Tiny-Q8_0"}
        assert rows["smollm2"][1:4] == ["llama", "135M", "Q4_1"]
        assert rows["smollm2"][6] == "yes" and rows["smollm2"][8] == "starter"  # chat template, source
        assert rows["Tiny-Q8_0"][8] == "local"
        await choose(pilot, screen, "smollm2")
        details = str(screen.query_one("#details").render())
        assert "default for chat" in details and "package" in details and "eval: -" in details
        await choose(pilot, screen, "Tiny-Q8_0")
        details = str(screen.query_one("#details").render())
        assert str(home / "data" / "models" / "Tiny-Q8_0.gguf") in details and "(deletable)" in details
        keys = dict((description, key) for key, description in app.key_rows())
        assert (
            keys["Pull from the Hub"] == "p"
            and "escape" in keys["Cancel the job"]
            and keys["Chat / Translate"] == "f6"
            and keys["Models"] == "f5"
        )


@pytest.mark.asyncio
async def test_a_damaged_file_is_skipped_with_a_note_and_the_rest_is_listed(home, tmp_path):
    (home / "data" / "models" / "Broken-Q4_0.gguf").write_bytes(b"GGUF" + b"\xff" * 60)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_models(pilot)
        assert {row[0] for row in table_text(screen)} == {"smollm2", "gemma3-270m", "Tiny-Q8_0"}
        notes = [n.message for n in app._notifications]
        assert any(n.startswith("skipped Broken-Q4_0:") for n in notes), notes


@pytest.mark.asyncio
async def test_delete_asks_first_and_removes_only_what_llamadesk_made(home, tmp_path):
    made = home / "data" / "models" / "Tiny-Q8_0.gguf"
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        await choose(pilot, screen, "Tiny-Q8_0")
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert str(made) in app.screen.question
        await pilot.press("n")  # no: nothing happens
        await pilot.pause()
        assert made.exists()
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: not made.exists(), what="the file to go")
        await wait_until(pilot, lambda: "Tiny-Q8_0" not in [e.name for e in screen.entries], what="the list to update")
        assert "removed Tiny-Q8_0" in str(screen.query_one("#job-line").render())
        # A starter model is not llamadesk's to delete: one line says so, no dialog.
        await choose(pilot, screen, "smollm2")
        await pilot.press("f8")
        await wait_until(
            pilot, lambda: "starter model" in str(screen.query_one("#job-line").render()), what="the refusal"
        )
        assert isinstance(app.screen, ModelsScreen)
        assert "smollm2" in [e.name for e in list_models()]


@pytest.mark.asyncio
async def test_set_default_for_chat_and_translation_is_saved_and_used_by_a_new_chat(home, tmp_path):
    app = make_app(tmp_path, save_settings=True)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        screen = await open_models(pilot)
        await choose(pilot, screen, "Tiny-Q8_0")
        await pilot.press("c")
        await choose(pilot, screen, "smollm2")
        await pilot.press("t")
        await pilot.pause()
        assert "smollm2 is now the default for translation" in str(screen.query_one("#job-line").render())
        assert load_config().models == {"chat": "Tiny-Q8_0", "translate": "smollm2"}
        assert chat.defaults.model == "Tiny-Q8_0"  # the next new conversation opens with it
        # Back to chat through the command palette's entry (every binding has one).
        [back] = [c for c in app.get_system_commands(screen) if c.title == "Chat / Translate"]
        await back.callback()
        await wait_until(pilot, lambda: app.screen is chat, what="the chat screen")
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.screen is screen, what="the same models screen again")


@pytest.mark.asyncio
async def test_setting_a_default_keeps_a_hand_edit_and_a_full_disk_is_a_notification(home, tmp_path, monkeypatch):
    # The app wrote back the config.json it read at start (a hand edit made meanwhile was lost), and
    # a config folder on a full disk ended the app with an ENOSPC traceback.
    config = home / "config" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    app = make_app(tmp_path, save_settings=True)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = app.screen
        screen = await open_models(pilot)
        config.write_text(json.dumps({"system_prompt": "Answer in French."}))  # edited by hand meanwhile
        await choose(pilot, screen, "Tiny-Q8_0")
        await pilot.press("c")
        await pilot.pause()
        assert json.loads(config.read_text()) == {"system_prompt": "Answer in French.", "models": {"chat": "Tiny-Q8_0"}}

        def disk_full(path, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr("llamadesk.app.core.atomic_file.os.replace", disk_full)
        await choose(pilot, screen, "smollm2")
        await pilot.press("c")
        await pilot.pause()
        assert app.is_running and chat.defaults.model == "smollm2"  # the setting applies all the same
        said = [n.message for n in app._notifications]
        assert any("could not save the setting" in line and "the disk is full: " in line for line in said)
        assert json.loads(config.read_text())["models"] == {"chat": "Tiny-Q8_0"}
        app.theme = "nord" if app.theme != "nord" else "textual-dark"  # saving the theme says so too
        await pilot.pause()
        assert app.is_running


async def ask_to_convert(pilot, source: Path, qtype: str) -> None:
    """Press k on the models screen and answer its two questions: the folder, then the type."""
    app = pilot.app
    await pilot.press("k")
    await wait_until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="the folder question")
    app.screen.query_one("#answer").value = str(source)
    await pilot.press("enter")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, TextInputScreen) and "type" in app.screen.question,
        what="the type question",
    )
    app.screen.query_one("#answer").value = qtype
    await pilot.press("enter")


@pytest.mark.asyncio
async def test_convert_a_checkpoint_with_progress(home, tmp_path, checkpoints_root):  # noqa: F811
    source = build("llama2_spm", checkpoints_root)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        seen: list[tuple[str, int, int | None]] = []
        original = screen._report

        def record(progress) -> None:  # runs in the job's thread, as the screen's own reporter does
            seen.append((progress.stage, progress.done, progress.total))
            original(progress)

        screen._report = record
        await ask_to_convert(pilot, source, "Q4_0")
        await wait_until(
            pilot,
            lambda: screen.job is None and "converted into" in str(screen.query_one("#job-line").render()),
            timeout=90,
            what="the conversion",
        )
        names = [e.name for e in screen.entries]
        await wait_until(
            pilot, lambda: any(e.quantization == "Q4_0" for e in screen.entries), what="the new model listed"
        )
        converted = next(e for e in screen.entries if e.quantization == "Q4_0")
        assert Path(converted.path).parent == home / "data" / "models", names
        assert converted.origin["checkpoint"] == str(source.resolve())
        stages = {stage for stage, _, _ in seen}
        assert "converting" in stages and "quantizing to Q4_0" in stages
        converting = [(d, t) for s, d, t in seen if s == "converting"]
        assert converting[-1][0] == converting[-1][1] and converting[-1][1] > 0  # reached the total
        assert not list(Path(converted.path).parent.glob(".*unquantized*"))  # the intermediate is gone


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from tests.hub_standin import HubStandin

    folder = tmp_path_factory.mktemp("hub-samples")
    # Bigger than huggingface-hub's 10 MiB download chunk: the bar moves more than once.
    big = tiny_gguf_bytes(folder, "Tiny-Q4_K_M.gguf", "Q4_K_M", floats=4 * 1024 * 1024)
    small = tiny_gguf_bytes(folder, "Tiny-Q8_0.gguf", "Q8_0")
    with HubStandin() as standin:
        standin.add_repo("tiny/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": big, "Tiny-Q8_0.gguf": small})
        yield standin


def drive_pulls(hub, home: Path, tmp_path, *specs: str) -> list[dict]:
    env = {**os.environ, **hub.env(tmp_path / "hf"), "LLAMADESK_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.tui.models_pull_driver", *specs],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.timeout(180)
def test_pull_shows_progress_cancels_resumes_and_reports_errors_in_one_line(hub, home, tmp_path):
    cancelled, resumed, missing, bad = drive_pulls(
        hub, home, tmp_path, "cancel:tiny/Tiny-GGUF:Q4_K_M", "tiny/Tiny-GGUF:Q4_K_M", "tiny/No-Such-GGUF", "not a repo"
    )
    # Cancelled after the first chunk: one line says so; nothing enters the library.
    assert "stopped" in cancelled["line"] and "pull again to resume" in cancelled["line"], cancelled
    assert cancelled["failed"] and "Tiny-Q4_K_M" not in cancelled["library"]
    # Pulled again: the bar reported bytes up to the file's size, starting where the first pull stopped.
    downloads = [p for p in resumed["progress"] if p[0] == "downloading Tiny-Q4_K_M.gguf"]
    size = downloads[-1][2]
    assert size > 10 * 1024 * 1024 and downloads[-1][1] == size
    assert downloads[0][1] > 0, "the second pull should resume the partial file, not start from zero"
    assert resumed["line"].startswith("pulled Tiny-Q4_K_M (tiny/Tiny-GGUF, downloaded)"), resumed
    assert resumed["library"]["Tiny-Q4_K_M"] == "hub" and resumed["selected"] == "Tiny-Q4_K_M"
    assert not resumed["failed"] and not resumed["bar_shown"]
    # Errors: one line each, the library untouched.
    assert missing["failed"] and "no repo tiny/No-Such-GGUF" in missing["line"] and "\n" not in missing["line"], missing
    assert bad["failed"] and "\n" not in bad["line"] and bad["line"], bad
    assert bad["library"] == resumed["library"]


@pytest.mark.asyncio
async def test_a_conversion_shows_the_notes_the_cli_prints(home, tmp_path, checkpoints_root):  # noqa: F811
    """A folder holding model.safetensors and a leftover shard index: the app converts the single
    file, as the CLI does, and says so (the CLI's `note:` line), rather than nothing."""
    source = tmp_path / "with-index"
    shutil.copytree(build("llama2_spm", checkpoints_root), source)
    (source / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        await ask_to_convert(pilot, source, "Q8_0")
        await wait_until(pilot, lambda: screen.job is None, timeout=90, what="the conversion")
        line = str(screen.query_one("#job-line").render())
        assert "converted into" in line and "note:" in line and "model.safetensors.index.json" in line, line
        said = [n.message for n in app._notifications]
        assert any("ignoring the index and its shards" in note for note in said), said


@pytest.mark.asyncio
async def test_cancelling_a_conversion_leaves_no_file(home, tmp_path, checkpoints_root):  # noqa: F811
    source = build("llama2_spm", checkpoints_root)
    models = home / "data" / "models"
    before = sorted(p.name for p in models.iterdir())
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        original = screen._report

        def cancel_midway(progress) -> None:
            original(progress)
            if progress.stage == "converting" and progress.done > 0:
                app.call_from_thread(screen.action_cancel_job)

        screen._report = cancel_midway
        await ask_to_convert(pilot, source, "Q4_0")
        await wait_until(pilot, lambda: screen.job is None, timeout=60, what="the conversion to stop")
        line = screen.query_one("#job-line")
        assert "conversion stopped" in str(line.render()) and line.has_class("failed")
        assert sorted(p.name for p in models.iterdir()) == before  # no output, no intermediate, no temp file


def steady_library(monkeypatch) -> None:
    """The real library, with what changes between machines and runs (paths, free memory) fixed."""
    import dataclasses

    from llamadesk.app.library import catalog as library

    real = library.read_library
    free = 8 * 1024**3

    def listed():
        entries, skipped = real()
        steady = [
            dataclasses.replace(
                e,
                path=f"/models/{Path(e.path).name}",
                memory_available=free,
                memory_reserved=2**30,
                fits=e.memory_needed + 2**30 <= free,
            )
            for e in entries
        ]
        return steady, skipped

    monkeypatch.setattr(library, "read_library", listed)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_screen_snapshot(snap_compare, home, tmp_path, monkeypatch, size):
    steady_library(monkeypatch)

    async def listed(pilot) -> None:
        await open_models(pilot)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=listed)


def test_a_job_failure_is_one_line_whatever_went_wrong():
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.tui.screens.models import job_failure

    assert job_failure("pull", BadInputError("no repo x/y on the Hub")) == "no repo x/y on the Hub"
    assert job_failure("conversion", OSError(28, "No space left on device")).startswith("the conversion failed: ")
    assert "ValueError: boom" in job_failure("pull", ValueError("boom"))


def test_the_app_starts_without_importing_the_hub_or_the_converter():
    # The model manager's jobs import them when they start: the app's cold start stays fast.
    code = (
        "import sys, llamadesk.app.tui.app; "
        "print(sorted(m for m in ('huggingface_hub', 'numpy', 'gguf', 'llamadesk.convert') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
