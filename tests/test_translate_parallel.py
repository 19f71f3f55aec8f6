"""Several segments in flight (translate --parallel): order, context chains and cancelling, with scripted models.

The real batched decoder underneath is tested in test_batched_decoder.py, and `--parallel` on the
real starter at the end of this file.
"""

from __future__ import annotations

import threading
import time

from llamadesk.app.translate import (
    ChunkDone,
    JobCancelled,
    JobFinished,
    JobSettings,
    SegmentTranslator,
    TranslationJob,
    choose_strategy,
    resolve_language,
)
from llamadesk.app.translate.file_job import FileJob, Unit
from llamadesk.app.translate.parallel import TAIL_CHAINS_PER_WORKER, default_parallel, work_order
from llamadesk.app.translate.prompts import TranslationRequest
from tests.conftest import PINNED_FLAGS, run_cli
from tests.translate_fakes import ScriptedGenerator, Units, segment_of, upper_translation

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


class ScriptedParallel:
    """ParallelTranslators' shape over scripted generators: one per worker, a reply after `delay`."""

    def __init__(self, n: int, delay=lambda prompt: 0.0):
        self.generators = [ScriptedGenerator(self._slow(delay)) for _ in range(n)]
        self.translators = [SegmentTranslator(g, FEW_SHOT) for g in self.generators]
        self.stopped = threading.Event()

    def _slow(self, delay):
        def reply(prompt):
            time.sleep(delay(prompt))
            return upper_translation(prompt)

        return reply

    def request_stop(self) -> None:
        self.stopped.set()
        for generator in self.generators:
            generator.request_stop()

    @property
    def prompts(self):
        return [p for g in self.generators for p in g.prompts]


def run_text(text: str, parallel, mode="document", **settings):
    main = SegmentTranslator(ScriptedGenerator(upper_translation), FEW_SHOT)
    job = TranslationJob(main, text, JobSettings(target=FR, source=EN, mode=mode, **settings), parallel=parallel)
    return list(job.run()), job


def test_results_come_in_document_order_whatever_finishes_first():
    lines = [f"Line number {n} is here." for n in range(12)]
    # Early lines are the slowest: they finish last, and still come out first.
    parallel = ScriptedParallel(4, delay=lambda prompt: 0.05 if "number 1 " in prompt.text else 0.0)
    events, _ = run_text("\n".join(lines) + "\n", parallel, mode="lines")
    done = [e.index for e in events if isinstance(e, ChunkDone)]
    assert done == list(range(12))
    assert events[-1].text == "\n".join(f"LINE NUMBER {n} IS HERE." for n in range(12)) + "\n"
    sequential, _ = run_text("\n".join(lines) + "\n", None, mode="lines")
    assert events[-1].text == sequential[-1].text
    assert len({id(g) for g in parallel.generators if g.prompts}) > 1, "the work was shared among workers"


def test_chains_start_in_document_order_except_the_last_stretch_longest_first():
    chains = [[i] for i in range(20)]
    lengths = {i: (i * 7) % 11 for i in range(20)}  # 0, 7, 3, 10, 6, ...: no order of their own
    ordered = work_order(chains, lambda chain: lengths[chain[0]], workers=2)
    tail = 20 - TAIL_CHAINS_PER_WORKER * 2
    assert ordered[:tail] == chains[:tail]
    last = [chain[0] for chain in ordered[tail:]]
    assert sorted(last) == list(range(tail, 20))
    assert [lengths[i] for i in last] == sorted((lengths[i] for i in last), reverse=True)
    ties = [i for i in last if lengths[i] == lengths[last[0]]]
    assert ties == sorted(ties)  # equal lengths keep the document's order
    assert work_order(chains, lambda chain: lengths[chain[0]], workers=1) == chains  # one at a time: as written


def test_the_last_paragraphs_start_longest_first_and_come_out_in_order():
    short, long = "Short line here.", "This line is much longer than the short ones around it, by far."
    lines = [short] * 4 + [short, long, short, long]  # two workers: all but the first two are the tail
    parallel = ScriptedParallel(2)
    events, _ = run_text("\n".join(lines) + "\n", parallel, mode="lines")
    started = [e.index for e in events if type(e).__name__ == "ChunkStarted"]
    assert set(started[:2]) == {0, 1} and set(started[2:4]) == {5, 7}  # the long two open the tail
    assert [e.index for e in events if isinstance(e, ChunkDone)] == list(range(8))
    assert events[-1].text == "\n".join(line.upper() for line in lines) + "\n"


