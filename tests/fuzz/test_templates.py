"""Hostile chat templates inside a real GGUF: `llamadesk chat` refuses each in one line, in bounded time.

Each case puts one template (or a value that is not a template) into a copy of the SmolLM2
starter and runs `llamadesk chat -m COPY --threads 2 hi` in a forked child under a memory limit
and a 20 s timeout (tests/fuzz/harness.py). Every one must exit 2 with one "llamadesk: ..." line
and no traceback. Then: Ctrl-C stops a template that loops forever, and so do the engine's stop
and the TUI's engine host, without leaving a thread burning a core.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from llamadesk.app.core.errors import Interrupted
from llamadesk.app.engine.types import LoadSettings, Sampling
from tests.conftest import PINNED_FLAGS
from tests.fuzz.harness import call_case, problems, run_cases
from tests.fuzz.template_gguf import template_layout, write_with_template

CPU_BOMB = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}x"
# What the model sees is fixed, so what it answers does not depend on the machine.
PINNED = PINNED_FLAGS

# class -> [(template value, what the one line must say)]
HOSTILE: dict[str, list[tuple[dict, str]]] = {
    "syntax error": [
        ({"text": "{% for %}"}, "Expected an expression"),
        ({"text": "{{ messages[0]['content'] "}, "while compiling it"),
        ({"text": "{% frobnicate %}"}, "Encountered unknown tag 'frobnicate'"),
        ({"text": "{{ 'x' | no_such_filter }}"}, "No filter named 'no_such_filter'"),
        ({"text": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"}, "nests or recurses too deeply"),
    ],
    "undefined": [
        ({"text": "{{ foo.bar }}"}, "UndefinedError: 'foo' is undefined"),
        ({"text": "{{ messages[0].nope.deeper }}"}, "UndefinedError"),
    ],
    "sandbox escape": [
        ({"text": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, "SecurityError"),
        ({"text": "{{ cycler.__init__.__globals__.os.system('echo pwned') }}"}, "SecurityError"),
        ({"text": "{{ messages.append({'role': 'user', 'content': 'x'}) }}"}, "SecurityError"),
        ({"text": "{{ messages[0].update(role='x') }}"}, "SecurityError"),
    ],
    "raise_exception": [
        (  # the file's text reaches the terminal with its control characters shown, not obeyed
            {"text": "{{ raise_exception('\\x1b]0;FROM-TEMPLATE\\x07bye') }}"},
            "refused this conversation: ^[]0;FROM-TEMPLATE^Gbye;",
        ),
        (
            {
                "text": "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                "{% endif %}"
            },
            "refused this conversation: System role not supported; leave the system prompt empty",
        ),
        (
            {"text": "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"},
            "refused this conversation: Conversation roles must alternate",
        ),
        ({"text": "{{ raise_exception('line one\\nline two' * 1000) }}"}, "refused this conversation: line one line"),
    ],
    "overflow": [
        ({"text": "{{ range(10**9) | list }}"}, "OverflowError: Range too big"),
        ({"text": "{{ 10.0 ** 400 }}"}, "OverflowError"),
        ({"text": "{{ 2 ** 100000 }}"}, "a power would pass 4096 bits"),
    ],
    "memory bomb": [
        ({"text": "{{ 'x' * 10**9 }}"}, "would make 1,000,000,000 characters"),
        ({"text": "{{ 'x' * 1000000000 }}"}, "would make 1,000,000,000 characters"),
        ({"text": "{{ 'x' | center(1000000000) }}"}, "the center filter was given"),
        ({"text": "{{ '{:>1000000000}'.format(1) }}"}, "a width of millions"),
        ({"text": "{% set s = 'ab' * 50000 %}{{ s.replace('', s) }}"}, "replace would make"),
        ({"text": "{% set s = 'x' * 8000000 %}{{ ('{0}' * 200).format(s) }}"}, "str.format would make"),
        ({"text": "{{ messages | tojson(indent='x' * 8000000) }}"}, "tojson was given a separator"),
        # one C call prints a container: these made 2-5 GB before the size was checked
        ({"text": "{{ range(100000)|list|tojson(indent=99999) }}"}, "tojson was given an indent"),
        ({"text": "{% set s = 'x' * 8000000 %}{{ [s] * 10000 }}"}, "printing a value would make more than"),
        ({"text": "{{ ('%999999s' * 3000) % ((1,) * 3000) }}"}, "a % format would make"),
        (
            {"text": "{% set n = namespace(s='x') %}{% for i in range(64) %}{% set n.s = n.s ~ n.s %}{% endfor %}"},
            "joining text would make",
        ),
        (
            {
                "text": "{% set n = namespace(l=[]) %}{% for i in range(999) %}{% set n.l = n.l + ['x' * 8000000] %}"
                "{% endfor %}"
            },
            "characters in all",
        ),
    ],
    "cpu bomb": [
        ({"text": CPU_BOMB}, "ran for more than 5 s"),
        ({"text": "{% set s = 'x' * 99999 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"}, "5 s"),
        (
            {"text": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(80) }}"},
            "ran for more than 5 s",
        ),
    ],
    "deep recursion": [
        ({"text": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"}, "nests or recurses too deeply"),
        ({"text": "{% for m in messages recursive %}{{ loop([m]) }}{% endfor %}"}, "nests or recurses too deeply"),
    ],
    "other runtime error": [
        ({"text": "{{ 1 // 0 }}"}, "ZeroDivisionError"),
        ({"text": "{{ 1 + 'a' }}"}, "TypeError"),
    ],
    "empty output": [
        ({"text": "{% if false %}never{% endif %}"}, "produced no text for this conversation"),
        ({"text": "{% for m in messages %}{% endfor %}"}, "produced no text"),
    ],
    # The GGUF checks (core/gguf_requirements) or the engine (chat_template.py) refuse these,
    # whichever comes first; both name the key.
    "not text": [
        ({"int32": 7}, "tokenizer.chat_template is a"),
        ({"float32": 1.5}, "tokenizer.chat_template is a"),
        ({"bool": True}, "tokenizer.chat_template is a"),
        ({"strings": ["{{ messages }}", "x"]}, "tokenizer.chat_template is a"),
        ({"int32s": [1, 2, 3]}, "tokenizer.chat_template is a"),
        ({"bytes_hex": "7b7b20fffe207d7d"}, "chat"),  # "{{ \xff\xfe }}": not UTF-8
    ],
    "huge": [
        ({"repeat": ["{{ 'x' }}", 300_000]}, "characters (real ones are under"),
    ],
}


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Where the GGUF copies go: memory where there is some (/dev/shm), as a busy disk takes seconds per copy."""
    shm = Path("/dev/shm")
    in_memory = shm.is_dir() and os.access(shm, os.W_OK)
    folder = Path(tempfile.mkdtemp(dir=shm)) if in_memory else tmp_path_factory.mktemp("copies")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_hostile_templates_are_refused_in_one_line(smollm2_path, tmp_path, copies):
    layout = template_layout(smollm2_path)
    cases = []
    for kind, templates in HOSTILE.items():
        for i, (value, _) in enumerate(templates):
            case_id = f"{kind.replace(' ', '-')}-{i}"
            cases.append(
                call_case(
                    case_id,
                    "tests.fuzz.template_gguf:chat_with_template",
                    smollm2_path,
                    copies,
                    case_id,
                    value,
                    layout,
                    timeout=20,
                )
            )
    # A control: the same copying with the model's own template answers normally.
    original = open_template(smollm2_path)
    cases.append(
        call_case(
            "control",
            "tests.fuzz.template_gguf:chat_with_template",
            smollm2_path,
            copies,
            "control",
            {"text": original},
            layout,
            "--max-tokens",
            "3",
            *PINNED,
        )
    )
    results = run_cases(cases, tmp_path, preload=("llamadesk.app.cli", "llamadesk.app.engine.llama_engine"))
    assert results.pop("control")["code"] == 0

    bad = {}
    counts: dict[str, int] = {}
    for kind, templates in HOSTILE.items():
        for i, (_, says) in enumerate(templates):
            result = results[f"{kind.replace(' ', '-')}-{i}"]
            why = problems(result)
            if why is None and says not in result["stderr"]:
                why = f"the line does not say {says!r}: {result['stderr']!r}"
            if why:
                bad[f"{kind} {i}"] = why
            else:
                counts[kind] = counts.get(kind, 0) + 1
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())
    print("refused cleanly, by class:", counts, "seconds:", max(r["seconds"] for r in results.values()))
    assert not list(copies.glob("*.gguf"))  # every case removed its copy


