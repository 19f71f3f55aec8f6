"""A fake engine that 'translates' by upper-casing the segment a few-shot prompt asks for, and an
app built on it, so the translation screen's wiring is tested fast (the real model is tested in
tests/tui/test_translate_real_model.py).
"""

from __future__ import annotations

import re
import threading
import time
from types import SimpleNamespace

from llamadesk.app.engine.types import GenerationDone, GenerationStats, TextPiece
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.translate import TranslateScreen
from tests.tui.waiting import wait_until


class FakeTranslatingEngine:
    """Answers a few-shot translation prompt with the asked segment in capitals, piece by piece."""

    backend = "CPU"
    has_chat_template = False

    def __init__(self, delay: float = 0.0, replies: dict[str, str] | None = None):
        self.replies = replies or {}  # segment -> its 'translation', where upper case will not do
        self.summary = SimpleNamespace(name="fake-translator", metadata={})
        self.settings = SimpleNamespace(n_threads=1)
        self.n_ctx = 4096
        self.delay = delay
        self._stop = threading.Event()

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def state_identity(self) -> dict[str, object]:
        """What a resume sidecar records of the model (Engine.state_identity's keys)."""
        return {"model": "/models/fake-translator.gguf", "model_size": 1, "model_mtime_ns": 1, "adapters": []}

    def stream_tokens(self, tokens, sampling, *, shelve=False):
        self._stop.clear()
        prompt = "".join(map(chr, tokens))
        segment = re.findall(r"^\w+: (.*)\n\w+:$", prompt, re.M)[-1] if prompt.endswith(":") else prompt
        reason = "end"
        # The model's probability of its words, where asked for: low for a sentence with "perhaps",
        # so the screen has a low-confidence segment to show.
        logprob = (-2.0 if "PERHAPS" in segment.upper() else -0.05) if sampling.logprobs else None
        for word in (" " + self.replies.get(segment, segment.upper()) + "\n").split(" "):
            if self._stop.is_set():
                reason = "stopped"
                break
            time.sleep(self.delay)
            yield TextPiece(word + " ", logprob)
        yield GenerationDone(GenerationStats(len(tokens), 0, 1, 0.0, 1.0, 1.0, len(tokens), self.n_ctx, reason))

    def request_stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        pass


def make_app(store, delay: float = 0.0, replies: dict[str, str] | None = None) -> LlamadeskApp:
    return LlamadeskApp(
        store=store,
        config=Config(translate_parallel=1),  # one segment at a time: a scripted engine has no batched decoder
        engine_loader=lambda spec, settings: FakeTranslatingEngine(delay, replies),
        save_settings=False,
    )


FRENCH = {
    "The station is near.": "La gare est proche.",
    "Perhaps the train is late today.": "Le train est peut-être en retard aujourd'hui.",
    "Where is the station?": "Où est la gare ?",
    "Perhaps the train leaves at noon.": "Le train part peut-être à midi.",
}


async def open_translation(pilot) -> TranslateScreen:
    """Switch the app to translation (F6) and return that screen."""
    await pilot.press("f6")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TranslateScreen), what="the translation screen")
    return pilot.app.screen