def test_a_paragraph_sees_only_its_own_earlier_chunks_as_context():
    long_paragraph = " ".join(f"Sentence {n} has five words." for n in range(6))  # 30 words: two chunks of <= 16
    text = f"{long_paragraph}\n\nAnother paragraph stands alone.\n"
    parallel = ScriptedParallel(3)
    events, job = run_text(text, parallel, max_chunk_tokens=16)
    assert len(job.chunks) == 3 and job.chunks[0].piece == job.chunks[1].piece != job.chunks[2].piece
    by_segment = {segment_of(p): p.text for p in parallel.prompts}
    second_chunk_first_sentence = job.chunks[1].text.split(". ")[0] + "."
    assert job.chunks[0].text.split(". ")[-1] in by_segment[second_chunk_first_sentence]
    assert "Sentence" not in by_segment["Another paragraph stands alone."]
    assert isinstance(events[-1], JobFinished)


def test_a_document_is_put_to_the_model_the_same_way_with_or_without_parallel():
    # The same prompts, so greedy output differs only by the kernels' rounding: a document's
    # translation does not depend on the --parallel a machine picks.
    paragraphs = [" ".join(f"Paragraph {p} sentence {n} is here." for n in range(5)) for p in range(4)]
    text = "\n\n".join(paragraphs) + "\n"
    parallel = ScriptedParallel(3)
    events, job = run_text(text, parallel, max_chunk_tokens=24)
    assert len(job.chunks) > len(paragraphs)  # paragraphs of several chunks, so some chunks have context
    main = SegmentTranslator(ScriptedGenerator(upper_translation), FEW_SHOT)
    alone = TranslationJob(main, text, JobSettings(target=FR, source=EN, mode="document", max_chunk_tokens=24))
    sequential = list(alone.run())
    assert sorted(p.text for p in parallel.prompts) == sorted(p.text for p in main.generator.prompts)
    assert events[-1].text == sequential[-1].text


def test_a_following_unit_waits_for_the_one_before_it():
    units = [Unit("The train leaves soon."), Unit("We must run.", follows=True), Unit("A separate entry.")]
    parallel = ScriptedParallel(3)
    main = SegmentTranslator(ScriptedGenerator(upper_translation), FEW_SHOT)
    job = FileJob(main, Units(units), JobSettings(FR, EN), None, parallel)
    events = list(job.run())
    prompts = {segment_of(p): p.text for p in parallel.prompts}
    assert "THE TRAIN LEAVES SOON." in prompts["We must run."]
    assert "The train" not in prompts["A separate entry."]
    assert events[-1].text == "THE TRAIN LEAVES SOON.\nWE MUST RUN.\nA SEPARATE ENTRY."


def test_cancel_stops_every_worker_and_keeps_what_came_in_order():
    parallel = ScriptedParallel(3, delay=lambda prompt: 0.02)
    main = SegmentTranslator(ScriptedGenerator(upper_translation), FEW_SHOT)
    text = "\n".join(f"Line {n} to translate now." for n in range(30)) + "\n"
    job = TranslationJob(main, text, JobSettings(target=FR, source=EN, mode="lines"), parallel=parallel)
    events = []
    asked_before_the_stop = None
    for event in job.run():
        events.append(event)
        if isinstance(event, ChunkDone) and event.index == 2:
            job.cancel()
            asked_before_the_stop = len(parallel.prompts)
    assert isinstance(events[-1], JobCancelled) and parallel.stopped.is_set()
    done = [e.index for e in events if isinstance(e, ChunkDone)]
    assert done == list(range(len(done))) and events[-1].done == len(done) < 30
    # Nothing new is asked after the stop (a worker may have been asking as it came). How much
    # was asked before depends on timing: each line is retried when its answer reads as English,
    # and the first check waits for the language detector to load.
    assert len(parallel.prompts) <= asked_before_the_stop + len(parallel.generators)


