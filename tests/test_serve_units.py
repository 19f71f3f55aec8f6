"""The server's pure parts, without a model: stop sequences, field checks, exposure, keys, the pool."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import GenerationDone, GenerationStats, LoadSettings, Sampling, TextPiece
from llamadesk.app.server.api_errors import ApiError
from llamadesk.app.server.auth import bearer_token
from llamadesk.app.server.model_pool import GenerationRequest, Job, ModelPool, ReplyDone, ReplyFailed, reply_end
from llamadesk.app.server.reply_stream import SSE_DONE, TextEvents, sse_event
from llamadesk.app.server.request_fields import Fields
from llamadesk.app.server.sampling_fields import chat_messages, llama_seed
from llamadesk.app.server.server_config import ServerConfig, check_exposure, is_loopback
from llamadesk.app.server.stop_strings import StopScanner
from tests.conftest import run_cli


def scan(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = []
    for piece in pieces:
        text, hit = scanner.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + scanner.flush(), False


@pytest.mark.parametrize(
    ("pieces", "stops", "expected"),
    [
        (["Hello ", "world"], [], ("Hello world", False)),
        (["Hello ", "wor", "ld"], ["world"], ("Hello ", True)),
        (["a\n", "\nUser: x"], ["\n\nUser"], ("a", True)),
        (["ab", "c"], ["bd"], ("abc", False)),  # held back "b", then released
        (["one, two, three"], ["two", "one"], ("", True)),  # the earliest stop wins
        (["x", "y"], ["yz"], ("xy", False)),  # held "y" is flushed at the end
    ],
)
def test_stop_sequences_cut_across_pieces(pieces, stops, expected):
    assert scan(pieces, stops) == expected


def test_fields_check_types_and_ranges():
    fields = Fields({"t": 0.5, "b": True, "i": 3.0, "s": "x", "stop": "END", "o": {"k": 1}})
    assert fields.number("t", 0, 1) == 0.5 and fields.integer("i", 0, 5) == 3
    assert fields.stop_list("stop") == ("END",) and fields.object("o").integer("k", 0, 1) == 1
    for call in (
        lambda: fields.number("b", 0, 1),  # JSON true is not a number
        lambda: fields.integer("t", 0, 1),
        lambda: fields.number("t", 0.6, 1),
        lambda: fields.string("t"),
        lambda: fields.boolean("s", False),
        lambda: fields.object("s"),
        lambda: Fields({}).string("model", required=True),
        lambda: Fields({"n": float("nan")}).number("n", 0, 1),
        lambda: Fields({"stop": [""]}).stop_list("stop"),
    ):
        with pytest.raises(ApiError) as raised:
            call()
        assert raised.value.status == 400


def test_messages_accept_text_parts_and_map_developer_to_system():
    messages = chat_messages(
        [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    )
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_seeds_fit_llama_cpp_and_never_mean_random():
    assert llama_seed(None) is None and llama_seed(7) == 7 and llama_seed(-1) == 0 and llama_seed(2**32 - 1) == 0
    assert 0 <= llama_seed(2**63) < 2**32 - 1


def test_exposure_needs_a_key_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("myhost")
    assert check_exposure(ServerConfig()) is None
    assert check_exposure(ServerConfig(host="0.0.0.0", api_key="k" * 20)) is None
    with pytest.raises(BadInputError, match="--api-key"):
        check_exposure(ServerConfig(host="0.0.0.0"))
    assert "warning" in check_exposure(ServerConfig(host="0.0.0.0", insecure_no_auth=True))
    with pytest.raises(BadInputError, match="shorter"):
        check_exposure(ServerConfig(api_key="short"))


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token(None) is None and bearer_token("Basic abc") is None and bearer_token("Bearer ") is None


def test_serve_help_shows_examples():
    result = run_cli("serve", "--help")
    assert result.returncode == 0 and "LLAMADESK_API_KEY" in result.stdout and "--insecure-no-auth" in result.stdout


# -- the pool, with a stand-in engine --------------------------------------------------------------


class SlowEngine:
    """Streams a token every 10 ms until stopped or `n` tokens, like Engine.stream_chat."""

    def __init__(self, n: int = 1000):
        self.n = n
        self.stop = threading.Event()
        self.closed = False

    def request_stop(self):
        self.stop.set()

    def close(self):
        self.closed = True

    def stream_chat(self, messages, sampling):
        self.stop.clear()

        def events():
            count = 0
            while count < min(self.n, sampling.max_tokens or self.n) and not self.stop.is_set():
                time.sleep(0.01)
                count += 1
                yield TextPiece("x")
            reason = "stopped" if self.stop.is_set() else "length"
            yield GenerationDone(GenerationStats(3, 0, count, 0.0, 0.0, 0.0, 3 + count, 100, reason))

        return events()


def make_pool(queue_size: int = 2, loads: list | None = None, max_models: int = 1) -> ModelPool:
    def loader(path, settings):
        (loads if loads is not None else []).append(path)
        return SlowEngine()

    served = {"a": Path("a.gguf"), "b": Path("b.gguf"), "c": Path("c.gguf")}
    return ModelPool(served, LoadSettings(), queue_size, loader, lambda n: None, max_models=max_models)


async def drain(job) -> list:
    events = []
    while True:
        event = await asyncio.wait_for(job.next_event(), 10)
        events.append(event)
        if not isinstance(event, TextPiece):
            return events


def test_pool_serves_in_order_switches_models_and_refuses_a_full_queue():
    async def main():
        loads: list = []
        pool = make_pool(queue_size=2, loads=loads)
        pool.start()
        loop = asyncio.get_running_loop()
        ask = [{"role": "user", "content": "hi"}]
        # The first runs for ~0.5 s (10 ms a token): its first token shows it has left the queue,
        # and a busy machine still leaves time to queue two more behind it before it ends.
        jobs = [pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=50)), loop)]
        await asyncio.wait_for(jobs[0].next_event(), 10)
        jobs.append(pool.submit(GenerationRequest("b", ask, sampling=Sampling(max_tokens=3)), loop))
        jobs.append(pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=2)), loop))
        with pytest.raises(ApiError) as raised:
            pool.submit(GenerationRequest("a", ask), loop)
        assert raised.value.status == 503 and raised.value.headers["Retry-After"]
        results = [await drain(job) for job in jobs]
        assert [r[-1].completion_tokens for r in results] == [50, 3, 2]
        assert loads == [Path("a.gguf"), Path("b.gguf"), Path("a.gguf")]
        with pytest.raises(ApiError) as raised:
            pool.model_path("../etc/passwd")
        assert raised.value.status == 404
        pool.close()

    asyncio.run(main())


def test_pool_cancel_stops_the_engine_and_the_next_job_runs():
    async def main():
        pool = make_pool()
        pool.start()
        loop = asyncio.get_running_loop()
        ask = [{"role": "user", "content": "hi"}]
        long = pool.submit(GenerationRequest("a", ask), loop)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        pool.cancel(long)
        next_job = pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=1)), loop)
        done = (await drain(next_job))[-1]
        assert isinstance(done, ReplyDone) and time.monotonic() - started < 0.5
        pool.close()

    asyncio.run(main())


def test_a_failing_request_is_reported_and_the_worker_survives():
    async def main():
        pool = make_pool()
        pool.start()
        loop = asyncio.get_running_loop()
        bad = await drain(pool.submit(GenerationRequest("missing", [{"role": "user", "content": "x"}]), loop))
        assert isinstance(bad[-1], ReplyFailed) and bad[-1].error.status == 404
        short = GenerationRequest("a", [{"role": "user", "content": "x"}], sampling=Sampling(max_tokens=2))
        good = await drain(pool.submit(short, loop))
        assert isinstance(good[-1], ReplyDone)
        pool.close()

    asyncio.run(main())


class StandInDecoder:
    """What the pool needs of a BatchedDecoder, for work run beside replies (none are sent here)."""

    n_sequences = 2
    failed = False

    def __init__(self):
        self.closed = False

    def request_stop(self):
        pass

    def close(self):
        self.closed = True


class BatchingEngine(SlowEngine):
    def __init__(self):
        super().__init__()
        self.decoder = StandInDecoder()

    def batched_decoder(self, n_sequences):
        assert n_sequences == 2
        return self.decoder


def test_work_runs_beside_the_replies_with_the_decoder_and_stops_when_its_job_is_cancelled():
    engines: list[BatchingEngine] = []

    def loader(path, settings):
        engines.append(BatchingEngine())
        return engines[-1]

    given: list = []
    release = threading.Event()

    def blocked_work(engine, job, decoder):
        given.append(decoder)
        job.when_cancelled(release.set)
        release.wait(10)
        return ReplyFailed(ApiError(499, "cancelled")) if job.cancelled.is_set() else ReplyDone("stop", None, 0, 0)

    def quick_work(engine, job, decoder):
        given.append(decoder)
        return ReplyDone("stop", None, 0, 0, result={"done": True})

    async def main():
        pool = ModelPool({"a": Path("a.gguf")}, LoadSettings(), 4, loader, lambda n: None, parallel=2)
        pool.start()
        loop = asyncio.get_running_loop()
        long = pool.submit(GenerationRequest("a", work=blocked_work), loop)
        quick = pool.submit(GenerationRequest("a", work=quick_work), loop)
        # The worker handed the long work to a thread of its own and went on to the next job.
        done = (await drain(quick))[-1]
        assert isinstance(done, ReplyDone) and done.result == {"done": True} and not release.is_set()
        assert pool.status()["in_flight"] == 1 and pool.status()["busy"]
        pool.cancel(long)  # what the work registered runs: it returns, and its failure is the job's end
        ended = (await drain(long))[-1]
        assert isinstance(ended, ReplyFailed) and ended.error.status == 499
        assert given == [engines[0].decoder, engines[0].decoder] and not engines[0].stop.is_set()
        pool.close()
        assert engines[0].decoder.closed and engines[0].closed

    asyncio.run(main())


@pytest.mark.parametrize("max_models", [1, 2])
def test_work_on_another_model_waits_only_when_that_model_must_make_room(max_models):
    engines: dict[str, BatchingEngine] = {}

    def loader(path, settings):
        engines[path.stem] = BatchingEngine()
        return engines[path.stem]

    release = threading.Event()

    a_ended = threading.Event()

    def blocked_work(engine, job, decoder):
        release.wait(10)
        a_ended.set()
        return ReplyDone("stop", None, 0, 0, result={"model": "a"})

    ran: list[str] = []

    def quick_work(engine, job, decoder):
        ran.append("b")
        result = {"model": "b", "a closed": engines["a"].closed, "a ended": a_ended.is_set()}
        return ReplyDone("stop", None, 0, 0, result=result)

    async def main():
        served = {"a": Path("a.gguf"), "b": Path("b.gguf")}
        pool = ModelPool(served, LoadSettings(), 4, loader, lambda n: None, parallel=2, max_models=max_models)
        pool.start()
        loop = asyncio.get_running_loop()
        on_a = pool.submit(GenerationRequest("a", work=blocked_work), loop)
        on_b = pool.submit(GenerationRequest("b", work=quick_work), loop)
        if max_models == 2:
            # Both models stay in memory: b's work runs while a's is still in flight on a's decoder.
            done = (await drain(on_b))[-1]
            assert isinstance(done, ReplyDone) and done.result == {"model": "b", "a closed": False, "a ended": False}
            assert not release.is_set() and pool.status()["loaded"] == ["a", "b"]
            release.set()
        else:
            # b replaces a: it waits for a's work to end, and a is closed before b loads.
            await asyncio.sleep(0.3)
            assert ran == [] and "b" not in engines
            release.set()
            done = (await drain(on_b))[-1]
            assert isinstance(done, ReplyDone) and done.result == {"model": "b", "a closed": True, "a ended": True}
        assert (await drain(on_a))[-1].result == {"model": "a"}
        pool.close()

    asyncio.run(main())


def test_one_reply_at_a_time_work_runs_on_the_worker_without_a_decoder():
    given: list = []

    def work(engine, job, decoder):
        given.append(decoder)
        job.post(TextPiece("progress"))
        return ReplyDone("stop", None, 0, 0)

    async def main():
        pool = make_pool()
        pool.start()
        events = await drain(pool.submit(GenerationRequest("a", work=work), asyncio.get_running_loop()))
        assert [type(e) for e in events] == [TextPiece, ReplyDone] and given == [None]
        pool.close()

    asyncio.run(main())


def test_a_cancel_callback_runs_once_and_at_once_when_the_job_is_already_cancelled():
    async def main():
        job = Job(GenerationRequest("a"), asyncio.get_running_loop())
        calls: list[str] = []
        job.when_cancelled(lambda: calls.append("first"))
        job.cancel()
        job.cancel()
        job.when_cancelled(lambda: calls.append("late"))
        assert calls == ["first", "late"] and job.cancelled.is_set()

    asyncio.run(main())


# -- service files ----------------------------------------------------------------------------------

SERVICE = Path(__file__).resolve().parent.parent / "packaging" / "service"


def test_service_files_run_serve_and_expose_only_with_a_key():
    import plistlib

    system = (SERVICE / "llamadesk-serve.service").read_text()
    assert "serve --host 0.0.0.0" in system and "EnvironmentFile=/etc/llamadesk/serve.env" in system
    assert "--api-key" not in system  # the key stays out of the command line (and `ps`)
    user = (SERVICE / "llamadesk-serve.user.service").read_text()
    assert "llamadesk serve" in user and "--host" not in user
    with (SERVICE / "com.llamadesk.serve.plist").open("rb") as f:
        agent = plistlib.load(f)
    assert agent["ProgramArguments"][1] == "serve" and "--host" not in agent["ProgramArguments"]


def test_a_job_cancelled_while_waiting_still_ends_its_waiting_coroutine():
    async def main():
        pool = make_pool()
        pool.start()
        loop = asyncio.get_running_loop()
        ask = [{"role": "user", "content": "hi"}]
        running = pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=20)), loop)
        waiting = pool.submit(GenerationRequest("a", ask), loop)
        pool.cancel(waiting)
        assert isinstance((await drain(waiting))[-1], ReplyFailed)
        assert isinstance((await drain(running))[-1], ReplyDone)
        pool.close()

    asyncio.run(main())


def test_max_models_keeps_the_recently_used_in_memory():
    async def main():
        loads: list = []
        pool = make_pool(queue_size=8, loads=loads, max_models=2)
        pool.start()
        loop = asyncio.get_running_loop()
        for name in ("a", "b", "a", "c", "a", "b"):
            request = GenerationRequest(name, [{"role": "user", "content": "x"}], sampling=Sampling(max_tokens=1))
            assert isinstance((await drain(pool.submit(request, loop)))[-1], ReplyDone)
        # a, b loaded; a reused; c replaces b (least recent); a reused; b replaces c.
        assert [p.stem for p in loads] == ["a", "b", "c", "b"]
        assert pool.status()["loaded"] == ["a", "b"]
        pool.close()

    asyncio.run(main())


def test_a_memory_budget_closes_the_least_recently_used_and_refuses_what_cannot_fit():
    sizes = {"a": 60, "b": 50, "c": 30, "big": 150}

    async def main():
        loads: list = []

        def loader(path, settings):
            loads.append(path.stem)
            return SlowEngine()

        served = {name: Path(f"{name}.gguf") for name in sizes}
        pool = ModelPool(
            served,
            LoadSettings(),
            8,
            loader,
            lambda n: None,
            max_models=64,
            memory_budget=100,
            memory_needed=lambda path, settings: sizes[path.stem],
        )
        pool.start()
        loop = asyncio.get_running_loop()

        async def ask(name: str):
            request = GenerationRequest(name, [{"role": "user", "content": "x"}], sampling=Sampling(max_tokens=1))
            return (await drain(pool.submit(request, loop)))[-1]

        for name in ("a", "c", "a"):  # 60 + 30 fit together: c joins a, a is reused
            assert isinstance(await ask(name), ReplyDone)
        assert pool.status()["loaded"] == ["c", "a"] and pool.status()["memory_in_use"] == 90
        assert isinstance(await ask("b"), ReplyDone)  # 90 + 50 > 100: c (least recent) goes; 60 + 50 too: a goes
        assert pool.status()["loaded"] == ["b"] and pool.status()["memory_in_use"] == 50
        refused = await ask("big")
        assert isinstance(refused, ReplyFailed) and refused.error.status == 507
        assert "needs about 150 B" in refused.error.message and "--memory-budget" in refused.error.message
        assert pool.status()["loaded"] == ["b"]  # nothing was closed for a model that cannot fit
        assert isinstance(await ask("c"), ReplyDone)
        assert loads == ["a", "c", "b", "c"] and pool.status()["loaded"] == ["b", "c"]
        pool.close()

    asyncio.run(main())


def test_memory_sizes_parse_like_the_flags_of_other_tools():
    from llamadesk.app.server.memory_plan import models_to_close, parse_memory_size

    assert parse_memory_size("3G") == 3 * 1024**3 and parse_memory_size("1.5GiB") == 1536 * 1024**2
    assert parse_memory_size("800m") == 800 * 1024**2 and parse_memory_size("512MB") == 512 * 1024**2
    assert parse_memory_size("4096") == 4096
    for bad in ("", "G", "-1G", "nan", "inf", "1e30T", "three"):
        with pytest.raises(ValueError):
            parse_memory_size(bad)
    assert models_to_close([("a", 10), ("b", 10)], 5, None, 2) == ["a"]
    assert models_to_close([("a", 10), ("b", 10)], 5, 30, 64) == []
    assert models_to_close([("a", 10), ("b", 10)], 15, 30, 64) == ["a"]
    done = run_cli("serve", "--memory-budget", "lots")
    assert done.returncode == 2 and "--memory-budget: 'lots' is not a size" in done.stderr


def test_pool_applies_serve_lora_to_the_operators_models_only():
    """serve --lora: the -m models load with the adapters, a library model without them."""

    async def main():
        loads: list = []

        def loader(path, settings):
            loads.append((path.name, settings.lora))
            return SlowEngine()

        adapters = (("/adapters/a-lora.gguf", 0.5),)
        library = {"lib": Path("lib.gguf")}
        pool = ModelPool({"a": Path("a.gguf")}, LoadSettings(), 2, loader, library.get, adapters=adapters)
        pool.start()
        loop = asyncio.get_running_loop()
        ask = [{"role": "user", "content": "hi"}]
        for name in ("a", "lib"):
            await drain(pool.submit(GenerationRequest(name, ask, sampling=Sampling(max_tokens=1)), loop))
        pool.close()
        assert loads == [("a.gguf", adapters), ("lib.gguf", ())]

    asyncio.run(main())


# -- handing events from the worker to the loop, and writing them --------------------------------


def test_a_job_hands_over_every_ready_event_with_one_wakeup():
    """The worker wakes the loop only while the coroutine waits, once; the coroutine takes all that came."""

    async def main():
        loop = asyncio.get_running_loop()
        job = Job(GenerationRequest("a"), loop)
        wakeups = []
        real = loop.call_soon_threadsafe

        class CountingLoop:
            def __getattr__(self, name):
                return getattr(loop, name)

            def call_soon_threadsafe(self, *args):
                wakeups.append(args)
                return real(*args)

        job._loop = CountingLoop()

        def worker():
            for text in ("a", "b", "c"):
                job.post(TextPiece(text))

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert wakeups == []  # nobody was waiting: no wake-up at all
        assert [e.text for e in await job.next_events()] == ["a", "b", "c"] and not job.finished

        waiting = asyncio.ensure_future(job.next_events())
        await asyncio.sleep(0.01)  # the coroutine now waits
        thread = threading.Thread(target=lambda: [job.post(TextPiece("d")), job.post(TextPiece("e"))])
        thread.start()
        thread.join()
        events = await asyncio.wait_for(waiting, 5)
        assert len(wakeups) == 1  # the second post found the coroutine already woken
        assert [e.text for e in events] == ["d", "e"]

        assert await job.next_events(timeout=0.05) == []  # nothing for a while: the stream pings
        job.post(TextPiece("f"))
        job.post(ReplyDone("stop", None, 0.0, 0.0))
        assert (await job.next_event()).text == "f" and not job.finished  # one at a time still works
        assert isinstance(await job.next_event(), ReplyDone) and job.finished

    asyncio.run(main())


@pytest.mark.parametrize("text", ["Hello", ' "quoted" \\ \n\t', "héllo 日本 🐉", "\x00\x1f", ""])
def test_a_text_event_is_byte_for_byte_the_json_of_its_whole_chunk(text):
    meta = {"id": "chatcmpl-1", "created": 1, "model": 'm "x" 日'}

    def chunk(text: str) -> dict:
        return {**meta, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}

    assert TextEvents(chunk)(text) == b"data: " + json.dumps(chunk(text)).encode() + b"\r\n\r\n"
    assert sse_event({"a": 1}) == b'data: {"a": 1}\r\n\r\n' and sse_event("[DONE]") == SSE_DONE


def test_a_parallel_server_counts_the_batched_decoders_context_in_a_models_need(smollm2_path):
    from llamadesk.app.library.catalog import inspect_model
    from llamadesk.app.server.memory_plan import memory_before_load

    settings = LoadSettings(n_ctx=2048, kv_cache_type="f16")
    one = memory_before_load(smollm2_path, settings)
    two = memory_before_load(smollm2_path, settings, contexts=2)
    weights = inspect_model(smollm2_path).tensor_bytes
    # The second context repeats the KV cache and buffers, never the weights.
    assert two - one == one - weights and one - weights > 2048 * 1024


def test_serve_prompt_lookup_checks_guesses_on_greedy_replies_and_says_the_same(smollm2_path):
    """`serve --prompt-lookup`: a real engine behind the pool; the greedy reply is the one a plain pool
    gives, with most of its quote taken from checked guesses."""
    from llamadesk.app.engine.llama_engine import Engine
    from tests.conftest import PINNED_LOAD

    quote = "Order 4471-B from Rufus Wainwright-Oduya ships on 2024-03-17 to 221B Baker Street, London NW1 6XE."
    ask = [{"role": "user", "content": f"Repeat this sentence exactly, then say done:\n{quote}"}]
    engines: list = []

    def loader(path, settings):
        engines.append(Engine.load(path, LoadSettings(n_ctx=1024, **PINNED_LOAD)))
        return engines[-1]

    async def reply(prompt_lookup: bool) -> tuple[str, int]:
        pool = ModelPool({"m": smollm2_path}, LoadSettings(), 2, loader, lambda n: None, prompt_lookup=prompt_lookup)
        pool.start()
        try:
            request = GenerationRequest("m", ask, sampling=Sampling(temperature=0.0, max_tokens=48))
            job = pool.submit(request, asyncio.get_running_loop())
            events = await drain(job)
            return "".join(e.text for e in events if isinstance(e, TextPiece)), engines[-1]._token_loop.lookup.accepted
        finally:
            pool.close()

    async def main():
        return await reply(False), await reply(True)

    (plain, plain_guessed), (looked_up, guessed) = asyncio.run(main())
    assert looked_up == plain and "Rufus" in plain
    assert plain_guessed == 0 and guessed >= 10


def test_serve_prompt_lookup_is_refused_with_parallel():
    proc = run_cli("serve", "--prompt-lookup", "--parallel", "2", "--port", "1")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "llamadesk: --prompt-lookup checks one reply's guesses at a time; leave out --parallel"
    ]


# -- found by a hunt: strangers' requests that got a 500, a crash or the wrong effect --------------


def test_a_huge_integer_is_a_number_out_of_range_not_an_overflow():
    with pytest.raises(ApiError, match="between 0 and 2") as raised:
        Fields({"temperature": 10**400}).number("temperature", 0, 2)
    assert raised.value.status == 400
    assert Fields({"temperature": 1}).number("temperature", 0, 2) == 1.0


@pytest.mark.parametrize("role", [["user"], {"a": 1}, 5, None])
def test_a_role_that_is_not_a_string_is_400(role):
    with pytest.raises(ApiError, match=r"messages\[0\]\.role") as raised:
        chat_messages([{"role": role, "content": "x"}])
    assert raised.value.status == 400


@pytest.mark.parametrize(("field", "value"), [("images", ["aGVsbG8="]), ("tool_calls", [{"id": "1"}])])
def test_images_and_tool_calls_in_a_message_are_refused_not_dropped(field, value):
    with pytest.raises(ApiError, match=field) as raised:
        chat_messages([{"role": "user", "content": "What is in this picture?", field: value}])
    assert raised.value.status == 400
    assert chat_messages([{"role": "user", "content": "x", field: []}]) == [{"role": "user", "content": "x"}]


def test_an_api_key_must_be_printable_ascii():
    with pytest.raises(BadInputError, match="printable ASCII"):
        check_exposure(ServerConfig(api_key="clé-très-secrète-0123456789"))
    with pytest.raises(BadInputError, match="printable ASCII"):
        check_exposure(ServerConfig(api_key="key-with-a\nnewline-0123456789"))


def test_an_unload_request_closes_the_model_without_loading_one():
    async def main():
        loads: list = []
        engines: list = []
        pool = make_pool(queue_size=8, loads=loads, max_models=2)
        loader = pool._loader
        pool._loader = lambda path, settings: engines.append(loader(path, settings)) or engines[-1]
        pool.start()
        loop = asyncio.get_running_loop()
        assert (await drain(pool.submit(GenerationRequest("a"), loop)))[-1].finish_reason == "load"
        assert pool.status()["loaded"] == ["a"]
        done = (await drain(pool.submit(GenerationRequest("b", unload=True), loop)))[-1]
        assert done.finish_reason == "unload" and pool.status()["loaded"] == ["a"]  # b was not loaded for it
        done = (await drain(pool.submit(GenerationRequest("a", unload=True), loop)))[-1]
        assert done.finish_reason == "unload" and pool.status()["loaded"] == [] and engines[0].closed
        assert [p.stem for p in loads] == ["a"]
        pool.close()

    asyncio.run(main())


def test_keep_alive_zero_means_unload_and_a_bad_one_is_400():
    from llamadesk.app.server.ollama_routes import _unloads

    for value in (0, 0.0, "0", "0s", "0m", " 0ms "):
        assert _unloads(Fields({"keep_alive": value})), value
    for value in (None, -1, 300, "5m", "-1", "10s"):
        assert not _unloads(Fields({"keep_alive": value} if value is not None else {})), value
    for value in (True, [0], {"s": 0}, "x" * 100):
        with pytest.raises(ApiError, match="keep_alive"):
            _unloads(Fields({"keep_alive": value}))


def test_a_forged_line_in_a_request_path_stays_on_its_own_line():
    from llamadesk.app.server.request_log import _loggable

    assert _loggable("/v1/models") == "/v1/models"
    forged = _loggable("/x\n10.0.0.9 POST /v1/chat/completions 200 12ms")
    assert "\n" not in forged and "\\n" in forged


def test_schema_counts_are_bounded_before_a_grammar_is_made():
    from llamadesk.app.engine.json_grammar import MAX_SCHEMA_COUNT, json_schema_grammar

    for schema in (
        {"type": "string", "maxLength": 20_000},  # 20,000 nested groups: llama.cpp's parser overflowed its stack
        {"type": "string", "minLength": 10**8},  # a grammar of gigabytes
        {"type": "array", "items": {"type": "integer"}, "maxItems": 20_000},
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": MAX_SCHEMA_COUNT + 1}}},
        {"type": "string", "pattern": "^a{0,20000}$"},
        {"type": "string", "minLength": -1},
    ):
        with pytest.raises(BadInputError, match="at most|must be 0 to"):
            json_schema_grammar(schema)
    assert "char" in json_schema_grammar({"type": "string", "maxLength": MAX_SCHEMA_COUNT})


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": [1]},
        {"type": "object", "properties": {"a": 5}},
        {"type": "array", "items": 5},
        {"$ref": 5},
        {"type": "string", "pattern": 5},
        {"oneOf": [5]},
        json.loads('{"type":"array","items":' * 400 + '{"type":"integer"}' + "}" * 400),
    ],
    ids=["properties-list", "property-int", "items-int", "ref-int", "pattern-int", "oneof-int", "deep"],
)
def test_a_schema_of_the_wrong_shape_is_bad_input(schema):
    from llamadesk.app.engine.json_grammar import json_schema_grammar

    with pytest.raises(BadInputError, match="JSON schema"):
        json_schema_grammar(schema)


def test_a_client_that_leaves_the_queue_frees_its_place_at_once():
    # Its job stayed in the queue until the worker took it: with --queue-size 1, one request that
    # queued and left made every other client get 503 "busy" until the reply in progress ended.
    async def main():
        pool = make_pool(queue_size=1)
        pool.start()
        loop = asyncio.get_running_loop()
        ask = [{"role": "user", "content": "hi"}]
        running = pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=300)), loop)
        await asyncio.wait_for(running.next_event(), 10)  # on the worker: the queue is empty
        left = pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=1)), loop)
        assert pool.status()["queued"] == 1
        pool.cancel(left)
        assert pool.status()["queued"] == 0
        failed = await asyncio.wait_for(left.next_event(), 1)  # told now, not when the reply ends
        assert isinstance(failed, ReplyFailed) and failed.error.status == 499
        after = pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=1)), loop)
        pool.cancel(running)
        assert isinstance((await drain(after))[-1], ReplyDone)
        pool.close()

    asyncio.run(main())


async def held_jobs(count: int, until) -> tuple[ModelPool, list, threading.Event]:
    """A pool of 2 sequences given `count` jobs that hold their sequence until the event is set;
    returns once `until(pool, jobs)` is true (the worker holding the third for room, ...)."""
    release = threading.Event()

    def blocked_work(engine, job, decoder):
        release.wait(10)
        return ReplyDone("stop", None, 0, 0)

    pool = ModelPool(
        {"a": Path("a.gguf")}, LoadSettings(), 4, lambda p, s: BatchingEngine(), lambda n: None, parallel=2
    )
    pool.start()
    loop = asyncio.get_running_loop()
    jobs = [pool.submit(GenerationRequest("a", work=blocked_work), loop) for _ in range(count)]
    for _ in range(200):
        if until(pool, jobs):
            break
        await asyncio.sleep(0.01)
    return pool, jobs, release


def test_health_counts_the_job_held_until_the_decoder_has_room_as_queued():
    async def main():
        # two in flight, one held by the worker for room, one in the queue
        pool, jobs, release = await held_jobs(
            4, lambda pool, _: pool.status()["in_flight"] == 2 and pool._queue.qsize() == 1
        )
        assert pool.status()["in_flight"] == 2 and pool.status()["queued"] == 2
        release.set()
        for job in jobs:
            assert isinstance((await drain(job))[-1], ReplyDone)
        assert pool.status()["queued"] == 0
        pool.close()

    asyncio.run(main())


# -- shutting down with --parallel: the job the worker holds while the decoder is full --------
# is told 503 "shutting down" (as the queued ones are), not 499 "the client went away".


def test_the_job_held_for_room_takes_a_place_in_the_queue():
    # With --parallel 2 --queue-size 1, a full decoder, one job held for room and one in the queue
    # made queue-size + 1 requests waiting.
    async def main():
        pool, jobs, release = await held_jobs(3, lambda pool, jobs: pool._waiting_for_room is jobs[2])
        pool._queue.maxsize = 1  # 2 in flight, 1 held: the queue of 1 is full
        with pytest.raises(ApiError) as raised:
            pool.submit(GenerationRequest("a", work=lambda engine, job, decoder: None), asyncio.get_running_loop())
        assert raised.value.status == 503
        release.set()
        for job in jobs:
            assert isinstance((await drain(job))[-1], ReplyDone)
        pool.close()

    asyncio.run(main())


def test_the_job_waiting_for_room_at_shutdown_gets_503_not_499():
    async def main():
        pool, jobs, release = await held_jobs(3, lambda pool, jobs: pool._waiting_for_room is jobs[2])
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
    async def main():
        pool, jobs, release = await held_jobs(3, lambda pool, jobs: pool._waiting_for_room is jobs[2])
        pool.cancel(jobs[2])
        release.set()
        failed = (await drain(jobs[2]))[-1]
        assert isinstance(failed, ReplyFailed) and failed.error.status == 499
        pool.close()

    asyncio.run(main())


# -- a reply cut short by shutting down ends with 503, not as a whole reply ---------------------
# (a client that went away keeps its ReplyDone: nobody reads it).


class PieceDecoder:
    """What BatchedReplies needs of a BatchedDecoder: each sequence, on a thread of its own, gets a
    piece every 10 ms until its budget ("length"), its on_piece asks to end it ("end", as the real
    decoder says then), or it is cancelled or stopped ("stopped")."""

    n_sequences = 2
    failed = False

    def __init__(self):
        self._stop = threading.Event()
        self.closed = False

    def submit(self, tokens, sampling, on_piece):
        from llamadesk.app.engine.sequence_handle import SequenceHandle, SequenceResult

        handle = SequenceHandle()

        def run():
            count, reason = 0, "length"
            while count < sampling.max_tokens:
                if handle.cancel_requested or self._stop.is_set():
                    reason = "stopped"
                    break
                time.sleep(0.01)
                count += 1
                if on_piece(TextPiece("x")):
                    reason = "end"
                    break
            stats = GenerationStats(len(tokens), 0, count, 0.0, 0.0, 0.0, len(tokens) + count, 100, reason)
            handle.set_outcome(SequenceResult([], stats))

        threading.Thread(target=run, daemon=True).start()
        return handle

    def cancel(self, handle):
        handle.cancel_requested = True

    def request_stop(self):
        self._stop.set()

    def close(self):
        self._stop.set()
        self.closed = True


class PieceBatchingEngine(SlowEngine):
    def chat_prompt_tokens(self, messages):
        return [1, 2, 3]

    def batched_decoder(self, n_sequences):
        return PieceDecoder()


@pytest.mark.parametrize("parallel", [1, 2], ids=["one-reply", "parallel"])
@pytest.mark.parametrize("ended_by", ["shutdown", "client-gone"])
def test_a_reply_cut_short_by_shutdown_ends_with_503_and_one_whose_client_left_ends_done(parallel, ended_by):
    async def main():
        served = {"a": Path("a.gguf")}
        pool = ModelPool(
            served, LoadSettings(), 4, lambda p, s: PieceBatchingEngine(), lambda n: None, parallel=parallel
        )
        pool.start()
        ask = [{"role": "user", "content": "hi"}]
        job = pool.submit(GenerationRequest("a", ask, sampling=Sampling(max_tokens=1000)), asyncio.get_running_loop())
        first = await asyncio.wait_for(job.next_events(), 10)  # it streams: text reached the client
        assert isinstance(first[0], TextPiece)
        if ended_by == "shutdown":
            pool.stop_all()
        else:
            pool.cancel(job)
        events = first + await drain(job)
        assert all(isinstance(e, TextPiece) for e in events[:-1]) and len(events) < 1000
        last = events[-1]
        if ended_by == "shutdown":
            assert isinstance(last, ReplyFailed), last
            assert last.error.status == 503 and last.error.headers.get("Retry-After")
            assert last.error.message == "the server shut down before the reply was complete"
        else:
            assert isinstance(last, ReplyDone) and last.finish_reason == "stop"
        pool.close()

    asyncio.run(main())


def test_a_reply_that_was_whole_when_the_server_shut_down_still_ends_done():
    async def main():
        job = Job(GenerationRequest("a"), asyncio.get_running_loop())
        job.shut_down = True
        job.cancel()

        def stats(reason):
            return GenerationStats(3, 0, 5, 0.0, 0.0, 0.0, 8, 100, reason)

        # At its stop string (which stops the engine too), at its end, at its budget: whole.
        assert isinstance(reply_end(job, stats("stopped"), True, False, 0.0, 0.0), ReplyDone)
        assert isinstance(reply_end(job, stats("end"), False, False, 0.0, 0.0), ReplyDone)
        assert reply_end(job, stats("length"), False, False, 0.0, 0.0).finish_reason == "length"
        # Stopped by the cancel, or text made after it dropped: cut short.
        assert isinstance(reply_end(job, stats("stopped"), False, False, 0.0, 0.0), ReplyFailed)
        assert isinstance(reply_end(job, stats("end"), False, True, 0.0, 0.0), ReplyFailed)

    asyncio.run(main())
