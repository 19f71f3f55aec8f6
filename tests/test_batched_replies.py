"""The server's batched replies (server/batched_replies.py) on a real SmolLM2 decoder, without HTTP.

Each job gets its own events: text through its own stop strings, a ReplyDone with its counts, or a
ReplyFailed with the status its error deserves; a job cancelled before its turn or mid-reply ends
without taking the others with it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from llamadesk.app.engine.types import Sampling, TextPiece
from llamadesk.app.server.batched_replies import BatchedReplies
from llamadesk.app.server.model_pool import GenerationRequest, Job, ReplyDone, ReplyFailed

GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=24)


@pytest.fixture(scope="module")
def replies(smollm2_engine):
    batch = BatchedReplies(smollm2_engine.batched_decoder(3, n_ctx=1024))
    yield batch
    batch.close()


async def events_of(job: Job) -> list:
    events = []
    while not events or isinstance(events[-1], TextPiece):
        events.extend(await asyncio.wait_for(job.next_events(), 60))
    return events


def start(replies, engine, loop, prompt: str, sampling: Sampling = GREEDY, stop: tuple[str, ...] = ()) -> Job:
    job = Job(GenerationRequest("m", prompt=prompt, sampling=sampling, stop=stop), loop)
    replies.start(job, engine.tokenize(prompt), sampling, stop, time.perf_counter(), 0.0)
    return job


def test_each_job_gets_its_own_text_stops_and_errors(replies, smollm2_engine):
    async def main():
        loop = asyncio.get_running_loop()
        counting = start(replies, smollm2_engine, loop, "1, 2, 3, 4, 5,", stop=(" 8",))
        bad_grammar = Sampling(**{**GREEDY.__dict__, "grammar": "root ::= ("})
        refused = start(replies, smollm2_engine, loop, "The capital of France is", bad_grammar)
        plain = start(replies, smollm2_engine, loop, "The capital of France is")
        counted, failed, answered = [await events_of(job) for job in (counting, refused, plain)]

        text = "".join(e.text for e in counted if isinstance(e, TextPiece))
        assert " 6" in text and " 8" not in text and counted[-1].finish_reason == "stop"
        assert isinstance(failed[-1], ReplyFailed) and failed[-1].error.status == 400
        assert "GBNF" in failed[-1].error.message
        done = answered[-1]
        assert isinstance(done, ReplyDone) and done.completion_tokens == 24 and done.finish_reason == "length"
        assert done.prompt_tokens == len(smollm2_engine.tokenize("The capital of France is"))
        assert replies.in_flight() == 0

    asyncio.run(main())


def test_a_cancelled_job_ends_and_frees_its_place(replies, smollm2_engine):
    async def main():
        loop = asyncio.get_running_loop()
        endless = Sampling(**{**GREEDY.__dict__, "max_tokens": 1000})
        long = start(replies, smollm2_engine, loop, "Once upon a time", endless)
        other = start(replies, smollm2_engine, loop, "Water boils at")
        first = await asyncio.wait_for(long.next_events(), 60)
        assert isinstance(first[0], TextPiece) and replies.in_flight() >= 1
        long.cancelled.set()
        replies.cancel(long)
        ended = await events_of(long)
        assert isinstance(ended[-1], ReplyDone) and ended[-1].completion_tokens < 1000
        assert isinstance((await events_of(other))[-1], ReplyDone)  # the other reply was not taken with it
        replies.wait_until_idle()
        assert replies.in_flight() == 0

    asyncio.run(main())
