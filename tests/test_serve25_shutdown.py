"""Shutting down with --parallel: the request the worker holds while the decoder is full is told
503 "shutting down" (as the queued ones are), not 499 "the client went away before its turn"."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.server.model_pool import GenerationRequest, ModelPool, ReplyDone, ReplyFailed
from tests.test_serve_units import BatchingEngine, drain


def test_the_job_waiting_for_room_at_shutdown_gets_503_not_499():
    release = threading.Event()

    def blocked_work(engine, job, decoder):
        release.wait(10)
        return ReplyDone("stop", None, 0, 0)

    async def main():
        pool = ModelPool(
            {"a": Path("a.gguf")}, LoadSettings(), 4, lambda p, s: BatchingEngine(), lambda n: None, parallel=2
        )
        pool.start()
        loop = asyncio.get_running_loop()
        jobs = [pool.submit(GenerationRequest("a", work=blocked_work), loop) for _ in range(3)]
        for _ in range(200):  # two in flight, the third held by the worker until one ends
            if pool.status()["in_flight"] == 2 and pool._waiting_for_room is not None:
                break
            await asyncio.sleep(0.01)
        assert pool._waiting_for_room is jobs[2]
        pool.stop_all()
        release.set()
        failed = (await drain(jobs[2]))[-1]
        assert isinstance(failed, ReplyFailed)
        assert failed.error.status == 503 and "shutting down" in failed.error.message
        assert failed.error.headers.get("Retry-After")
        pool.close()

    asyncio.run(main())


def test_a_job_whose_client_left_before_its_turn_is_still_499():
    release = threading.Event()

    def blocked_work(engine, job, decoder):
        release.wait(10)
        return ReplyDone("stop", None, 0, 0)

    async def main():
        pool = ModelPool(
            {"a": Path("a.gguf")}, LoadSettings(), 4, lambda p, s: BatchingEngine(), lambda n: None, parallel=2
        )
        pool.start()
        loop = asyncio.get_running_loop()
        jobs = [pool.submit(GenerationRequest("a", work=blocked_work), loop) for _ in range(3)]
        for _ in range(200):
            if pool._waiting_for_room is jobs[2]:
                break
            await asyncio.sleep(0.01)
        pool.cancel(jobs[2])
        release.set()
        failed = (await drain(jobs[2]))[-1]
        assert isinstance(failed, ReplyFailed) and failed.error.status == 499
        pool.close()

    asyncio.run(main())
