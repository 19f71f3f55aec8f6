"""The prompt cache on disk: time to the first token of the next message in a stored 3,000-token
conversation, right after the app (re)starts, with the cache and without it, side by side.

A conversation of about 3,000 tokens is stored (SQLite, as the app stores it) and answered once
with the cache on, which writes its cache file. Then each measurement is a fresh process, as after
a restart: it loads the model (not timed: the same either way), and times from "the user sent the
next message" (read the conversation from the store, fit it into the context, tokenize, restore the
cache file when on, decode) to the first token of the reply. With and without the cache alternate,
so the noise of a shared machine hits both alike. Each pair's greedy replies must be identical.
"Cold" drops the cache file from the OS page cache first (posix_fadvise), as after a reboot.
Writes the "## prompt cache" section of bench/RESULTS.md.

    .venv/bin/python bench/prompt_cache.py [--model smollm2] [--tokens 3000] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

NEXT_MESSAGE = "Thank you. Now summarise what we said about the harbour in two sentences."
REPLY_TOKENS = 8
CONVERSATION_ID = 1
TOPICS = ("harbour", "old market", "cathedral", "railway", "river trade", "city walls", "university", "printing press")
SENTENCES = (
    "The {t} grew slowly over three centuries, shaped by merchants, floods and the ambitions of its councils.",
    "Records from the period describe the {t} as crowded, noisy and essential to the town's income.",
    "Historians still argue about when the {t} took its present form, because the archives are incomplete.",
    "Travellers wrote that the {t} was the first thing they noticed and the last thing they forgot.",
    "Each generation rebuilt part of the {t}, so its stones carry the marks of many different builders.",
    "Taxes raised around the {t} paid for roads, wells and the first hospital in the district.",
)


def conversation_turns(rng: random.Random, n_turns: int) -> list[tuple[str, str]]:
    turns = []
    for i in range(n_turns):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Tell me more about the {topic}, and how it changed the town (question {i + 1})."
        answer = " ".join(rng.choice(SENTENCES).format(t=topic) for _ in range(9))
        turns.append((question, answer))
    return turns


def load_engine(model: str, threads: int | None):
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    return Engine.load(model, LoadSettings(n_ctx=4096, n_threads=threads, kv_cache_type="f16", n_gpu_layers=0))


def next_reply(engine, home: Path, question: str, use_cache: bool, save: bool) -> dict:
    """The reply to `question` after the stored conversation, as the CLI gives it; the time from
    sending it to the first token. `save` writes the cache file afterwards, as the app does."""
    from llamadesk.app.chat.context_fit import fit_context
    from llamadesk.app.chat.prompt_cache import PromptCache
    from llamadesk.app.chat.store import Store
    from llamadesk.app.engine.types import Sampling, TextPiece

    sampling = Sampling(temperature=0.0, max_tokens=REPLY_TOKENS, seed=0)
    cache = PromptCache(home / "prompt-cache", budget=10**10) if use_cache else None
    started, cpu_started = time.perf_counter(), time.process_time()
    store = Store(home / "conversations.sqlite3")
    conversation = store.conversation(CONVERSATION_ID)
    turns = [{"role": m.role, "content": m.content} for m in store.messages(CONVERSATION_ID)]
    turns.append({"role": "user", "content": question})
    fitted = fit_context(
        conversation.settings.system_prompt,
        turns,
        lambda messages: len(engine.chat_prompt_tokens(messages)),
        engine.n_ctx,
        sampling.max_tokens,
    )
    prompt_tokens = engine.chat_prompt_tokens(fitted.messages)
    restored = cache.restore(engine, CONVERSATION_ID, prompt_tokens) if cache is not None else 0
    first_token_s = first_token_cpu_s = None
    text = []
    for event in engine.stream_chat(fitted.messages, sampling):
        if isinstance(event, TextPiece):
            if first_token_s is None:
                first_token_s, first_token_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
            text.append(event.text)
    if save and cache is not None:
        cache.save(engine, CONVERSATION_ID)
        cache.close()
    store.close()
    return {
        "ttft_s": first_token_s,
        "ttft_cpu_s": first_token_cpu_s,
        "restored": restored,
        "prompt_tokens": len(prompt_tokens),
        "text": "".join(text),
        "problem": cache.problem if cache is not None else None,
    }


def drop_from_page_cache(folder: Path) -> None:
    for path in folder.glob("*.kvc"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def child(args: argparse.Namespace) -> None:
    home = Path(args.home)
    with load_engine(args.model, args.threads) as engine:
        if args.cold:
            drop_from_page_cache(home / "prompt-cache")
        print(json.dumps(next_reply(engine, home, NEXT_MESSAGE, args.mode == "cache", save=False)))


def run_child(args: argparse.Namespace, home: Path, mode: str, cold: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--home", str(home), "--model", args.model]
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--cold"] if cold else []
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_conversation(args: argparse.Namespace, home: Path) -> None:
    """Store a conversation of about --tokens tokens whose last reply was given with the cache on
    (which wrote its cache file, as the app does after every reply)."""
    from llamadesk.app.chat.store import ConversationSettings, Store

    store = Store(home / "conversations.sqlite3")
    settings = ConversationSettings(model=args.model, system_prompt="You are a helpful assistant.", temperature=0.0)
    conversation = store.new_conversation("A long talk about a town", settings)
    assert conversation.id == CONVERSATION_ID
    with load_engine(args.model, args.threads) as engine:
        turns = []
        for question, answer in conversation_turns(random.Random(18), 200):
            turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            messages = [{"role": "system", "content": settings.system_prompt}, *turns]
            if len(engine.chat_prompt_tokens(messages)) >= args.tokens:
                break
        for turn in turns[:-2]:
            store.add_message(CONVERSATION_ID, turn["role"], turn["content"])
        last_question = turns[-2]["content"]
        reply = next_reply(engine, home, last_question, use_cache=True, save=True)
        store.add_message(CONVERSATION_ID, "user", last_question)
        store.add_message(CONVERSATION_ID, "assistant", reply["text"])
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--child", choices=("cache", "none"), dest="mode", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    from llamadesk.app.library.catalog import resolve_model

    args.model = str(resolve_model(args.model))
    with tempfile.TemporaryDirectory(prefix="llamadesk-bench-prompt-cache-") as folder:
        home = Path(folder)
        build_conversation(args, home)
        (cache_file,) = (home / "prompt-cache").glob("*.kvc")
        pairs = []
        for _ in range(args.rounds):
            with_cache = run_child(args, home, "cache")
            cold = run_child(args, home, "cache", cold=True)
            without = run_child(args, home, "none")
            assert with_cache["text"] == without["text"] == cold["text"], (with_cache, cold, without)
            assert with_cache["restored"] > 0 and cold["restored"] > 0, (with_cache, cold)
            pairs.append((with_cache, cold, without))
            print(
                f"with {with_cache['ttft_s']:.3f} s, cold {cold['ttft_s']:.3f} s, without {without['ttft_s']:.3f} s; "
                f"cpu {with_cache['ttft_cpu_s']:.3f} / {cold['ttft_cpu_s']:.3f} / {without['ttft_cpu_s']:.3f} s",
                file=sys.stderr,
            )
        file_bytes = cache_file.stat().st_size
        n_cached = with_cache["restored"]
        from llamadesk.app.chat.prompt_cache import HEADER

        with open(cache_file, "rb") as f:  # the file's token count: the conversation up to the end of the last reply
            file_tokens = HEADER.unpack(f.read(HEADER.size))[3]
    warm, cold_s, none = (statistics.median(p[i]["ttft_s"] for p in pairs) for i in range(3))
    warm_cpu, cold_cpu, none_cpu = (statistics.median(p[i]["ttft_cpu_s"] for p in pairs) for i in range(3))
    prompt = with_cache["prompt_tokens"]
    threads = args.threads or "auto"

    def row(wall: float, cpu: float) -> str:
        return f"{wall:.2f} | **{none / wall:.1f}x** | {cpu:.2f} | **{none_cpu / cpu:.1f}x**"

    rounds = "; ".join(f"{a['ttft_s']:.3f} / {b['ttft_s']:.3f} / {c['ttft_s']:.3f}" for a, b, c in pairs)
    per_1000 = file_bytes / file_tokens * 1000 / 1024**2
    command = "bench/prompt_cache.py" + (f" --threads {args.threads}" if args.threads else "")
    command += f" --tokens {args.tokens} --rounds {args.rounds}"
    body = f"""
