"""`llamadesk translate`: translate piped lines or a file, offline, keeping its structure."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from llamadesk.app.commands.options import add_load_options, add_lora_option, add_model_option, load_settings
from llamadesk.app.commands.signal_wake import signals_wake
from llamadesk.app.core.errors import BadInputError, Interrupted, LlamadeskError

if TYPE_CHECKING:
    from llamadesk.app.engine.types import ActiveSettings, LoadSettings

EXAMPLES = """examples:
  echo "Where is the station?" | llamadesk translate --to fr
  llamadesk translate --to de --from en README.md -o README.de.md
  llamadesk translate --to fr messages.pot -o fr.po            (gettext: plural forms, msgctxt, fuzzy)
  llamadesk translate --to fr fr.po --update                   (fills the untranslated entries in place)
  llamadesk translate --to es movie.srt -o movie.es.srt        (subtitles: .srt, .vtt; timing kept)
  llamadesk translate --to de index.html -o index.de.html      (text and alt/title/placeholder only)
  llamadesk translate --to Spanish messages.txt --glossary terms.txt --json
  llamadesk translate --to fr -m ./Tower-7B.Q4_K_M.gguf notes.md     (prompt chosen from the model)
  llamadesk translate notes.md --to es --candidates               (20 answers per segment, one kept: slower, better)

Piped text is translated line by line: the N-th output line is the translation of the N-th input
line, blank lines kept. A FILE keeps its structure (Markdown headings, lists, tables, code
blocks; a catalog's comments, references and flags; subtitle numbering and timing; a page's
markup byte for byte). In a .po, entries already translated are kept (--retranslate redoes
them) and low-confidence ones are marked fuzzy for review. Placeholders (%s, {name}), URLs,
e-mails and code come out unchanged. With -o (or --update), Ctrl-C keeps the finished part in a
sidecar beside OUT: run the same command again to resume.
A glossary file has one 'term = translation' per line.
"""

DEFAULT_CONTEXT = 4096  # chunks are sentence-sized: a large context only costs memory


def register(sub: argparse._SubParsersAction) -> None:
    from llamadesk.app.translate.candidates import DEFAULT_CANDIDATES
    from llamadesk.app.translate.prompts import strategy_names

    parser = sub.add_parser(
        "translate",
        help="translate text or a file between languages (offline)",
        description="Translate FILE (or stdin, line by line) into the --to language with a local model.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="text, Markdown, .po/.pot, .srt/.vtt or .html file; - or nothing reads stdin",
    )
    parser.add_argument("--to", required=True, metavar="LANG", help="target language: a code (fr) or a name (French)")
    parser.add_argument(
        "--from", dest="source", metavar="LANG", help="source language (default: detected from the text)"
    )
    add_model_option(parser, default="gemma3-270m")
    parser.add_argument("-o", "--output", metavar="OUT", help="write the translation to OUT (default, or -: stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument(
        "--glossary", metavar="G", help="file of 'term = translation' lines the translation must follow"
    )
    parser.add_argument("--lines", action="store_true", help="translate FILE line by line, like piped text")
    parser.add_argument("--update", action="store_true", help="write the translation back into FILE (a .po)")
    parser.add_argument(
        "--retranslate", action="store_true", help="in a .po, translate again the entries already translated"
    )
    parser.add_argument(
        "--prompt", default="auto", choices=strategy_names(), help="prompt strategy (default: chosen from the model)"
    )
    parser.add_argument(
        "--candidates",
        nargs="?",
        type=_candidate_count,
        const=DEFAULT_CANDIDATES,
        metavar="N",
        help=f"N answers per segment (default {DEFAULT_CANDIDATES}): greedy and sampled ones, some of them to prompts "
        "that also show the shipped corpus's three or five sentences nearest the segment; keep the one the others "
        "agree with most. Better translations from a small model, at several times the time (bench/RESULTS.md "
        "'translate vs filing day')",
    )
    parser.add_argument(
        "--keep-quotes",
        action="store_true",
        help="keep the quotes and apostrophes the model writes (default: where the source uses typographic "
        "ones, the target language's: « » and ’ in French, „ “ in German)",
    )
    parser.add_argument("--json", action="store_true", help="print the segments with timing as JSON")
    add_lora_option(parser)
    parser.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="segments in flight at once, decoded together in one batch (default: 8 where memory allows, "
        "else 1); paragraphs then translate side by side, each seeing only its own earlier sentences",
    )
    parser.add_argument(
        "--reproducible",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on the CPU, decode with llama.cpp kernels whose result for a token does not depend on what else "
        "is in its batch (flash attention on), so --parallel N gives what --parallel 1 gives (default; "
        "--no-reproducible lets llama.cpp pick its fastest kernel per batch, and paragraphs may then differ "
        "at near ties)",
    )
    add_load_options(parser, ctx_default=f"load.json's ctx, else {DEFAULT_CONTEXT}")
    # No parser default for --ctx: it would count as a flag and win over load.json's ctx.
    parser.set_defaults(handler=run)


def _check_output_format(source: str, output: str | None, kind: str | None) -> None:
    """Refuse an output named as another format than the file's: the output is written in the
    format read (`a.srt -o a.vtt` wrote SubRip into a .vtt that players then refused)."""
    from llamadesk.app.translate.formats import format_of

    if output is None or format_of(output) is None:
        return
    source_suffix, output_suffix = Path(source).suffix.lower(), Path(output).suffix.lower()
    if kind is None and source_suffix == output_suffix:
        return  # `--lines x.po -o y.po`: the file read as lines, written as lines, named as it was
    if kind is None:  # text (Markdown, plain): written as text into a .po, .srt or .html
        read = "the piped text" if source == "-" else source
        like = source_suffix if source_suffix and source != "-" else ".txt"
        raise BadInputError(
            f"{output} is named as a {output_suffix} file but {read} is text, and the translation keeps the "
            f"format it reads; name the output {Path(output).with_suffix(like).name}"
        )
    if format_of(output) != kind or (kind == "subtitles" and source_suffix != output_suffix):
        raise BadInputError(
            f"{output} is named as a {output_suffix} file but {source} is {source_suffix}, and the translation "
            f"keeps the format it reads; name the output {Path(output).with_suffix(source_suffix).name}"
        )


def _candidate_count(text: str) -> int:
    """--candidates' N: argparse takes the word after the flag as it, so `--candidates notes.md`
    meant N = notes.md; said so, with the order that works."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of answers; give the file first (translate FILE --to LANG --candidates) "
            "or a number after it (--candidates 20 FILE)"
        ) from None


