"""`llamadesk translate`: translate piped lines or a file, offline, keeping its structure."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from llamadesk.app.commands.options import add_load_options, add_model_option, load_settings
from llamadesk.app.core.errors import BadInputError, Interrupted, LlamadeskError

EXAMPLES = """examples:
  echo "Where is the station?" | llamadesk translate --to fr
  llamadesk translate --to de --from en README.md -o README.de.md
  llamadesk translate --to Spanish messages.txt --glossary terms.txt --json
  llamadesk translate --to fr -m ./Tower-7B.Q4_K_M.gguf notes.md     (prompt chosen from the model)

Piped text is translated line by line: the N-th output line is the translation of the N-th input
line, blank lines kept. A FILE keeps its structure (Markdown headings, lists, tables, code
blocks). Placeholders (%s, {name}), URLs, e-mails and code come out unchanged. With -o, Ctrl-C
keeps the finished part in a sidecar beside OUT: run the same command again to resume.
A glossary file has one 'term = translation' per line.
"""

DEFAULT_CONTEXT = 4096  # chunks are sentence-sized: a large context only costs memory


def register(sub: argparse._SubParsersAction) -> None:
    from llamadesk.app.translate.prompts import strategy_names

    parser = sub.add_parser(
        "translate",
        help="translate text or a file between languages (offline)",
        description="Translate FILE (or stdin, line by line) into the --to language with a local model.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="text or Markdown file; - or nothing reads stdin"
    )
    parser.add_argument("--to", required=True, metavar="LANG", help="target language: a code (fr) or a name (French)")
    parser.add_argument(
        "--from", dest="source", metavar="LANG", help="source language (default: detected from the text)"
    )
    add_model_option(parser, default="gemma3-270m")
    parser.add_argument("-o", "--output", metavar="OUT", help="write the translation to OUT (default: stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument(
        "--glossary", metavar="G", help="file of 'term = translation' lines the translation must follow"
    )
    parser.add_argument("--lines", action="store_true", help="translate FILE line by line, like piped text")
    parser.add_argument(
        "--prompt", default="auto", choices=strategy_names(), help="prompt strategy (default: chosen from the model)"
    )
    parser.add_argument("--json", action="store_true", help="print the segments with timing as JSON")
    add_load_options(parser)
    parser.set_defaults(handler=run, ctx=DEFAULT_CONTEXT)


def _read_input(spec: str) -> str:
    from llamadesk.app.translate.source_text import read_source_file, read_source_stream

    if spec == "-":
        if sys.stdin.isatty():
            raise BadInputError("nothing to translate: give a FILE or pipe text on stdin")
        return read_source_stream(sys.stdin.buffer, "the piped text")
    return read_source_file(Path(spec))


@contextlib.contextmanager
def ctrl_c_cancels(job) -> Iterator[None]:
    """While the job runs, Ctrl-C cancels it cleanly (the model stops mid-chunk)."""
    previous = signal.signal(signal.SIGINT, lambda _s, _f: job.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\rtranslating: {done}/{total} segments", end="" if done < total else "\n", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.atomic_file import atomic_output, check_writable_target
    from llamadesk.app.engine.llama_engine import Engine  # loads llama.cpp: only when a model is needed
    from llamadesk.app.library.catalog import resolve_model
    from llamadesk.app.translate import (
        ChunkDone,
        JobCancelled,
        JobFinished,
        JobSettings,
        JobStarted,
        ResumeLog,
        TranslationJob,
        load_glossary,
        resolve_language,
        sidecar_path,
        translator_for,
    )

    target = resolve_language(args.to, "--to")
    source = resolve_language(args.source, "--from") if args.source else None
    glossary = load_glossary(args.glossary) if args.glossary else None
    output = Path(args.output) if args.output else None
    if output is not None:
        check_writable_target(output, args.force)
    text = _read_input(args.file)
    if not text.strip():
        raise BadInputError("nothing to translate: the input is empty")
    mode = "lines" if args.file == "-" or args.lines else "document"
    path = resolve_model(args.model)

    with Engine.load(path, load_settings(args)) as engine:
        translator = translator_for(engine, args.prompt)
        strategy = translator.strategy
        job = TranslationJob(translator, text, JobSettings(target=target, source=source, mode=mode, glossary=glossary))
        resume = None
        if output is not None:
            settings = {
                "model": engine.summary.name,
                "strategy": strategy.name,
                "to": target.code,
                "mode": mode,
                "from": source.code if source else "detected",
                "glossary": sorted((glossary or {}).items()),
            }
            resume = job.resume = ResumeLog(sidecar_path(output), settings)
            if resume.note:
                print(f"llamadesk: note: {resume.note}", file=sys.stderr)
        finished: JobFinished | None = None
        started: JobStarted | None = None
        with ctrl_c_cancels(job):
            for event in job.run():
                if isinstance(event, JobStarted):
                    started = event
                elif isinstance(event, ChunkDone):
                    _progress(event.index + 1, event.total)
                elif isinstance(event, JobCancelled):
                    kept = (
                        f"; {event.done} of {event.total} segments are kept, run the same command to resume"
                        if resume
                        else ""
                    )
                    if resume is not None:
                        resume.close()
                    raise Interrupted(f"translation stopped{kept}")
                elif isinstance(event, JobFinished):
                    finished = event
    if finished is None or started is None:
        raise LlamadeskError("the translation ended without a result")
    if output is not None:
        with atomic_output(output, args.force) as tmp:
            tmp.write_text(finished.text, encoding="utf-8")
        if resume is not None:
            resume.finish()
    if args.json:
        print(json.dumps(_report(finished, started, engine.summary.name, output), ensure_ascii=False, indent=2))
    elif output is None:
        sys.stdout.write(finished.text)
        sys.stdout.flush()
    _warn_about_fallbacks(finished)
    return 0


def _report(finished, started, model: str, output: Path | None) -> dict:
    return {
        "model": model,
        "strategy": started.strategy,
        "source_language": started.source.code,
        "source_detected": started.detected_confidence is not None,
        "detection_confidence": started.detected_confidence,
        "target_language": started.target.code,
        "seconds": round(finished.seconds, 3),
        "output": str(output) if output else None,
        "segments": [result.to_json() for result in finished.results],
        "text": finished.text,
    }


def _warn_about_fallbacks(finished) -> None:
    for result in finished.results:
        if result.fallback is not None:
            how = "translated around its protected spans" if result.fallback == "piecewise" else "left untranslated"
            print(f"llamadesk: note: {result.source[:60]!r} was {how} ({'; '.join(result.problems)})", file=sys.stderr)