def open_template(path) -> str:
    from llamadesk.app.core.gguf_file import open_header

    return open_header(path).metadata["tokenizer.chat_template"]


@pytest.fixture(scope="module")
def cpu_bomb_gguf(smollm2_path, copies):
    path = write_with_template(smollm2_path, copies / "bomb.gguf", {"text": CPU_BOMB})
    yield path
    path.unlink(missing_ok=True)


# `llamadesk chat` as the console script runs it (the same main()), saying on stderr when the
# template starts rendering: on a busy machine starting and loading take anywhere from 1 to 10 s,
# and the signal must come while the template renders, before its 5 s deadline.
ANNOUNCING_CLI = """
import sys
from llamadesk.app.cli import main
from llamadesk.app.engine.chat_template import ChatTemplate
render = ChatTemplate.render
def announced(self, *args, **kwargs):
    print("rendering", file=sys.stderr, flush=True)
    return render(self, *args, **kwargs)
ChatTemplate.render = announced
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_stops_a_template_that_loops_forever(cpu_bomb_gguf):
    command = [sys.executable, "-c", ANNOUNCING_CLI, "chat", "-m", str(cpu_bomb_gguf), *PINNED, "hi"]
    chat = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert chat.stderr.readline() == "rendering\n"
        time.sleep(0.5)
        signalled = time.monotonic()
        chat.send_signal(signal.SIGINT)
        _, stderr = chat.communicate(timeout=10)
    finally:
        chat.kill()
    assert time.monotonic() - signalled < 2
    # A one-shot chat renders its prompt as the model loads (to size the context for it): Ctrl-C
    # there is said as during any load.
    assert chat.returncode == 130 and stderr.strip() == "llamadesk: interrupted", stderr


def test_the_engine_stops_a_render_in_progress(cpu_bomb_gguf):
    from llamadesk.app.engine.llama_engine import Engine

    with Engine.load(cpu_bomb_gguf, LoadSettings(n_ctx=512, n_threads=1)) as engine:
        outcome: list[BaseException] = []

        def render() -> None:
            try:
                engine.chat_prompt_tokens([{"role": "user", "content": "hi"}])
            except Exception as err:  # noqa: BLE001 - the test looks at which one
                outcome.append(err)

        worker = threading.Thread(target=render)
        worker.start()
        time.sleep(0.5)
        asked = time.monotonic()
        engine.request_stop()
        worker.join(5)
        assert not worker.is_alive() and time.monotonic() - asked < 1
        assert isinstance(outcome[0], Interrupted)
        assert engine.tokenize("still usable")  # the engine itself is fine


def test_the_tui_engine_host_stops_a_render_and_its_thread_ends(cpu_bomb_gguf):
    from llamadesk.app.tui.engine_host import EngineHost, ModelLoaded, ReplyDone, ReplyRequest

    class Inbox:
        def __init__(self) -> None:
            self.messages: list[object] = []
            self.done = threading.Event()

        def post_message(self, message: object) -> bool:
            self.messages.append(message)
            if isinstance(message, ReplyDone):
                self.done.set()
            return True

    host = EngineHost()
    thread = threading.Thread(target=host.serve)
    thread.start()
    inbox = Inbox()
    request = ReplyRequest(
        str(cpu_bomb_gguf),
        LoadSettings(n_ctx=512, n_threads=1),
        "",
        ({"role": "user", "content": "hi"},),
        Sampling(temperature=0),
    )
    host.reply(request, inbox)
    deadline = time.monotonic() + 30
    while not any(isinstance(m, ModelLoaded) for m in inbox.messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # rendering now
    assert not inbox.done.is_set()
    asked = time.monotonic()
    host.stop()  # Esc
    assert inbox.done.wait(2) and inbox.messages[-1].stopped
    host.shutdown()  # quit
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - asked < 3
    # Nothing keeps burning a core: the process's CPU time stays still.
    before = os.times()
    time.sleep(0.5)
    after = os.times()
    assert (after.user - before.user) < 0.2
