"""Subtitles (.srt, .vtt) with a scripted model (fast): cues grouped into sentences, cut back and
wrapped, numbering and timing byte for byte, checked with the `srt` and `webvtt-py` parsers.

tests/data/translate/sample.{srt,vtt} were written for these tests (see the README there).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import srt
import webvtt

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate import JobFinished, JobSettings, SegmentTranslator, choose_strategy, resolve_language
from llamadesk.app.translate.confidence import is_low
from llamadesk.app.translate.file_job import FileJob
from llamadesk.app.translate.formats import read_translatable
from llamadesk.app.translate.formats.subtitles import split_proportionally, wrap_lines
from tests.conftest import run_cli
from tests.translate_fakes import ScriptedGenerator, segment_of, upper_translation

DATA = Path(__file__).parent / "data" / "translate"
EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


def translate(name: str, data: bytes, reply=upper_translation):
    generator = ScriptedGenerator(reply)
    document = read_translatable(name, data, FR)
    job = FileJob(SegmentTranslator(generator, FEW_SHOT), document, JobSettings(FR, EN))
    finished = list(job.run())[-1]
    assert isinstance(finished, JobFinished)
    return finished, generator


def timing_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "-->" in line]


def test_srt_keeps_numbering_and_timing_and_translates_split_sentences_as_one():
    source = (DATA / "sample.srt").read_text(encoding="utf-8")
    finished, generator = translate("sample.srt", source.encode())
    before, after = list(srt.parse(source)), list(srt.parse(finished.text))
    assert [(s.index, s.start, s.end) for s in after] == [(s.index, s.start, s.end) for s in before]
    assert timing_lines(finished.text) == timing_lines(source)
    for old, new in zip(before, after, strict=True):
        assert new.content.count("\n") == old.content.count("\n"), "each cue keeps its number of lines"
        words = re.sub(r"</?i>", "", new.content)
        assert words == words.upper() and new.content != old.content
    asked = [segment_of(p) for p in generator.prompts]
    assert "If we run now, we can still catch it before the doors close." in asked, "one sentence over two cues"
    assert after[1].content == "IF WE RUN NOW, WE CAN STILL", "cut back in proportion to the cues"
    assert after[2].content == "CATCH IT BEFORE THE DOORS CLOSE."
    assert after[3].content == "- WHERE ARE THE TICKETS?\n- IN MY BAG.", "a dialogue keeps its speakers"
    assert after[4].content.startswith("<i>") and after[4].content.endswith("</i>"), "tags kept"


def test_vtt_keeps_header_notes_styles_identifiers_and_settings():
    source = (DATA / "sample.vtt").read_text(encoding="utf-8")
    finished, _ = translate("sample.vtt", source.encode())
    before = webvtt.from_buffer(io.StringIO(source))
    after = webvtt.from_buffer(io.StringIO(finished.text))
    assert [(c.identifier, c.start, c.end) for c in after] == [(c.identifier, c.start, c.end) for c in before]
    assert [c.text.count("\n") for c in after] == [c.text.count("\n") for c in before]
    assert all(c.text == c.text.upper() for c in after)
    for kept in ("WEBVTT - a short scene\n", "NOTE This comment is kept as it is.\n", "::cue { color: yellow; }\n"):
        assert kept in finished.text
    assert "00:01.000 --> 00:03.500 line:90% align:center\n" in finished.text
    assert timing_lines(finished.text) == timing_lines(source)


def test_crlf_line_endings_and_a_bom_come_out_as_they_went_in():
    source = "\ufeff" + (DATA / "sample.srt").read_text(encoding="utf-8").replace("\n", "\r\n")
    finished, _ = translate("sample.srt", source.encode())
    assert finished.text.startswith("\ufeff1\r\n00:00:01,000 --> 00:00:03,500\r\n")
    assert "\n" not in finished.text.replace("\r\n", "")


def test_a_translation_is_cut_in_proportion_and_wrapped_to_the_cue():
    assert split_proportionally("one two three four", [10, 10]) == ["one two", "three four"]
    assert split_proportionally("one two three four five six", [30, 10]) == ["one two three four", "five six"]
    assert split_proportionally("one", [5, 5]) == ["one", ""], "too few words: a cue keeps its source"
    assert wrap_lines("aaa bbb ccc ddd", 2) == ["aaa bbb", "ccc ddd"]
    assert wrap_lines("a bb cccccccccc", 2) == ["a bb", "cccccccccc"]
    assert wrap_lines("single", 3) == ["single"], "never an empty line: it would end the cue"


def test_wrapping_many_words_on_many_lines_is_quick():
    # The first version re-summed each candidate line: minutes for a cue this size.
    words = " ".join(f"w{i % 10}" * (1 + i % 3) for i in range(300))
    started = time.monotonic()
    lines = wrap_lines(words, 60)
    assert time.monotonic() - started < 5
    assert len(lines) == 60 and " ".join(lines) == words


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.srt", b"1\n00:00:01,000 --> 00:00:0x,500\nHello.\n", "line 2: bad timestamp"),
        ("bad.srt", b"1\n00:00:01,000 --> 00:00:00,500\nHello.\n", "ends before it starts"),
        ("bad.srt", b"1\n00:00:61,000 --> 00:01:02,000\nHello.\n", "bad timestamp"),
        ("bad.srt", b"Hello there\n", "expected a cue number"),
        ("bad.vtt", b"00:01.000 --> 00:02.000\nHello.\n", "must start with a WEBVTT line"),
        # Digits that are not ASCII (full width, Arabic-Indic) were read as times and cue numbers.
        ("bad.srt", "1\n\uff10\uff10:00:01,000 --> 00:00:02,000\nHello.\n".encode(), "bad timestamp"),
        ("bad.srt", "\u0661\n00:00:01,000 --> 00:00:02,000\nHello.\n".encode(), "expected a cue number"),
        ("bad.srt", "1\n00:00:01,000 --> 00:00:02,000\nCaf\u00e9\n".encode("latin-1"), "not UTF-8"),
        # A blank line missing between cues: cue 2 was read as cue 1's text, translated over and lost.
        (
            "bad.srt",
            b"1\n00:00:01,000 --> 00:00:02,000\nHello there.\n2\n00:00:03,000 --> 00:00:04,000\nHow are you?\n",
            "line 5: a cue timing line inside the text of the cue before it",
        ),
        (
            "bad.vtt",
            b"WEBVTT\n\n00:01.000 --> 00:02.000\nHello there.\n00:03.000 --> 00:04.000\nHow are you?\n",
            "line 5: a cue timing line inside",
        ),
    ],
)
def test_broken_subtitles_are_refused_whole(tmp_path, name, content, message):
    with pytest.raises(BadInputError, match=message):
        read_translatable(name, content, FR)
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / f"out-{name}"
    proc = run_cli("translate", "--to", "fr", str(path), "-o", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def drops_markup(prompt) -> str:
    """A model that loses braces, angle brackets and backslashes (markers are all it keeps of markup)."""
    return " " + re.sub(r"[{}<>\\]", "", segment_of(prompt)).upper() + "\n"


def test_subtitle_markup_survives_a_model_that_drops_it():
    # SSA override tags in SubRip, and WebVTT's karaoke timestamps and classes, were not protected:
    # a model that dropped them lost the positioning and timing, silently.
    srt_source = "1\n00:00:01,000 --> 00:00:03,000\n{\\an8}Where is the station?\n"
    finished, _ = translate("cues.srt", srt_source.encode(), drops_markup)
    assert "{\\an8}WHERE IS THE STATION?" in finished.text
    vtt_source = "WEBVTT\n\n00:01.000 --> 00:04.000\nFish and <00:00:03.500>chips are <c.yellow>great</c>.\n"
    finished, _ = translate("cues.vtt", vtt_source.encode(), drops_markup)
    assert "FISH AND <00:00:03.500>CHIPS ARE <c.yellow>GREAT</c>." in finished.text


def test_a_line_separator_inside_a_cue_is_a_character_not_a_line_end():
    # str.splitlines ended a line at U+2028; the cue's two halves then came back glued ("THERE,MY").
    source = "1\n00:00:01,000 --> 00:00:03,000\nHello there,\u2028my good friend.\n"
    finished, _ = translate("cue.srt", source.encode())
    cue = list(srt.parse(finished.text))[0]
    assert "THERE,MY" not in cue.content and "MY GOOD FRIEND." in cue.content
    assert timing_lines(finished.text) == timing_lines(source)


def test_a_group_translated_into_fewer_words_than_its_cues_is_low_confidence():
    # "Good / morning / my dear" answered with two words: the last cue kept its English text,
    # and nothing said so.
    source = b"1\n00:00:01,000 --> 00:00:02,000\nGood\n\n2\n00:00:02,000 --> 00:00:03,000\nmorning\n\n"
    source += b"3\n00:00:03,000 --> 00:00:04,000\nmy dear friend.\n"
    finished, _ = translate("short.srt", source, reply=lambda prompt: " Bonjour ami.\n")
    assert "my dear friend." in finished.text, "the last cue keeps its source"
    (result,) = finished.results
    assert is_low(result) and "too few words for its 3 cues" in result.confidence_reasons[-1]
    finished, _ = translate("short.srt", source, reply=lambda prompt: " Bonjour, mon cher ami.\n")
    assert not is_low(finished.results[0]) and "my dear" not in finished.text


def test_a_vtt_headers_language_line_says_the_target_language_and_nothing_else_changes():
    # YouTube's captions carry "Language: en" in the header; the French file still said en.
    header = "WEBVTT\r\nKind: captions\r\nLanguage: en\r\n\r\n"
    cues = "NOTE\r\nLanguage: en\r\n\r\n00:00.000 --> 00:01.000\r\nLanguage: en is what it said.\r\n"
    finished, _ = translate("captions.vtt", (header + cues).encode())
    assert finished.text == "WEBVTT\r\nKind: captions\r\nLanguage: fr\r\n\r\n" + cues.replace(
        "Language: en is what it said.", "LANGUAGE: EN IS WHAT IT SAID."
    )
    assert webvtt.from_buffer(io.StringIO(finished.text)).captions[0].text == "LANGUAGE: EN IS WHAT IT SAID."
    # Already the target's (a region of it): kept as written.
    canadian = "WEBVTT\nLanguage: fr-CA\n\n00:00.000 --> 00:01.000\nHello.\n"
    assert translate("captions.vtt", canadian.encode())[0].text.startswith("WEBVTT\nLanguage: fr-CA\n\n")


def test_an_output_named_as_another_format_is_refused_before_the_model_loads(tmp_path):
    # `a.srt -o a.vtt` wrote SubRip into a .vtt; `-o ""` wrote to stdout.
    source = tmp_path / "a.srt"
    source.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello there.\n", encoding="utf-8")
    proc = run_cli("translate", "--to", "fr", "--from", "en", str(source), "-o", str(tmp_path / "a.vtt"))
    assert proc.returncode == 2 and "name the output a.srt" in proc.stderr and not (tmp_path / "a.vtt").exists()
    proc = run_cli("translate", "--to", "fr", "--from", "en", str(source), "-o", "")
    assert proc.returncode == 2 and "-o is empty" in proc.stderr and not proc.stdout


def test_text_is_not_written_into_a_file_named_as_a_structured_format(tmp_path):
    # `notes.md -o notes.po` wrote Markdown into a .po; piped text `-o piped.srt` plain text into a .srt.
    source = tmp_path / "notes.md"
    source.write_text("# Notes\n\nHello there.\n", encoding="utf-8")
    for output, says in (("notes.po", "name the output notes.md"), ("notes.html", "name the output notes.md")):
        proc = run_cli("translate", "--to", "fr", "--from", "en", str(source), "-o", str(tmp_path / output))
        assert proc.returncode == 2 and says in proc.stderr and not (tmp_path / output).exists(), proc.stderr
    proc = run_cli("translate", "--to", "fr", "--from", "en", "-o", str(tmp_path / "piped.srt"), input="Hello.\n")
    assert proc.returncode == 2 and "the piped text is text" in proc.stderr and "piped.txt" in proc.stderr


def test_a_file_read_as_lines_may_be_written_under_its_own_kind_of_name(tmp_path):
    # `--lines x.po -o y.po` was refused with "name the output y.po", the name it had just refused.
    source = tmp_path / "x.po"
    source.write_text('msgid "Hello"\nmsgstr ""\n', encoding="utf-8")
    proc = run_cli("translate", "--to", "fr", "--from", "en", "--lines", str(source), "-o", str(tmp_path / "y.srt"))
    assert proc.returncode == 2 and "name the output y.po" in proc.stderr
    # The check comes before the model loads: a model that does not exist shows it passed.
    proc = run_cli(
        "translate", "--to", "fr", "--from", "en", "--lines", str(source), "-o", str(tmp_path / "y.po"), "-m", "nope"
    )
    assert "is named as a" not in proc.stderr, proc.stderr
