"""Prompt-lookup decoding against plain greedy decoding, on the same engine, alternating runs.

Two tasks where the reply repeats its input: a chat request that quotes a sentence full of names
and numbers back (SmolLM2, the chat starter), and a translation of such sentences through the
few-shot prompt the translator builds for base models (Gemma 3, the translation starter; names,
numbers and dates carry over). Reports generation tokens/s (GenerationStats) with and without
lookup, the share of drafted tokens kept, and whether the outputs are byte-identical.

Writes the "## prompt lookup" section of bench/RESULTS.md.

    .venv/bin/python bench/prompt_lookup.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

SENTENCES = [
    "Order 4471-B from Rufus Wainwright-Oduya ships on 2024-03-17 to 221B Baker Street, London NW1 6XE.",
    "Call Dr. Amelia Okonkwo-Lindqvist at +44 20 7946 0958 before 14:35 about invoice INV-2024-0098.",
    "The Zephyr-9 router (firmware v3.14.159) restarts at 03:00 UTC on the first Monday of each month.",
]


def tasks():
    from llamadesk.app.translate import resolve_language
    from llamadesk.app.translate.prompts import TranslationRequest, choose_strategy

    quote = "Repeat these sentences exactly, one per line, then say done:\n" + "\n".join(SENTENCES)
    english, french = resolve_language("en"), resolve_language("fr")
    few_shot = choose_strategy({}, has_chat_template=False)
    translations = [few_shot.build(TranslationRequest(s, english, french)).text for s in SENTENCES]
    return [
        ("quoting chat", "smollm2", [("chat", quote)], 160),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings
    from llamadesk.app.library.catalog import resolve_model

    settings = LoadSettings(n_ctx=2048, n_threads=args.threads, n_batch=512, kv_cache_type="f16", flash_attn=True)
    lines = [
        f"{args.threads} thread(s), greedy, {args.rounds} alternating rounds (plain, lookup, plain, ...). "
        "Generation tokens/s from the engine's own stats (the first token, which comes with the prompt, excluded).",
        "",
        "| task | model | plain | prompt lookup | speed-up | drafts kept | identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model, prompts, max_tokens in tasks():
        with Engine.load(resolve_model(model), settings) as engine:
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
            lines.append(
                f"| {name} | {model} | {plain:.1f} | {drafted:.1f} | {drafted / plain:.2f}x | {kept:.0%} | {same} |"
            )
        print(f"{name} done", file=sys.stderr)
    lines += [
        "",
        "Prompt lookup is off by default (Sampling.prompt_lookup). Checking a draft decodes up to 9 tokens at "
        "once; with 1-2 busy cores that costs several single-token decodes, so even 96% of drafts kept gains "
        "little. And the output is identical only where llama.cpp's CPU kernels give a token the same logits "
        "in a 9-token batch as alone: true for SmolLM2 (Q4_1) here, not for Gemma 3 (Q4_K_M/Q5_0/Q8_0 mix), "
        "whose batched matrix kernels round differently and flip near-ties (the same effect as in the "
        "'batched' section). Translation also asks for log-probabilities (confidence), which lookup does not "
        "compute, so the translator does not use it.",
        "",
        f"Command: `.venv/bin/python bench/prompt_lookup.py --rounds {args.rounds} --threads {args.threads}`",
    ]
    update_section("prompt lookup", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
