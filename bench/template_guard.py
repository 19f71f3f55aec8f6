"""What the chat template's time and size budget costs a normal render, and what the alternatives would.

Templates render on every message and on every step of fitting a conversation into the context,
so the guard against hostile templates (app/engine/chat_template.py, interruptible.py) must cost
a normal render next to nothing. For SmolLM2's real template and a 2- and a 42-message
conversation, the script times:

- llama-cpp-python's way: Jinja's immutable sandbox, no limits (what llamadesk did before);
- ChatTemplate.render: the sandbox with size checks, under a deadline that any thread can stop;
- a trace function (sys.settrace) checking the deadline on every line: the obvious alternative;
- a child process per render (fork, render, send the text back, wait) with the model loaded.

Writes "## template guard" of bench/RESULTS.md.

    .venv/bin/python bench/template_guard.py [--reps 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

from llamadesk.app.core.gguf_file import open_header  # noqa: E402
from llamadesk.app.engine.chat_template import TEMPLATE_KEY, ChatTemplate  # noqa: E402
from llamadesk.app.engine.interruptible import Interruptible  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}: what is the capital of country number {i}?"})
        messages.append({"role": "assistant", "content": f"The capital of country number {i} is City {i}."})
    messages.append({"role": "user", "content": "And the last one?"})
    return messages


def per_call(function, reps: int) -> float:
    """Seconds per call: the fastest of 5 rounds of `reps` calls (as timeit advises: the slower
    rounds measure other programs, not this code)."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            function()
        rounds.append((time.perf_counter() - start) / reps)
    return min(rounds)


def llama_cpp_python_render(source: str):
    """Jinja2ChatFormatter's environment, as llama-cpp-python builds it."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    template = env.from_string(source)
    return lambda messages: template.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")


def traced(render, messages) -> str:
    """The render under a trace function that checks a deadline on every line event."""
    deadline = time.monotonic() + 5.0

    def local(frame, event, arg):
        if time.monotonic() > deadline:
            raise TimeoutError
        return local

    sys.settrace(lambda frame, event, arg: local)
    try:
        return render(messages)
    finally:
        sys.settrace(None)


def forked(render, messages) -> str:
    """The render in a child process, the text sent back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, render(messages).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()

    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    # A loaded model, as in the app: forking copies its page tables.
    engine = Engine.load(starter_path("smollm2"), LoadSettings(n_ctx=2048, n_threads=1))
    guard = Interruptible()
    rows = []
    for name in ("smollm2",):
        source = open_header(starter_path(name)).metadata[TEMPLATE_KEY]
        ours = ChatTemplate(source, model=name)
        plain = llama_cpp_python_render(source)
        for turns in (0, 20):
            messages = conversation(turns)
            assert ours.render(messages) == plain(messages)
            reps = max(20, args.reps // (1 + turns // 4))
            base = per_call(lambda m=messages, f=plain: f(m), reps)
            timings = {
                "guarded": per_call(lambda m=messages, t=ours: t.render(m), reps),
                "settrace": per_call(lambda m=messages, f=plain: traced(f, m), reps),
                "fork": per_call(lambda m=messages, f=plain: forked(f, m), max(20, reps // 50)),
            }
            rows.append(
                f"| {name} | {len(messages)} | {base * 1e6:.0f} | "
                + " | ".join(f"{t * 1e6:.0f} ({t / base:.1f}x)" for t in timings.values())
                + " |"
            )
            print(rows[-1], flush=True)
    guard_alone = per_call(lambda: guard.call(5.0, lambda: None), args.reps)
    engine.close()
    body = (
        "`.venv/bin/python bench/template_guard.py`: microseconds per render of SmolLM2's chat template\n"
        "(the fastest of 5 rounds), and the multiple of llama-cpp-python's unguarded render.\n\n"
        "| template | messages | llama-cpp-python (us) | ChatTemplate (us) | settrace deadline (us) "
        "| child process (us) |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nThe deadline guard alone (Interruptible.call around nothing): {guard_alone * 1e6:.1f} us per call.\n"
        + f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} as it ran (other work inflates all columns).\n"
    )
    update_section("template guard", body)
    print(body)


if __name__ == "__main__":
    main()