def _read_input(spec: str) -> str:
    """The text to translate: a file's with its own line endings (kept in the translation), piped text's as \\n."""
    from llamadesk.app.translate.source_text import read_source_stream, read_source_text

    if spec == "-":
        if sys.stdin.isatty():
            raise BadInputError("nothing to translate: give a FILE or pipe text on stdin")
        return read_source_stream(sys.stdin.buffer, "the piped text")
    return read_source_text(Path(spec))


@contextlib.contextmanager
def ctrl_c_cancels(job) -> Iterator[None]:
    """While the job runs, Ctrl-C cancels it cleanly (the model stops mid-chunk)."""
    previous = signal.signal(signal.SIGINT, lambda _s, _f: job.cancel())
    try:
        with signals_wake(job.cancel):  # mid-decode, not after it (a long segment's prompt step)
            yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\rtranslating: {done}/{total} segments", end="" if done < total else "\n", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.translate.detection import load_in_background

    load_in_background()  # ready by the time the first segment is checked, at no cost in wall time
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
        existing_mode,
        load_glossary,
        model_identity,
        resolve_language,
        sidecar_path,
        translator_for,
    )
    from llamadesk.app.translate.candidates import MAX_CANDIDATES
    from llamadesk.app.translate.confidence import is_low
    from llamadesk.app.translate.detection import has_words
    from llamadesk.app.translate.file_job import FileJob
    from llamadesk.app.translate.formats import format_of, read_translatable, reads_as_markdown
    from llamadesk.app.translate.parallel import ParallelTranslators
    from llamadesk.app.translate.segmentation import split_document, split_lines
    from llamadesk.app.translate.source_text import read_source_bytes

    if args.candidates is None:
        args.candidates = 0  # off
    elif not 2 <= args.candidates <= MAX_CANDIDATES:
        raise BadInputError(f"--candidates {args.candidates}: give 2 to {MAX_CANDIDATES} answers per segment")
    if args.parallel is not None and not 1 <= args.parallel <= 64:
        raise BadInputError(f"--parallel {args.parallel}: give 1 to 64 segments in flight")
    target = resolve_language(args.to, "--to")
    source = resolve_language(args.source, "--from") if args.source else None
    glossary = load_glossary(args.glossary) if args.glossary else None
    kind = format_of(args.file) if args.file != "-" and not args.lines else None
    if args.update and (kind != "gettext" or not args.file.lower().endswith(".po")):
        raise BadInputError("--update writes a .po file in place; give a .po FILE (or use -o OUT)")
    if args.output == "-":  # as FILE's "-" is stdin (it wrote a file named "-")
        args.output = None
    elif args.output is not None and not args.output.strip():  # it wrote to stdout
        raise BadInputError("-o is empty; give an output file name, or leave -o out for stdout")
    _check_output_format(args.file, args.output, kind)
    if args.update and args.output:
        raise BadInputError("--update writes FILE in place; leave out -o")
    if args.retranslate and kind != "gettext":
        raise BadInputError("--retranslate is for .po files")
    # --update writes the file a link points to, not a new file in place of the link.
    output = Path(args.file).resolve() if args.update else Path(args.output) if args.output else None
    force = args.force or args.update
    if output is not None:
        check_writable_target(output, force)
    # The whole input is read and checked before the model loads: bad input costs nothing and
    # writes nothing.
    document = None
    if kind is not None:
        document = read_translatable(args.file, read_source_bytes(Path(args.file)), target, args.retranslate)
        if not document.units:  # a catalog with every entry translated: no model
            print(
                f"llamadesk: note: nothing to translate in {args.file} (--retranslate redoes done entries)",
                file=sys.stderr,
            )
            if not args.update:  # in place there is nothing to rewrite; elsewhere the output is the file as it is
                _write_unchanged(document.render([]), output, force, args.json, target.code)
            return 0
    mode = "lines" if args.file == "-" or args.lines else "document"
    markdown = reads_as_markdown(args.file)  # a plain text file's indented lines are prose
    if document is None:
        text = _read_input(args.file)
        if not text.strip():
            raise BadInputError("nothing to translate: the input is empty")
        pieces = split_lines(text) if mode == "lines" else split_document(text, indented_code=markdown)
        if not has_words(" ".join(piece.source for piece in pieces if piece.translatable)):
            # as for an HTML page without text: said before the model loads, nothing written
            raise BadInputError("nothing to translate: the input has no words outside code, links and placeholders")
    path = resolve_model(args.model)

    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(Engine.load(path, load_settings_for_translating(args)))
        translator = translator_for(engine, args.prompt, candidates=args.candidates)
        strategy = translator.strategy
        settings = JobSettings(
            target=target,
            source=source,
            mode=mode,
            markdown=markdown,
            glossary=glossary,
            typography=not args.keep_quotes,
        )
        n_parallel = args.parallel if args.parallel is not None else _default_parallel(path)
        if n_parallel > 1 and args.reproducible and engine.settings.n_gpu_layers == 0:
            _note_if_not_reproducible(engine.settings)
        parallel = None
        if n_parallel > 1:  # the workers' translators prompt as the main one does (examples, candidates)
            try:
                parallel = stack.enter_context(
                    ParallelTranslators(
                        engine, strategy, n_parallel, examples=translator.examples, candidates=translator.candidates
                    )
                )
            except LlamadeskError as err:
                if args.parallel is not None:  # asked for: say why it cannot be had
                    raise
                # The machine's default: no memory for the decoder's context, one at a time still works.
                print(f"llamadesk: note: translating one segment at a time ({err})", file=sys.stderr)
        if document is not None:
            job: FileJob | TranslationJob = FileJob(translator, document, settings, parallel=parallel)
        else:
            job = TranslationJob(translator, text, settings, parallel=parallel)
        resume = None
        if output is not None:
            resume_settings = {
                **model_identity(engine),
                "strategy": strategy.name,
                "to": target.code,
                "mode": kind or mode,
                "from": source.code if source else "detected",
                "glossary": sorted((glossary or {}).items()),
            }
            if args.candidates > 1:  # other answers than a plain run's: a sidecar of one is not the other's
                resume_settings["candidates"] = args.candidates
            if args.keep_quotes:
                resume_settings["keep_quotes"] = True
            resume = job.resume = ResumeLog(sidecar_path(output), resume_settings, existing_mode(output))
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
        with atomic_output(output, force) as tmp:
            # bytes, so a file's own line endings (CRLF subtitles, a page's) come out as they went in
            tmp.write_bytes(finished.text.encode("utf-8"))
            if args.update:  # the catalog keeps who may read it (a 0640 file stayed private)
                shutil.copymode(output, tmp)
        if resume is not None:
            resume.finish()
    if args.json:
        print(json.dumps(_report(finished, started, engine.summary.name, output), ensure_ascii=False, indent=2))
    elif output is None:
        sys.stdout.write(finished.text)
        sys.stdout.flush()
    _warn_about_fallbacks(finished)
    low = sum(1 for result in finished.results if is_low(result))
    if low:
        where = " (marked fuzzy)" if kind == "gettext" else ""
        print(f"llamadesk: note: {low} of {len(finished.results)} segments are low-confidence{where}", file=sys.stderr)
    for msgid in getattr(document, "rejected", ()):
        print(f"llamadesk: note: {msgid[:60]!r} left untranslated: its placeholders did not survive", file=sys.stderr)
    return 0


