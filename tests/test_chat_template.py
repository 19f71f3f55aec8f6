"""Chat templates rendered within a time and size budget (app/engine/chat_template.py, interruptible.py).

No model here: the templates are strings; tests/fuzz/test_templates.py runs them inside real GGUFs.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from llamadesk.app.core.errors import BadInputError, Interrupted
from llamadesk.app.core.gguf_file import open_header
from llamadesk.app.engine import chat_template as chat_template_module
from llamadesk.app.engine.chat_template import TEMPLATE_KEY, ChatTemplate
from llamadesk.app.engine.interruptible import Interruptible, Stopped

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CPU_BOMB = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}]


def spin_forever() -> None:
    while True:
        pass


def conversations() -> list[list[dict]]:
    long = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(20):
        long.append({"role": "user", "content": f"Question {i} with ünïcödé 東京 🎉"})
        long.append({"role": "assistant", "content": f"A{i}"})
    return [QUESTION, QUESTION[1:], long + [{"role": "user", "content": "Last"}]]


# Every feature chat templates rely on (written for this test): namespace, loop controls, slicing,
# filters, tojson, the generation tag, a conditional raise_exception, bos/eos.
FEATURES = """{{ bos_token }}{% set ns = namespace(system='', count=0) %}
{% if messages[0]['role'] == 'system' %}{% set ns.system = messages[0]['content'] | trim %}{% endif %}
{% for m in messages[1:] if m['role'] != 'system' %}
{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('Unknown role ' ~ m['role']) }}{% endif %}
{% if loop.index0 > 40 %}{% break %}{% endif %}
{% set ns.count = ns.count + 1 %}
[{{ m['role'] | upper }} {{ loop.index }}/{{ loop.length }}]
{% if loop.first and ns.system %}({{ ns.system }}) {% endif %}
{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}
{% else %}{{ m['content'] | replace('\\n', ' ') | truncate(200) }}{% endif %}
{% endfor %}
{{ {'turns': ns.count, 'last': messages[-1]['content'][:10]} | tojson }}
{% if add_generation_prompt %}[ASSISTANT]{% endif %}"""


def test_real_templates_render_exactly_as_llama_cpp_python_renders_them():
    from llamadesk.app.library.starters import starter_path

    smollm2 = open_header(starter_path("smollm2")).metadata[TEMPLATE_KEY]
    for source in (smollm2, FEATURES, CHATML):
        ours = ChatTemplate(source, model="m")
        ours.set_special_tokens(bos_token="<bos>", eos_token="<eos>")
        theirs = Jinja2ChatFormatter(template=source, bos_token="<bos>", eos_token="<eos>")
        for messages in conversations():
            assert ours.render(messages) == theirs(messages=messages).prompt


def refused(source: object, messages=QUESTION) -> str:
    with pytest.raises(BadInputError) as caught:
        ChatTemplate(source, model="Evil").render(messages)
    line = str(caught.value)
    assert "\n" not in line and len(line) < 400
    return line


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{% for %}", "failed while compiling it: Expected an expression"),
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nests or recurses too deeply"),
        ("{{ foo.bar }}", "UndefinedError: 'foo' is undefined"),
        ("{{ ''.__class__.__mro__ }}", "SecurityError"),
        ("{{ messages.append(1) }}", "SecurityError"),
        ("{{ range(10**9)|list }}", "OverflowError: Range too big"),
        ("{{ 10.0 ** 400 }}", "OverflowError"),
        ("{{ 1 // 0 }}", "ZeroDivisionError"),
        ("{{ 'x' * 10**9 }}", "would make 1,000,000,000 characters"),
        ("{{ 9 ** 99999 }}", "a power would pass 4096 bits"),
        ("{% set n = namespace(x=3) %}{% for i in range(40) %}{% set n.x = n.x * n.x %}{% endfor %}{{ n.x }}", "bits"),
        ("{{ 'x'|center(1000000000) }}", "the center filter was given 1,000,000,000"),
        ("{{ 'x'.ljust(10**9) }}", "str.ljust was given"),
        ("{{ '%1000000000d' % 1 }}", "a width of millions"),
        ("{{ '{:>1000000000}'.format(1) }}", "a width of millions"),
        ("{{ '%*d' % (10**9, 1) }}", "a % format was given 1,000,000,000"),
        ("{{ '{0:>{1}}'.format('x', 10**9) }}", "str.format was given 1,000,000,000"),
        ("{% set s = 'x' * 8000000 %}{{ ('{0}' * 200).format(s) }}", "str.format would make"),
        ("{% set s = 'x' * 8000000 %}{{ ('%s' * 200) % ((s,) * 200) }}", "a % format would make"),
        ("{% set s = '\\t' * 100000 %}{{ s.expandtabs(99999) }}", "expandtabs would make"),
        ("{{ messages|tojson(indent='x' * 1000) }}", "tojson was given a separator of 1,000 characters"),
        ("{{ [1]|batch(10**9, 'x')|list }}", "the batch filter was given"),
        ("{{ messages|tojson(indent=10**9) }}", "the tojson filter was given"),
        ("{% set s = 'ab' * 50000 %}{{ s.replace('', s) }}", "replace would make"),
        ("{% set s = '\\n' * 99999 %}{{ s|indent(99999) }}", "indent would make"),
        ("{% set s = 'x' * 5000000 %}{{ [s, s, s]|join }}", "join would make"),
        ("{% set n = namespace(s='x') %}{% for i in range(40) %}{% set n.s = n.s ~ n.s %}{% endfor %}", "joining"),
        ("{% set n = namespace(s='x') %}{% for i in range(40) %}{% set n.s = n.s + n.s %}{% endfor %}", "`+`"),
        (
            "{% set n = namespace(l=[]) %}{% for i in range(1000) %}{% set n.l = n.l + ['x' * 8000000] %}{% endfor %}",
            "characters in all",
        ),
        (  # partition() and split() make fresh copies: counted as items, they held GBs
            "{% set s = 'y' ~ ('x' * 8000000) %}{% set n = namespace(l=[]) %}"
            "{% for i in range(100000) %}{% set n.l = n.l + [s.partition('y')] %}{% endfor %}",
            "characters in all",
        ),
        (
            "{% set s = 'ab ' * 2700000 %}{% set n = namespace(l=[]) %}"
            "{% for i in range(100000) %}{% set n.l = n.l + [s.split()] %}{% endfor %}",
            "split made a value of 48,600,000 items",
        ),
        # One C call prints a container: a list of one 8 MB string 10,000 times is 80 KB, its text 80 GB.
        ("{% set s = 'x' * 8000000 %}{{ [s] * 10000 }}", "printing a value would make more than"),
        ("{% set s = 'x' * 8000000 %}{{ 'a' ~ ([s] * 1000) }}", "joining text would make more than"),
        ("{% set s = 'x' * 8000000 %}{{ ([s] * 1000)|tojson }}", "tojson would make more than"),
        ("{% set s = 'x' * 8000000 %}{{ ([s] * 1000)|string }}", "the string filter would make more than"),
        ("{% set s = 'x' * 8000000 %}{{ [[s] * 1000]|join }}", "join would make more than"),
        ("{% set s = 'x' * 8000000 %}{{ '%s' % ([s] * 1000,) }}", "a % format would make"),
        ("{% set s = 'x' * 8000000 %}{{ '{}'.format({'k': [s] * 1000}) }}", "str.format would make"),
        ("{% set s = 'x' * 8000000 %}{% set n = namespace(l=[s] * 1000) %}{{ n }}", "printing a value"),
        ("{% set s = 'x' * 8000000 %}{{ ''.join(([s] * 1000)|map('string')) }}", "characters in all"),
        ("{{ range(100000)|list|tojson(indent=99999) }}", "tojson was given an indent of 99,999"),
        ("{{ range(100000)|list|tojson(indent=100) }}", "tojson would make more than"),
        ("{{ ('%999999s' * 3000) % ((1,) * 3000) }}", "a % format would make 3,000,069,000"),
        ("{{ ('{:999999}' * 3000).format(1) }}", "str.format would make 3,000,072,000"),
        ("{{ ('%.99999f' * 3000) % ((1.0,) * 3000) }}", "a % format would make"),
        ("{{ ('%*s' * 3000) % ((99999, 'x') * 3000) }}", "a % format would make"),
        ("{{ [1]|pprint }}", "No filter named 'pprint'"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nests or recurses too deeply"),
        ("{% if false %}never{% endif %}", "produced no text for this conversation"),
    ],
)
def test_every_kind_of_template_failure_is_one_line_naming_the_model(source, says):
    line = refused(source)
    assert line.startswith("Evil's chat template") and says in line, line


def test_raise_exception_shows_the_templates_own_message_and_what_helps():
    source = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x"
    line = refused(source)
    assert line == (
        "Evil's chat template refused this conversation: System role not supported; "
        "leave the system prompt empty or pick another model"
    )
    assert ChatTemplate(source, model="Evil").render(QUESTION[1:]) == "x"
    mistral = "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    line = refused(mistral, QUESTION[1:])
    assert line.endswith("must alternate user/assistant/user/assistant/...; pick another model")
    # With a system prompt in the conversation too, the hint is not about it: emptying it does not help.
    assert refused(mistral).endswith("must alternate user/assistant/user/assistant/...; pick another model")


def test_printing_containers_of_normal_size_still_works():
    source = (
        "{{ messages|tojson(indent=2) }}|{{ [1, 'a', {'k': (2, 3)}] }}|{{ 'x' ~ [1] }}|{{ '%s' % ([1],) }}"
        "|{{ ['a', 'b']|map('upper')|join(',') }}|{{ ','.join(['a', 'b']|map('upper')) }}|{{ {'a': 1}.items() }}"
    )
    text = ChatTemplate(source, model="m").render(QUESTION)
    assert text.endswith("|[1, 'a', {'k': (2, 3)}]|x[1]|[1]|A,B|A,B|dict_items([('a', 1)])")


def test_control_characters_from_the_file_are_shown_not_sent_to_the_terminal():
    evil_name = "\x1b]0;PWNED\x07\x1b[2JEvil"
    source = "{{ raise_exception('\x1b]0;FROM-TEMPLATE\x07bye\nsecond line') }}"
    with pytest.raises(BadInputError) as caught:
        ChatTemplate(source, model=evil_name).render(QUESTION[1:])
    line = str(caught.value)
    assert line == (
        "^[]0;PWNED^G^[[2JEvil's chat template refused this conversation: ^[]0;FROM-TEMPLATE^Gbye second line; "
        "pick another model"
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [(7, "is a number, not text"), ([1, 2], "is an array, not text"), (True, "is a boolean, not text")],
)
def test_a_template_that_is_not_text_is_refused_before_use(value, says):
    with pytest.raises(BadInputError, match=says):
        ChatTemplate(value, model="Evil")


def test_a_huge_template_is_refused_without_compiling_it():
    started = time.monotonic()
    with pytest.raises(BadInputError, match="characters .real ones are under"):
        ChatTemplate("{{ 'x' }}" * 300_000, model="Evil")
    assert time.monotonic() - started < 0.5


def test_a_cpu_bomb_ends_at_the_deadline(monkeypatch):
    monkeypatch.setattr(chat_template_module, "RENDER_SECONDS", 0.5)
    started = time.monotonic()
    line = refused(CPU_BOMB)
    assert "ran for more than 0.5 s" in line and time.monotonic() - started < 2


def test_a_stop_from_another_thread_ends_a_render_in_progress():
    template = ChatTemplate(CPU_BOMB, model="Evil")
    threading.Timer(0.3, template.interrupt).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="stopped"):
        template.render(QUESTION)
    assert time.monotonic() - started < 1.5
    # The template is usable again, and a stop that comes while nothing renders changes nothing.
    template.interrupt()
    normal = ChatTemplate(CHATML, model="m")
    normal.interrupt()
    assert normal.render(QUESTION).endswith("<|im_start|>assistant\n")


def test_a_normal_render_stays_fast():
    template = ChatTemplate(CHATML, model="m")
    started = time.perf_counter()
    for _ in range(200):
        template.render(QUESTION)
    assert (time.perf_counter() - started) / 200 < 0.005  # ~50 us here; a loaded CI box is far slower


def test_interruptible_returns_the_value_and_never_interrupts_after_the_call():
    guard = Interruptible()
    for _ in range(2000):
        # interrupt() racing with the call's end: either the call is stopped, or nothing happens
        # after it returns (an interrupt that lands later would raise in this loop).
        threading.Thread(target=guard.interrupt).start()
        try:
            assert guard.call(5.0, lambda: 42) == 42
        except Stopped:
            pass
    time.sleep(0.05)  # any stray asynchronous exception would be raised here


def test_interruptible_from_a_signal_handler_in_the_same_thread():
    guard = Interruptible()
    previous = signal.signal(signal.SIGALRM, lambda *_: guard.interrupt())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        with pytest.raises(Stopped) as caught:
            guard.call(5.0, spin_forever)
        assert caught.value.reason == "stopped" and time.monotonic() - started < 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_interruptible_deadlines_of_different_lengths_in_two_threads():
    results: dict[str, float] = {}

    def spin(name: str, seconds: float) -> None:
        started = time.monotonic()
        try:
            Interruptible().call(seconds, spin_forever)
        except Stopped as stop:
            results[name] = time.monotonic() - started if stop.reason == "deadline" else -1

    long = threading.Thread(target=spin, args=("long", 3.0))
    long.start()
    time.sleep(0.1)
    short = threading.Thread(target=spin, args=("short", 0.3))  # its deadline comes first
    short.start()
    short.join(5)
    long.join(10)
    assert 0.3 <= results["short"] < 1.5 and 3.0 <= results["long"] < 5


def test_interrupts_racing_the_end_of_calls_never_leave_a_call_hanging():
    """Deadlines and interrupt() from another thread land at every point of a call, also while it
    ends or starts the next one: each call still returns or raises Stopped, and none hangs (a lock
    taken by the guarded thread and leaked by an interrupt once made the next end() wait forever)."""
    import random
    import threading

    guard = Interruptible()
    finished: list[int] = []
    rng = random.Random(7)

    def busy_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def worker() -> None:
        for _ in range(300):
            try:
                guard.call(rng.uniform(0.0002, 0.002), lambda: busy_for(rng.uniform(0, 0.002)))
            except Stopped:
                pass
        finished.append(1)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        guard.interrupt()
        time.sleep(rng.uniform(0, 0.001))
    thread.join(1)
    assert finished == [1], "a guarded call hung"


TRACED_AFTER_STOPS = """
import sys, threading, time
from llamadesk.app.engine.interruptible import Interruptible, Stopped

