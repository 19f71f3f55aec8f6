"""Translations stuck in a loop: found, retried, and cut back when the retry loops too."""

from __future__ import annotations

import random
import time

from llamadesk.app.translate import SegmentTranslator, choose_strategy, resolve_language
from llamadesk.app.translate.repetition import REPEATS, runaway_repetition, without_repetition
from tests.translate_fakes import ScriptedGenerator

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)
SOURCE = "Please either submit a file or check the clear checkbox, not both."
LOOP = "Veuillez soit" + " soit" * 40


def test_a_loop_is_found_with_its_unit_and_count():
    found = runaway_repetition(SOURCE, LOOP)
    assert found is not None and found.unit.strip() == "soit" and found.count == 41
    assert found.describe() == "repeats 'soit' 41 times"
    assert without_repetition(LOOP, found) == "Veuillez soit"
    cjk = runaway_repetition("Hello", "你好" + "的" * 30 + "。")
    assert cjk is not None and without_repetition("你好" + "的" * 30 + "。", cjk) == "你好的。"


def test_ordinary_text_and_the_sources_own_repetition_are_not_loops():
    assert runaway_repetition(SOURCE, "Envoyez un fichier ou cochez la case, mais pas les deux.") is None
    assert runaway_repetition("x", "ha ha ha ha ha") is None  # REPEATS - 1 times is still prose
    assert runaway_repetition("x", "ha " * REPEATS) is not None
    table = "|---|---|---|---|---|---|---|"
    assert runaway_repetition(table, table) is None  # no letter in the unit
    assert runaway_repetition("very " * 8, "très " * 8) is not None  # another unit than the source's
    assert runaway_repetition("no no no no no no no", "no no no no no no no") is None  # the source's own
    assert runaway_repetition("1000000", "1 000 000 000 000 000 000") is None  # digits, not words


def test_the_search_is_quick_on_long_and_hostile_outputs():
    """Model output is untrusted text: no input may make the backtracking search crawl."""
    rng = random.Random(7)
    alphabet = "ab a\n⟦1⟧.é的"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 5000))) for _ in range(50)] + [
        "ab" * 5000 + "abc" * 3000,
        "a" * 20000,
        "abcdefghijklmnopqrstu" * 500 + "x",
    ]
    started = time.perf_counter()
    for sample in samples:
        found = runaway_repetition("", sample)
        if found is not None:
            assert sample[found.start :].startswith(found.unit * found.count)
            assert len(without_repetition(sample, found)) < len(sample)
    assert time.perf_counter() - started < 5.0


def test_a_looping_answer_gets_the_strict_retry():
    generator = ScriptedGenerator([" " + LOOP + "\n", " Envoyez un fichier ou cochez la case, pas les deux.\n"])
    result = SegmentTranslator(generator, FEW_SHOT).translate(SOURCE, EN, FR)
    assert result.translation == "Envoyez un fichier ou cochez la case, pas les deux."
    assert result.attempts == 2 and any("repeats 'soit'" in p for p in result.problems)


def test_when_both_answers_loop_the_loop_is_cut_and_reported():
    generator = ScriptedGenerator([" " + LOOP + "\n", " " + LOOP + "\n"])
    result = SegmentTranslator(generator, FEW_SHOT).translate(SOURCE, EN, FR)
    assert result.translation == "Veuillez soit"
    assert [p for p in result.problems if "repeats" in p] == [
        "first try: repeats 'soit' 41 times",
        "retry: repeats 'soit' 41 times",
    ]


def _pieces(text: str, size: int = 4):
    from llamadesk.app.engine.types import TextPiece

    return [TextPiece(text[i : i + size], -0.1, 1) for i in range(0, len(text), size)]