def _write_unchanged(text: str, output: Path | None, force: bool, as_json: bool, target: str) -> None:
    """The output of a file with nothing to translate: the file as it is, like any other output."""
    from llamadesk.app.core.atomic_file import atomic_output

    if output is not None:
        with atomic_output(output, force) as tmp:
            tmp.write_bytes(text.encode("utf-8"))
    if as_json:
        report = {
            "model": None,  # none was loaded
            "strategy": None,
            "source_language": None,
            "source_detected": False,
            "detection_confidence": None,
            "target_language": target,
            "seconds": 0.0,
            "output": str(output) if output else None,
            "segments": [],
            "text": text,
        }
        print(json.dumps(report, ensure_ascii=False, indent=2))
    elif output is None:
        sys.stdout.write(text)
        sys.stdout.flush()


def load_settings_for_translating(args: argparse.Namespace) -> LoadSettings:
    """--ctx over load.json's ctx over DEFAULT_CONTEXT (not the model's: chunks are sentence-sized)."""
    load = dataclasses.replace(load_settings(args), batch_invariant=args.reproducible)
    return load if load.n_ctx is not None else dataclasses.replace(load, n_ctx=DEFAULT_CONTEXT)


def _note_if_not_reproducible(settings: ActiveSettings) -> None:
    """On the CPU only flash attention off (asked for) keeps decoding from being batch-invariant."""
    if not settings.batch_invariant:
        print(
            "llamadesk: note: with --flash-attn off, --parallel can give other translations than "
            "--parallel 1 where two words are nearly tied (reproducible decoding needs flash attention)",
            file=sys.stderr,
        )


def _default_parallel(model: Path) -> int:
    from llamadesk.app.translate.parallel import default_parallel_for

    return default_parallel_for(model.stat().st_size)


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