def spin() -> None:  # Python bytecode forever, allocating nothing
    while True:
        pass

guard = Interruptible()
stopped = 0
for seconds in (0.05, 5.0):  # one call ends at its deadline, one by interrupt() from a thread
    if seconds > 1:
        threading.Timer(0.05, guard.interrupt).start()
    try:
        guard.call(seconds, spin)
    except Stopped:
        stopped += 1
for _ in range(200):  # calls that end while interrupt() races them
    threading.Thread(target=guard.interrupt).start()
    try:
        guard.call(5.0, lambda: 42)
    except Stopped:
        pass

def traced() -> None:
    sys.settrace(lambda *_: None)  # what coverage.py, a debugger or a profiler installs
    print(sum(abs(i) for i in range(10)))

thread = threading.Thread(target=traced, daemon=True)
thread.start()
thread.join(10)
print("stopped", stopped, "hung" if thread.is_alive() else "ran")
"""


def test_a_traced_thread_still_runs_after_guarded_calls_were_stopped():
    """Cancelling a pending asynchronous exception with NULL leaves CPython 3.11's interpreter-wide
    "exception pending" flag up for good; under any trace function every thread then loops forever
    at its next function call (coverage runs of this suite hung that way). Each stop is received,
    not cancelled, so a traced thread runs normally afterwards."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", TRACED_AFTER_STOPS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["45", "stopped", "2", "ran"], result.stdout