def test_an_answer_ends_as_soon_as_it_loops_where_the_source_does_not():
    from llamadesk.app.translate.generation import AnswerLine

    fed = 0
    line = AnswerLine(answer_to=SOURCE)
    for piece in _pieces(" " + LOOP + "\n"):
        fed += 1
        if line.feed(piece):
            break
    assert line.text.strip().startswith("Veuillez soit soit")
    assert runaway_repetition(SOURCE, line.text) is not None  # the segment still sees the loop ...
    assert line.text.count("soit") <= REPEATS + 2 and fed < len(_pieces(" " + LOOP + "\n")) // 3  # ... cut short
    # Without the source, or where the source has the same run itself, it runs to the end of its line.
    for unchecked in (AnswerLine(), AnswerLine(answer_to="soit " * 10)):
        assert not any(unchecked.feed(piece) for piece in _pieces(" " + LOOP))


def test_a_loop_that_imitates_markers_ends_when_the_segment_would_call_it_one():
    # A model looping while it imitates the protection markers writes ", ⟦step⟧" and ", ⟦step⟧⟧" by
    # turns; the segment's check reads the answer after repair_markers has dropped those brackets.
    from llamadesk.app.translate.generation import AnswerLine
    from llamadesk.app.translate.segment import repair_markers

    source = "Ensure this value is a multiple of step size ⟦1⟧, starting from ⟦2⟧."
    stream = " Stellen Sie sicher, dass ⟦1⟧ mit ⟦step size⟧" + ", ⟦step⟧, ⟦step⟧⟧" * 10
    line = AnswerLine(answer_to=source)
    assert any(line.feed(piece) for piece in _pieces(stream))
    assert line.text.count("step⟧") <= REPEATS + 1
    repetition = runaway_repetition(source, repair_markers(source, line.text))
    assert repetition is not None and repetition.count == REPEATS


def test_the_engine_stops_a_looping_answer_early(smollm2_engine):
    """Through the real engine: a prompt that makes SmolLM2 repeat itself, with a translation's
    source that does not, stops after a few repetitions instead of its 120-token budget."""
    from llamadesk.app.translate.generation import EngineGenerator
    from llamadesk.app.translate.prompts import Prompt

    text = "French: soit, soit, soit, soit, soit, soit,"
    generator = EngineGenerator(smollm2_engine)
    unbounded: list[str] = []
    looped = generator.generate(Prompt("completion", text=text), max_tokens=120, on_text=unbounded.append)
    assert runaway_repetition(SOURCE, looped) is not None and len(unbounded) == 120  # the budget, all of it
    cut: list[str] = []
    answer = generator.generate(Prompt("completion", text=text, answer_to=SOURCE), max_tokens=120, on_text=cut.append)
    assert runaway_repetition(SOURCE, answer) is not None and looped.startswith(answer)
    assert len(cut) <= 3 * (REPEATS + 1)  # " so", "it", "," a repetition: cut at the sixth, not the fortieth


def test_the_streaming_watch_says_what_the_whole_search_says_after_every_piece():
    """LoopWatch searches only when a new piece could end a loop; on random streams, loops and
    near-loops included, it agrees with runaway_repetition on the whole text at every piece, up to
    the first loop (where an answer stops), both read without the markers' brackets."""
    from llamadesk.app.translate.repetition import LoopWatch

    def plain(text: str) -> str:
        return text.replace("⟦", "").replace("⟧", "")

    rng = random.Random(11)
    units = ["soit ", "ab", "x", ", step", "的", "⟦1⟧ ", "very ", "1", "-", ", ⟦step⟧", ", ⟦step⟧⟧"]
    for trial in range(300):
        source = rng.choice(["", SOURCE, "very " * 8, "ab" * 10])
        text, watch = "", LoopWatch(source)
        for _ in range(60):
            unit = rng.choice(units)
            text += unit * rng.choice([1, 1, 2, 3, 5]) if rng.random() < 0.7 else "".join(rng.sample("abc def", 3))
            found = watch.loops(text)
            assert found == (runaway_repetition(plain(source), plain(text)) is not None), (trial, source, text)
            if found:
                break