def test_a_stopped_parallel_run_counts_every_unit_its_sidecar_keeps(tmp_path):
    # Units finished past a slow first one are in the sidecar (a rerun reuses them), but the stop
    # counted only the run from the start: "0 of 40 segments are kept".
    from llamadesk.app.translate.resume import ResumeLog

    def delay(prompt) -> float:  # the first unit is answered only once the run is stopped
        if "Unit zero" in segment_of(prompt):
            parallel.stopped.wait(60)
            return 0.0
        return 0.01

    parallel = ScriptedParallel(3, delay=delay)
    main = SegmentTranslator(ScriptedGenerator(upper_translation), FEW_SHOT)
    units = [Unit("Unit zero is slow to translate.")] + [Unit(f"Unit {n} is quick to translate.") for n in range(1, 12)]
    resume = ResumeLog(tmp_path / "sidecar.jsonl", {"to": "fr"})
    job = FileJob(main, Units(units), JobSettings(FR, EN), resume, parallel)

    def stop_once_two_are_kept() -> None:  # by what is done, not by the clock: a busy machine is slow
        deadline = time.monotonic() + 60
        while len(resume.done) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        job.cancel()

    threading.Thread(target=stop_once_two_are_kept, daemon=True).start()
    events = list(job.run())
    cancelled = events[-1]
    assert isinstance(cancelled, JobCancelled) and not any(isinstance(e, ChunkDone) for e in events)
    assert cancelled.done == len(resume.done) > 0 and cancelled.done < len(units)


def test_a_segments_stream_holds_what_the_job_lets_one_model_call_use():
    """SEGMENT_CELLS restates job.py's chunk_budget rule (its prompt reserve plus four chunks): a
    smaller stream would end long segments with "context" where --parallel 1 does not."""
    from llamadesk.app.translate.job import MAX_CHUNK_TOKENS, PROMPT_RESERVE_TOKENS
    from llamadesk.app.translate.parallel import SEGMENT_CELLS

    assert SEGMENT_CELLS >= PROMPT_RESERVE_TOKENS + 4 * MAX_CHUNK_TOKENS