Model `{Path(args.model).name}`, threads: {threads} (one: on a busy shared machine llama.cpp's thread barriers make two
slower), f16 KV cache, a stored conversation of {prompt} prompt tokens
({file_tokens} in the cache file, {n_cached} of them shared with the next prompt), {args.rounds} interleaved rounds,
each measurement a fresh process (model load not timed). Time from sending the next message to its first token,
median; ratio = without / with. Wall time is what a user waits; on this shared 2-core machine (load average
{os.getloadavg()[0]:.0f} at the end) it is mostly waiting for a core, so the CPU time the process spent by its first
token is given beside it.

| | time to first token, wall (s) | ratio | CPU time to first token (s) | ratio |
|---|---|---|---|---|
| without the cache (decodes all {prompt} tokens) | {none:.2f} | 1 | {none_cpu:.2f} | 1 |
| with the cache, file in the page cache | {row(warm, warm_cpu)} |
| with the cache, file dropped from the page cache first | {row(cold_s, cold_cpu)} |

Per round (with / cold / without, wall s): {rounds}.
The greedy replies ({REPLY_TOKENS} tokens) were identical with and without the cache in every round.

Disk: the file is {file_bytes / 1024**2:.1f} MiB for {file_tokens} tokens, **{per_1000:.1f} MiB per 1,000 tokens**
(the model's K and V for each token: layers x KV heads x head size x 2 x 2 bytes, plus 4 bytes for the token).

Goal: >= 20x faster to the first token with the cache.

Command: `.venv/bin/python {command}`
"""
    print(body)
    update_section("prompt cache", body)


if __name__ == "__main__":
    main()
