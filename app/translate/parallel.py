"""Several segments in flight at once, on one batched decoder, with results in document order.

A segment's translation is sequential logic (sentence after sentence, a strict retry, a
piecewise fallback), so each segment in flight gets a worker thread with its own
SegmentTranslator; their model calls all go to one BatchedDecoder (engine/batched_decoder.py),
which decodes the next token of every call in flight in one llama_decode. Segments that depend
on each other (a following subtitle cue sees the one before as context) form a chain that one
worker translates in order; chains run side by side.

The workers decode in lockstep (BatchedDecoder.join_lockstep): each batch holds what every
worker asks at that point of the work, so the same document gives the same translation on
every run, whatever the threads' timing.

`run_chains` yields what happens as it happens; the jobs (job.py, file_job.py) turn that into
their usual events, ChunkDone in document order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llamadesk.app.engine.types import Sampling
from llamadesk.app.translate.generation import GREEDY, AnswerLine, EngineGenerator, GenerationStopped
from llamadesk.app.translate.nearest_examples import ExampleCorpus
from llamadesk.app.translate.prompts import Prompt, PromptStrategy
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator, corpus_for_candidates

if TYPE_CHECKING:  # the engine (llama.cpp, numpy) loads only when a model does, not with the app
    from llamadesk.app.engine.sequence_handle import LockstepMember, SequenceHandle

# More segments in flight read the weights once for more tokens; past ~8 llama-batched-bench
# shows little more to gain on small machines, while each adds a worker and KV cells.
MAX_PARALLEL = 8
# Cells one segment's model call may use: its prompt (instructions and examples, the previous
# chunk and its translation), its chunk and its answer fit in job.py's PROMPT_RESERVE_TOKENS plus
# four of its MAX_CHUNK_TOKENS (chunk_budget's rule), 896.
SEGMENT_CELLS = 1024


def default_parallel(available_memory: int, model_size: int) -> int:
    """Segments in flight when --parallel is not given: as many as pay off, where memory allows.

    The batched decoder's context is a second KV cache beside the engine's; a model that already
    takes most of the free memory translates one segment at a time.
    """
    return MAX_PARALLEL if available_memory >= 3 * model_size + (1 << 30) else 1


def default_parallel_for(model_size: int) -> int:
    """default_parallel for a model of `model_size` bytes on this machine, now."""
    from llamadesk.app.core.machine import available_memory

    return default_parallel(available_memory(), model_size)


class BatchedGenerator(EngineGenerator):
    """An EngineGenerator whose model calls go to a BatchedDecoder (one generator per worker thread).

    On a decoder of its own (`translate --parallel`), a stop ends everything in the decoder at
    once, and the workers decode in lockstep (repeatable output). On a decoder shared with other
    callers (`serve --parallel`, beside other clients' replies), a stop ends only this generator's
    own sequence, and there is no lockstep: the batches follow whatever the server has in flight.
    """

    def __init__(self, engine, decoder, stopped: threading.Event, sampling: Sampling = GREEDY, *, shared: bool = False):
        super().__init__(engine, sampling)
        self.decoder = decoder
        self.shared = shared
        self._stopped = stopped  # shared by the workers: a stop ends every worker's next call too
        self._calling = threading.Lock()  # guards _handles between the worker and a stopping thread
        self._handles: list[SequenceHandle] = []  # this worker's sequences in flight
        self.member: LockstepMember | None = None  # set by run_chains while a worker uses this generator

    @property
    def context_size(self) -> int:
        return self.decoder.n_ctx

    def request_stop(self) -> None:
        with self._calling:
            self._stopped.set()
            handles = list(self._handles)
        for handle in handles:
            self.decoder.cancel(handle)
        if not self.shared:
            self.decoder.request_stop()  # also aborts a llama_decode in progress: Ctrl-C at once

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        for _ in range(3):
            try:
                return super().prompt_tokens(prompt)
            except GenerationStopped:
                # The engine's chat template is shared, and a stop meant for another of its users
                # (a server's client that left) interrupts whichever render is in progress. Only
                # a stop of this job's own is this generator's to obey; otherwise render again.
                if self._stopped.is_set() or not self.shared:
                    raise
        raise GenerationStopped()

    def generate(self, prompt: Prompt, max_tokens: int, on_text: Callable[[str], None] | None = None) -> str:
        answer = AnswerLine(on_text, prompt.answer_to)  # fed in the decoder's thread
        self._decode([(self.prompt_tokens(prompt), self.answer_sampling(max_tokens), answer)])
        self.last_mean_logprob = answer.mean_logprob
        return answer.text

    def generate_all(self, prompts: Sequence[Prompt], max_tokens: Sequence[int]) -> list[str]:
        """All in flight at once (a segment's pieces around its protected spans): one weight pass a
        step for all of them, where one after another each made its own steps at the end of a run."""
        answers = [AnswerLine(None, prompt.answer_to) for prompt in prompts]
        self._decode(
            [
                (self.prompt_tokens(prompt), self.answer_sampling(n), answer)
                for prompt, n, answer in zip(prompts, max_tokens, answers, strict=True)
            ]
        )
        return [answer.text for answer in answers]

    def generate_samples(
        self, prompt: Prompt, max_tokens: int, samplings: Sequence[Sampling]
    ) -> list[tuple[str, float | None]]:
        """All in flight at once: the decoder reads the prompt once and decodes the answers side by side."""
        return self.generate_sample_sets([(prompt, max_tokens, samplings)])[0]

    def generate_sample_sets(
        self, asks: Sequence[tuple[Prompt, int, Sequence[Sampling]]]
    ) -> list[list[tuple[str, float | None]]]:
        """Every answer of every prompt submitted together: a slot freed by one prompt's answer takes
        the next prompt's at once, where prompt after prompt each ran a last step or two of few
        sequences (translate --candidates asks three prompts)."""
        requests, answer_sets = [], []
        for prompt, max_tokens, samplings in asks:
            tokens = self.prompt_tokens(prompt)
            answers = [AnswerLine(None, prompt.answer_to) for _ in samplings]
            requests += [
                (tokens, self.answer_sampling(max_tokens, sampling), answer)
                for sampling, answer in zip(samplings, answers, strict=True)
            ]
            answer_sets.append(answers)
        if requests:
            self._decode(requests)
        return [[(answer.text, answer.mean_logprob) for answer in answers] for answers in answer_sets]

    def _decode(self, requests: list[tuple[list[int], Sampling, AnswerLine]]) -> None:
        """Submit one sequence per (prompt tokens, sampling, answer), together, and wait for all of them."""
        with self._calling:
            if self._stopped.is_set():
                raise GenerationStopped()
            with self.decoder.starting_together():  # admitted in one step, whatever the threads do
                self._handles = [
                    self.decoder.submit(tokens, sampling, answer.feed, member=self.member)
                    for tokens, sampling, answer in requests
                ]
        try:
            results = [handle.result() for handle in self._handles]
        finally:
            with self._calling:
                handles, self._handles = self._handles, []
            for handle in handles:  # one failed: the others are no longer wanted
                if not handle.done():
                    self.decoder.cancel(handle)
        self.last_stats = results[-1].stats
        if any(result.stats.stop_reason == "stopped" for result in results):
            raise GenerationStopped()


class ParallelTranslators:
    """`n` translators for one engine and strategy, sharing one batched decoder; close() frees it.

    With `shared_decoder`, they use that decoder (another owner's, busy with other callers) and
    close() leaves it open.
    """

    def __init__(
        self,
        engine,
        strategy: PromptStrategy,
        n: int,
        n_ctx: int | None = None,
        examples: ExampleCorpus | None = None,
        candidates: int = 0,
        *,
        shared_decoder=None,
    ):
        """`examples` and `candidates` as SegmentTranslator takes them (translate --candidates)."""
        self.shared = shared_decoder is not None
        # With a stream per segment in flight (batch-invariant decoding), each gets what one
        # segment's prompt and answer need (the job's own rule, chunk_budget), not the whole
        # engine context n times over.
        self.decoder = (
            shared_decoder if self.shared else engine.batched_decoder(n, n_ctx, cells_per_sequence=SEGMENT_CELLS)
        )
        self.stopped = threading.Event()
        self.translators = [
            SegmentTranslator(
                BatchedGenerator(engine, self.decoder, self.stopped, shared=self.shared),
                strategy,
                examples,
                candidates,
                corpus_for_candidates(candidates),
            )
            for _ in range(n)
        ]

    def request_stop(self) -> None:
        for translator in self.translators:
            translator.generator.request_stop()

    def close(self) -> None:
        if not self.shared:
            self.decoder.close()

    def __enter__(self) -> ParallelTranslators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Started:
    index: int


@dataclass(frozen=True)
class Finished:
    index: int
    result: SegmentResult


@dataclass(frozen=True)
class Stopped:
    """A worker's model call was stopped (the job was cancelled)."""


# Translates item `index` with `translator`, given the results of the earlier items of its chain.
TranslateOne = Callable[[SegmentTranslator, int, Sequence[SegmentResult]], SegmentResult]

# How many of the document's last chains, per worker, start longest first (work_order).
TAIL_CHAINS_PER_WORKER = 3


def work_order(
    chains: Sequence[Sequence[int]], cost: Callable[[Sequence[int]], int], workers: int
) -> list[Sequence[int]]:
    """The order in which the workers take `chains`: the document's, except for its last stretch.

    Taken in document order, a long chain near the end starts last and runs alone for many steps
    while the other workers have nothing left: a 40-paragraph French document spent 1.4 of its
    12.3 s of decoding in such steps, with three sequences or fewer per llama_decode. So the last
    TAIL_CHAINS_PER_WORKER x `workers` chains start longest first (by `cost`, an estimate such as
    their source's length; ties in document order), and the short ones fill the final steps
    beside them. Earlier chains keep the document's order, so results still stream out in order
    as the document goes on, and an interrupted job has at most that stretch translated out of
    order (each unit is kept by resume as it finishes, whatever its order). The order changes no
    translation: each chain's prompts are its own, and decoding is batch-invariant by default.
    """
    if workers <= 1:
        return list(chains)
    tail = max(0, len(chains) - TAIL_CHAINS_PER_WORKER * workers)
    last = sorted(range(tail, len(chains)), key=lambda i: (-cost(chains[i]), i))
    return list(chains[:tail]) + [chains[i] for i in last]


def run_chains(
    chains: Sequence[Sequence[int]],
    translators: Sequence[SegmentTranslator],
    translate_one: TranslateOne,
    cancelled: threading.Event,
    cost: Callable[[Sequence[int]], int] = len,
) -> Iterator[Started | Finished | Stopped]:
    """Translate every chain (its items in order), one chain per worker at a time; events as they come.

    Chains start in work_order (by `cost`). Ends after every item is Finished, or after the
    first Stopped (the other workers are stopped too and their remaining events dropped). A
    worker's error is raised here.
    """
    n_workers = min(len(translators), len(chains))
    work: queue.SimpleQueue[Sequence[int]] = queue.SimpleQueue()
    for chain in work_order(chains, cost, n_workers):
        work.put(chain)
    events: queue.SimpleQueue[Started | Finished | Stopped | BaseException] = queue.SimpleQueue()

    def worker(translator: SegmentTranslator) -> None:
        generator = translator.generator
        member = generator.member if isinstance(generator, BatchedGenerator) else None
        try:
            while not cancelled.is_set():
                try:
                    chain = work.get_nowait()
                except queue.Empty:
                    return
                if member is not None:
                    member.order = chain[0] if chain else 0  # the document's order, not the thread's
                done: list[SegmentResult] = []
                for index in chain:
                    if cancelled.is_set():
                        return
                    events.put(Started(index))
                    done.append(translate_one(translator, index, done))
                    events.put(Finished(index, done[-1]))
        except GenerationStopped:
            events.put(Stopped())
        except BaseException as error:  # surfaced in the job's thread
            events.put(error)
        finally:
            if member is not None:
                member.leave()

    for translator in translators[:n_workers]:
        # Every worker joins before any starts, so the first batch already waits for all of them.
        generator = translator.generator
        if isinstance(generator, BatchedGenerator) and not generator.shared:
            generator.member = generator.decoder.join_lockstep()
    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in translators[:n_workers]]
    for thread in threads:
        thread.start()
    remaining = sum(len(chain) for chain in chains)
    try:
        while remaining:
            event = events.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, Stopped):
                return
            if isinstance(event, Finished):
                remaining -= 1
    finally:
        if remaining:  # stopped, failed or abandoned: no worker may go on using the model
            cancelled.set()
            for translator in translators:
                translator.generator.request_stop()
        for thread in threads:
            thread.join()