def test_the_default_keeps_one_segment_in_flight_where_memory_is_short():
    gib = 1 << 30
    assert default_parallel(available_memory=8 * gib, model_size=gib // 4) == 8
    assert default_parallel(available_memory=6 * gib, model_size=4 * gib) == 1


def test_cli_parallel_lines_come_back_translated_in_order_and_the_same_every_run():
    """The real chat starter, 4 lines in flight: each output line is its own input's translation.

    The workers decode in lockstep, so a second run gives the same bytes whatever the threads'
    timing (the next test compares it with --parallel 1).
    """
    # Placeholders are protected spans: the translator keeps each in its own line, whatever the model does.
    lines = ["{room} is on the left.", "The train leaves at {time}.", "I paid for {count} tickets.", "Call {name}."]
    common = ("translate", "--to", "fr", "--from", "en", "-m", "smollm2", *PINNED_FLAGS)
    proc = run_cli(*common, "--parallel", "4", input="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == 4
    for span, line in zip(("{room}", "{time}", "{count}", "{name}"), out, strict=True):
        assert span in line  # its own line's placeholder: the order is kept
    assert out != lines  # translated, not copied
    again = run_cli(*common, "--parallel", "4", input="\n".join(lines) + "\n")
    assert again.returncode == 0 and again.stdout == proc.stdout


# Messages of the kind bench/parallel_chrf.py translates: before batch-invariant decoding, a third
# of such paragraphs came out differently with --parallel 8 than with --parallel 1.
MESSAGES = [
    "Select a valid choice. That choice is not one of the available choices.",
    "Ensure this value has at most %(limit_value)d characters.",
    "Enter a valid email address.",
    "The password is too similar to the username.",
    "Your session has expired, please log in again.",
    "Are you sure you want to delete the selected items?",
    "This field is required.",
    "Change history of the page",
    "Please correct the duplicate values below.",
    "The two password fields didn't match.",
    "Recent actions by other users",
    "Directory indexes are not allowed here.",
]


def test_cli_parallel_gives_what_parallel_1_gives():
    """translate's default decoding is batch-invariant on the CPU (engine/batch_invariance.py):
    each paragraph comes out byte for byte as it does one at a time; --no-reproducible is still
    there for llama.cpp's fastest kernels."""
    document = "\n\n".join(MESSAGES) + "\n"
    common = ("translate", "--to", "fr", "--from", "en", "-m", "smollm2", *PINNED_FLAGS)
    one = run_cli(*common, "--parallel", "1", input=document)
    eight = run_cli(*common, "--parallel", "8", input=document)
    assert one.returncode == eight.returncode == 0, one.stderr + eight.stderr
    assert one.stdout == eight.stdout and one.stdout.count("\n\n") == len(MESSAGES) - 1
    assert "--flash-attn off" not in one.stderr + eight.stderr
    fast = run_cli(*common, "--parallel", "8", "--no-reproducible", input=document)
    assert fast.returncode == 0 and fast.stdout.count("\n\n") == len(MESSAGES) - 1
    assert "--flash-attn off" not in fast.stderr  # asked for: nothing to say


def test_cli_says_when_flash_attention_off_keeps_parallel_from_being_reproducible():
    flags = [f if f != "on" else "off" for f in PINNED_FLAGS]  # --flash-attn off
    common = ("translate", "--to", "fr", "--from", "en", "-m", "smollm2", *flags)
    parallel = run_cli(*common, "--parallel", "2", input="Good morning.\nThank you.\n")
    assert parallel.returncode == 0 and len(parallel.stdout.splitlines()) == 2
    assert "note: with --flash-attn off, --parallel can give other translations" in parallel.stderr
    one = run_cli(*common, "--parallel", "1", input="Good morning.\n")
    assert one.returncode == 0 and "--flash-attn off" not in one.stderr


def test_cli_without_memory_for_the_decoder_translates_one_at_a_time_unless_parallel_was_asked(monkeypatch):
    from llamadesk.app.commands import translate as command
    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.translate import parallel

    def no_context(self, engine, strategy, n, *args, **kwargs):
        raise LlamadeskError(f"llama.cpp could not create a context for {n} sequences of 2048 tokens")

    monkeypatch.setattr(parallel.ParallelTranslators, "__init__", no_context)
    monkeypatch.setattr(command, "_default_parallel", lambda path: 4)
    common = ("translate", "--to", "fr", "--from", "en", "-m", "smollm2", *PINNED_FLAGS)
    proc = run_cli(*common, input="Good morning.\nThank you.\n")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    assert "translating one segment at a time (llama.cpp could not create a context for 4" in proc.stderr
    asked = run_cli(*common, "--parallel", "4", input="Good morning.\nThank you.\n")
    assert asked.returncode != 0 and asked.stdout == "" and len(asked.stderr.strip().splitlines()) == 1
    assert "could not create a context for 4 sequences" in asked.stderr


def test_cli_refuses_a_parallel_out_of_range():
    proc = run_cli("translate", "--to", "fr", "--parallel", "0", input="Hello\n")
    assert proc.returncode == 2 and proc.stderr.startswith("llamadesk: --parallel 0")


def test_the_workers_prompt_as_the_main_translator_does(smollm2_engine):
    """translate --candidates N --parallel M: every worker keeps one of N candidates, as a
    sequential run does (not the plain greedy answer)."""
    from llamadesk.app.translate.nearest_examples import shipped_corpus
    from llamadesk.app.translate.parallel import ParallelTranslators

    corpus = shipped_corpus()
    with ParallelTranslators(smollm2_engine, FEW_SHOT, 2, n_ctx=512, examples=corpus, candidates=5) as parallel:
        assert len(parallel.translators) == 2
        assert all(t.examples is corpus and t.candidates == 5 for t in parallel.translators)
        # Some candidates answer the prompt with the shipped corpus's nearest examples (candidate_split).
        assert all(t.candidate_examples is corpus for t in parallel.translators)
    with ParallelTranslators(smollm2_engine, FEW_SHOT, 2, n_ctx=512) as plain:
        assert all(t.examples is None and not t.candidates for t in plain.translators)
        assert all(t.candidate_examples is None for t in plain.translators)


def test_sampled_candidates_decode_side_by_side_and_repeat(smollm2_engine, decode_sizes):
    """A worker's sampled candidates go to the batched decoder together (one llama_decode carries
    the next token of each), and fixed seeds give the same answers on every run."""
    from llamadesk.app.translate.candidates import candidate_samplings
    from llamadesk.app.translate.parallel import BatchedGenerator

    prompt = FEW_SHOT.build(TranslationRequest("Where is the train station?", EN, FR))
    runs = []
    for _ in range(2):
        with smollm2_engine.batched_decoder(4, n_ctx=1024) as decoder:
            generator = BatchedGenerator(smollm2_engine, decoder, threading.Event())
            runs.append(generator.generate_samples(prompt, 24, candidate_samplings(5)))
    assert runs[0] == runs[1]
    texts = [text for text, _ in runs[0]]
    assert len(texts) == 4 and all(texts) and len(set(texts)) > 1, texts
    assert all(logprob is not None and logprob < 0 for _, logprob in runs[0])
    assert max(decode_sizes) >= 4 and decode_sizes.count(4) >= 3, "the four answers' tokens shared llama_decode calls"


def test_the_samples_of_several_prompts_decode_side_by_side(smollm2_engine, decode_sizes):
    """generate_sample_sets (translate --candidates asks two prompts): every answer of both prompts
    goes to the decoder at once, so one llama_decode carries the next token of each, and each
    prompt gets its own answers back (its greedy one the same as asked alone)."""
    from llamadesk.app.translate.candidates import candidate_samplings
    from llamadesk.app.translate.generation import GREEDY, EngineGenerator
    from llamadesk.app.translate.parallel import BatchedGenerator

    texts = ["Where is the train station?", "Save your changes"]
    prompts = [FEW_SHOT.build(TranslationRequest(text, EN, FR)) for text in texts]
    alone = [EngineGenerator(smollm2_engine).generate(prompt, 24) for prompt in prompts]
    samplings = [GREEDY, *candidate_samplings(3)]
    with smollm2_engine.batched_decoder(8, n_ctx=1024) as decoder:
        decode_sizes.clear()
        sets = BatchedGenerator(smollm2_engine, decoder, threading.Event()).generate_sample_sets(
            [(prompt, 24, samplings) for prompt in prompts]
        )
    assert [len(answers) for answers in sets] == [3, 3]
    assert [answers[0][0] for answers in sets] == alone and all(alone)
    assert all(text and logprob is not None for answers in sets for text, logprob in answers)
    assert decode_sizes.count(6) >= 3, "the six answers' tokens (three per prompt) shared llama_decode calls"


def test_independent_prompts_decode_side_by_side_and_say_what_each_says_alone(smollm2_engine, decode_sizes):
    """generate_all (a segment's pieces around its spans): the prompts go to the batched decoder
    together, one llama_decode carrying the next token of each, and each answer is the one the
    prompt gets on its own."""
    from llamadesk.app.translate.generation import EngineGenerator
    from llamadesk.app.translate.parallel import BatchedGenerator

    texts = ["Where is the train station?", "The file is too large", "Save your changes"]
    prompts = [FEW_SHOT.build(TranslationRequest(text, EN, FR)) for text in texts]
    alone = [EngineGenerator(smollm2_engine).generate(prompt, 24) for prompt in prompts]
    with smollm2_engine.batched_decoder(4, n_ctx=1024) as decoder:
        decode_sizes.clear()
        together = BatchedGenerator(smollm2_engine, decoder, threading.Event()).generate_all(prompts, [24] * 3)
    assert together == alone and all(together)
    assert decode_sizes.count(3) >= 3, "the three answers' tokens shared llama_decode calls"


def test_translators_on_a_shared_decoder_stop_only_their_own_sequences(smollm2_engine):
    """serve --parallel: a translation's workers share the decoder with other clients' replies. A
    cancelled translation ends its own sequences; the reply beside it runs on to its length, and
    the decoder is left open for its owner."""
    from llamadesk.app.engine.types import Sampling
    from llamadesk.app.translate.parallel import ParallelTranslators

    long_text = "\n\n".join(f"Paragraph {i} tells a long story about the sea and its ships." for i in range(12))
    with smollm2_engine.batched_decoder(4, 2048) as decoder:
        other = decoder.submit(smollm2_engine.tokenize("Once upon a time"), Sampling(temperature=0, max_tokens=200))
        parallel = ParallelTranslators(smollm2_engine, FEW_SHOT, 2, shared_decoder=decoder)
        job = TranslationJob(parallel.translators[0], long_text, JobSettings(target=FR, source=EN), parallel=parallel)
        events = []
        for event in job.run():
            events.append(event)
            if isinstance(event, ChunkDone):
                job.cancel()  # as the server does when the client leaves
        assert isinstance(events[-1], JobCancelled) and events[-1].done < 12
        parallel.close()
        result = other.result(timeout=120)
        assert result.stats.stop_reason == "length" and result.stats.generated_tokens == 200
        # Still open: the next caller is served.
        again = decoder.generate(smollm2_engine.tokenize("Hello"), Sampling(temperature=0, max_tokens=3))
        assert again.stats.generated_tokens == 3
