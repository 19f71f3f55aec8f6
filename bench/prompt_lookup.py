"""Prompt-lookup decoding against plain greedy decoding, on the same engine, alternating runs.

Three tasks where the reply repeats its input: a chat request that quotes a sentence full of names
and numbers back (SmolLM2, the chat starter), a spelling correction of a paragraph (SmolLM2), and
a translation of such sentences through the few-shot prompt the translator builds for base models
(Gemma 3, the translation starter; names, numbers and dates carry over); and one where it does not
(a plain question to SmolLM2), for what lookup costs when its guesses miss. Also the cost of one
check of k tokens against a single decode, which decides whether guessing can pay. Reports
generation tokens/s (GenerationStats) with and without lookup, the share of drafted tokens kept,
and whether the outputs are byte-identical.

Flash attention is llamadesk's own choice per model by default (`auto`: off on the CPU for
SmolLM2, on for Gemma 3; section "flash attention"), as `llamadesk chat` runs them.

Writes the "## prompt lookup" section of bench/RESULTS.md.

    .venv/bin/python bench/prompt_lookup.py [--rounds 3] [--threads 1] [--flash-attn auto|on|off]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

SENTENCES = [
    "Order 4471-B from Rufus Wainwright-Oduya ships on 2024-03-17 to 221B Baker Street, London NW1 6XE.",
    "Call Dr. Amelia Okonkwo-Lindqvist at +44 20 7946 0958 before 14:35 about invoice INV-2024-0098.",
    "The Zephyr-9 router (firmware v3.14.159) restarts at 03:00 UTC on the first Monday of each month.",
]


PLAIN_QUESTION = "Why is the sky blue? Answer in a few sentences."
SPELLING = (
    "Correct the spelling and grammar of this paragraph and return the corrected paragraph only:\n"
    "Our team have been working on the new relase for three month. The main feature is a faster search that "
    "find results in under a second, even on old laptop. We also fixed many bug reported by users."
)
CHECK_SIZES = (1, 2, 3, 5, 9)  # a token alone, and with drafts of 1, 2, 4 and 8


def tasks():
    from llamadesk.app.translate import resolve_language
    from llamadesk.app.translate.prompts import TranslationRequest, choose_strategy

    quote = "Repeat these sentences exactly, one per line, then say done:\n" + "\n".join(SENTENCES)
    english, french = resolve_language("en"), resolve_language("fr")
    few_shot = choose_strategy({}, has_chat_template=False)
    translations = [few_shot.build(TranslationRequest(s, english, french)).text for s in SENTENCES]
    return [
        ("quoting chat", "smollm2", [("chat", quote)], 160),
        ("spelling correction (copies most of its input)", "smollm2", [("chat", SPELLING)], 160),
        ("plain chat (nothing to quote)", "smollm2", [("chat", PLAIN_QUESTION)], 160),
        ("translation (few-shot)", "gemma3-270m", [("completion", p) for p in translations], 64),
    ]


def run_task(engine, prompts, max_tokens: int, lookup: bool) -> tuple[list[str], float]:
    from llamadesk.app.engine.types import GenerationDone, Sampling, TextPiece

    sampling = Sampling(temperature=0.0, top_k=1, seed=0, max_tokens=max_tokens, prompt_lookup=lookup)
    texts, generated, seconds = [], 0, 0.0
    for kind, prompt in prompts:
        engine._llama.reset()  # the same cold context for both: no reply reuses another's cache
        events = (
            engine.stream_chat([{"role": "user", "content": prompt}], sampling)
            if kind == "chat"
            else engine.stream_completion(prompt, sampling)
        )
        text = ""
        for event in events:
            if isinstance(event, TextPiece):
                text += event.text
            elif isinstance(event, GenerationDone):
                stats = event.stats
                generated += stats.generated_tokens - 1
                seconds += (stats.generated_tokens - 1) / stats.generated_tokens_per_second
        texts.append(text)
    return texts, generated / seconds


def check_costs(engine, repetitions: int = 20) -> dict[int, float]:
    """Median time of one llama_decode of k tokens (logits at each, as a draft's check asks) after 100
    tokens in the cache, as a multiple of a single token's."""
    import llama_cpp

    llama = engine._llama
    memory = llama_cpp.llama_get_memory(llama.ctx)
    llama.reset()
    llama_cpp.llama_memory_clear(memory, True)
    depth = 100
    llama.eval(list(range(100, 100 + depth)))
    batch = llama_cpp.llama_batch_init(max(CHECK_SIZES), 0, 1)
    times: dict[int, list[float]] = {k: [] for k in CHECK_SIZES}
    try:
        for _ in range(repetitions):
            for k in CHECK_SIZES:
                for i in range(k):
                    batch.token[i], batch.pos[i], batch.logits[i] = 300 + i, depth + i, 1
                    batch.n_seq_id[i], batch.seq_id[i][0] = 1, 0
                batch.n_tokens = k
                started = time.perf_counter()
                if llama_cpp.llama_decode(llama.ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed")
                times[k].append(time.perf_counter() - started)
                llama_cpp.llama_memory_seq_rm(memory, 0, depth, -1)
    finally:
        llama_cpp.llama_batch_free(batch)
        llama.reset()
    single = statistics.median(times[1])
    return {k: statistics.median(times[k]) / single for k in CHECK_SIZES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flash-attn", choices=("auto", "on", "off"), default="auto")
    args = parser.parse_args()
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings
    from llamadesk.app.library.catalog import resolve_model

    flash = {"auto": None, "on": True, "off": False}[args.flash_attn]
    settings = LoadSettings(n_ctx=2048, n_threads=args.threads, n_batch=512, kv_cache_type="f16", flash_attn=flash)
    lines = [
        f"{args.threads} thread(s), greedy, flash attention {args.flash_attn}, f16 KV cache, "
        f"{args.rounds} alternating rounds (plain, lookup, plain, ...). "
        "Generation tokens/s from the engine's own stats (the first token, which comes with the prompt, excluded).",
        "",
        "| task | model | flash attention | plain | prompt lookup | speed-up | drafts kept | identical |",
        "|---|---|---|---|---|---|---|---|",
    ]
    costs: dict[str, dict[int, float]] = {}
    for name, model, prompts, max_tokens in tasks():
        with Engine.load(resolve_model(model), settings) as engine:
            flash_used = "on" if engine.settings.flash_attn else "off"
            if model not in costs:
                costs[model] = check_costs(engine)
            speeds: dict[bool, list[float]] = {False: [], True: []}
            outputs: dict[bool, list[str]] = {}
            lookup = engine._token_loop.lookup
            for _ in range(args.rounds):
                for use_lookup in (False, True):
                    outputs[use_lookup], speed = run_task(engine, prompts, max_tokens, use_lookup)
                    speeds[use_lookup].append(speed)
            plain, drafted = statistics.fmean(speeds[False]), statistics.fmean(speeds[True])
            kept = lookup.accepted / lookup.drafted if lookup.drafted else 0.0
            same = "yes" if outputs[False] == outputs[True] else "NO"
            speeds_shown = [f"{plain:.1f}", f"{drafted:.1f}", f"{drafted / plain:.2f}x"]
            cells = [name, model, flash_used, *speeds_shown, f"{kept:.0%}", same]
            lines.append("| " + " | ".join(cells) + " |")
        print(f"{name} done", file=sys.stderr)
    lines += [
        "",
        "What checking a draft costs: one llama_decode of the token and its draft (k tokens, logits at each), "
        "after 100 tokens in the cache, as a multiple of a single token's decode (median of 20):",
        "",
        "| model | " + " | ".join(f"k = {k}" for k in CHECK_SIZES) + " |",
        "|---|" + "---:|" * len(CHECK_SIZES),
        *(f"| {model} | " + " | ".join(f"{c[k]:.2f}" for k in CHECK_SIZES) + " |" for model, c in costs.items()),
        "",
        "Prompt lookup is off by default; `llamadesk chat --prompt-lookup` asks for it on greedy replies "
        "(Sampling.prompt_lookup). Each draft is as long as gives the most tokens per second, from the "
        "times of this reply's own single decodes and checks and the share of its guesses that were right "
        "(app/engine/prompt_lookup.py, DraftLength); after a check that cost more time than it saved, no "
        "guess is made for 2, 4, ... up to 32 tokens. On this machine a check costs nearly as much per token "
        "as a decode (the table above), so only long exact quotes gain; a machine whose decodes wait on "
        "memory rather than arithmetic pays less per guessed token and gets longer drafts. The output is "
        "identical only where llama.cpp's CPU kernels give a token the same logits in a batch as alone: "
        "true for SmolLM2 (Q4_1) here, not for Gemma 3 (Q4_K_M/Q5_0/Q8_0 mix), whose batched matrix kernels "
        "round differently and flip near-ties (the same effect as in the 'batched' section). Translation "
        "also asks for log-probabilities (confidence), which lookup does not compute, so the translator "
        "does not use it.",
        "",
        f"Command: `.venv/bin/python bench/prompt_lookup.py --rounds {args.rounds} --threads {args.threads}"
        + (f" --flash-attn {args.flash_attn}" if args.flash_attn != "auto" else "")
        + "`",
    ]
    update_section("prompt lookup", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
