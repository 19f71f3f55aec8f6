"""The translator's checks, retries, fallbacks, glossary, line alignment, resume and cancel,
with a scripted model (fast); the real model is in test_translate_model.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llamadesk.app.core.errors import BadInputError, PromptTooLong
from llamadesk.app.translate import (
    ChunkDone,
    JobCancelled,
    JobFinished,
    JobSettings,
    JobStarted,
    ResumeLog,
    SegmentTranslator,
    TranslationJob,
    choose_strategy,
    existing_mode,
    find_language,
    parse_glossary,
    resolve_language,
)
from llamadesk.app.translate.confidence import assess
from llamadesk.app.translate.detection import detect_language
from llamadesk.app.translate.generation import LineEnd
from llamadesk.app.translate.glossary import load_glossary, missing_terms, terms_in
from llamadesk.app.translate.markdown_links import broken_links, untranslated_link_texts
from llamadesk.app.translate.prompts import Prompt, TranslationRequest
from llamadesk.app.translate.segment import clean_output, is_copy, repair_markers
from tests.translate_fakes import ScriptedGenerator, segment_of, upper_translation

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


def translator(reply) -> tuple[SegmentTranslator, ScriptedGenerator]:
    generator = ScriptedGenerator(reply)
    return SegmentTranslator(generator, FEW_SHOT), generator


# -- languages ---------------------------------------------------------------------------------


def test_languages_by_code_name_native_name_and_region():
    for spec in ("fr", "FR", "fra", "French", "french", "français", "fr-CA", "fr_FR"):
        assert find_language(spec).code == "fr", spec
    assert find_language("Castilian").code == "es"
    assert find_language("zh-TW").code == "zh-Hant"
    with pytest.raises(BadInputError, match="unknown language"):
        resolve_language("klingonese")


def test_detection_with_the_real_detector():
    assert detect_language("Ce champ est obligatoire. Veuillez saisir une adresse valide.")[0].code == "fr"
    assert detect_language("Dieses Feld ist erforderlich. Bitte geben Sie eine gültige Adresse ein.")[0].code == "de"
    assert detect_language("Este campo es obligatorio. Introduzca una dirección válida, %s.")[0].code == "es"
    assert detect_language("This field is required. Please enter a valid address at https://x.org.")[0].code == "en"
    with pytest.raises(BadInputError, match="--from"):
        detect_language("%s {0} https://example.com 1234")


def test_detector_loaded_in_background_is_loaded_once_for_every_thread(monkeypatch):
    """load_in_background and the segment checks of parallel workers may all ask for the detector
    before it is ready: each waits for the one load, and every answer is the real detector's."""
    import threading
    import time

    from py3langid.langid import LanguageIdentifier

    from llamadesk.app.translate import detection

    loads = []
    real_load = LanguageIdentifier.from_model_file

    def slow_load(*args, **kwargs):
        loads.append(threading.current_thread().name)
        time.sleep(0.3)  # a wide window for a second thread to start a second load
        return real_load(*args, **kwargs)

    monkeypatch.setattr(LanguageIdentifier, "from_model_file", staticmethod(slow_load))
    monkeypatch.setattr(detection, "_loaded_identifier", None)
    detection.load_in_background()
    answers = []
    workers = [
        threading.Thread(
            target=lambda: answers.append(detection.reads_as_source("This field is required here.", EN, FR))
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert loads == ["language-detector-load"]
    assert answers == [True] * 4
    assert detect_language("Ce champ est obligatoire. Veuillez saisir une adresse valide.")[0].code == "fr"


def test_a_full_temporary_folder_is_one_line_naming_it_and_no_traceback_from_the_loader(tmp_path, monkeypatch):
    # py3langid unpacks its model into a temporary file: with /tmp full, the background load
    # printed a thread traceback and the translation then ended on "the disk is full (while writing)".
    import errno
    import tempfile
    import threading

    from py3langid.langid import LanguageIdentifier

    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.translate import detection

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    failures = []
    monkeypatch.setattr(LanguageIdentifier, "from_model_file", staticmethod(full_disk))
    monkeypatch.setattr(detection, "_loaded_identifier", None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(threading, "excepthook", failures.append)
    detection.load_in_background()
    for thread in threading.enumerate():
        if thread.name == "language-detector-load":
            thread.join(timeout=60)
    assert failures == []
    with pytest.raises(LlamadeskError) as err:
        detection.reads_as_source("This field is required here.", EN, FR)
    assert str(err.value) == (
        f"the language detector could not unpack its model (about 70 MB) into the temporary folder {tmp_path} "
        "(No space left on device); free some space there or set TMPDIR to a folder with room"
    )


def test_translate_with_no_writable_temporary_folder_is_one_line(gemma_path):
    # A real process under a file-size limit of 0: no temporary folder takes even gettempdir's probe.
    import resource
    import subprocess

    from tests.conftest import LLAMADESK, one_line_error

    def no_file_may_grow() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    done = subprocess.run(
        [str(LLAMADESK), "translate", "--from", "en", "--to", "fr", "-m", str(gemma_path), "--threads", "1"],
        input="This field is required. Please enter a valid address.",
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=no_file_may_grow,
    )
    assert one_line_error(done, 1) == (
        "llamadesk: the language detector needs a temporary folder to unpack its model (about 70 MB) and none "
        "can be written (TMPDIR, /tmp, /var/tmp); set TMPDIR to a folder with room"
    )


# -- output cleaning -------------------------------------------------------------------------------


def test_clean_output_removes_echo_quotes_and_commentary():
    prompt = Prompt("completion", text="...", echo_prefixes=("French:",))
    assert clean_output(" Bonjour.\nEnglish: next", prompt, "Hello.") == "Bonjour."
    assert clean_output('"Bonjour."', prompt, "Hello.") == "Bonjour."
    assert clean_output("« Bonjour. »", prompt, "Hello.") == "Bonjour."
    assert clean_output('"Bonjour."', prompt, '"Hello."') == '"Bonjour."', "quotes the source had stay"
    assert clean_output("Here is the translation:\n\nFrench: Bonjour.", prompt, "Hello.") == "Bonjour."
    assert clean_output("\n\n", prompt, "Hello.") == ""


def test_an_answer_ending_in_a_colon_is_the_answer_when_the_source_ends_in_one():
    # "Example:" came back as "Example" (the line after "Exemple:"), and "Note:" as the garbage
    # that followed: every line ending in a colon was taken for "Here is the translation:".
    prompt = Prompt("completion", text="...")
    assert clean_output(" Exemple:\nExample:\nExample:", prompt, "Example:") == "Exemple:"
    assert clean_output("注意：\n1. 1.", prompt, "Note：") == "注意："
    assert clean_output("Here is the translation:\nBonjour.", prompt, "Hello.") == "Bonjour."
    line = LineEnd("Do the following:")
    assert not line.feed("Faites ce qui suit") and line.feed(" :\n")
    line = LineEnd("Hello.")
    assert not line.feed("Voici la traduction :\n") and line.feed("Bonjour.\n")
    tr, _ = translator(["Exemple:\nExample:\n", "Remarque:\n1. 1. 1.\n"])
    assert [tr.translate(text, EN, FR).translation for text in ("Example:", "Note:")] == ["Exemple:", "Remarque:"]


def test_copy_detection_spares_single_words_and_names():
    assert is_copy("Please enter a valid value.", "Please enter a valid value")
    assert not is_copy("Django", "Django")
    assert not is_copy("OK", "OK")
    assert not is_copy("Enter a value.", "Entrez une valeur.")


# -- checks, retry, fallback -------------------------------------------------------------------------


def test_a_good_first_answer_is_used_as_is():
    tr, gen = translator(upper_translation)
    result = tr.translate("Hello %s, welcome to {site}.", EN, FR)
    assert result.translation == "HELLO %s, WELCOME TO {site}."
    assert (result.attempts, result.fallback, result.problems) == (1, None, ())
    assert "%s" not in gen.prompts[0].text and "⟦1⟧" in gen.prompts[0].text


def test_empty_output_is_retried_with_the_strict_prompt():
    tr, gen = translator(["\n", " Bonjour le monde.\n"])
    result = tr.translate("Hello world.", EN, FR)
    assert result.translation == "Bonjour le monde." and result.attempts == 2
    assert "Translate each English text into French" in gen.prompts[1].text
    assert result.problems == ("first try: empty output",)


def test_a_copy_of_the_source_is_retried():
    tr, _ = translator([" Please enter a valid value.\n", " Veuillez saisir une valeur valide.\n"])
    result = tr.translate("Please enter a valid value.", EN, FR)
    assert result.translation == "Veuillez saisir une valeur valide."
    assert result.problems == ("first try: output copied the source",)


def test_a_lost_placeholder_is_retried_then_translated_around():
    # Both whole-segment answers lose %d; the fallback translates the words between the spans.
    replies = [
        " Bonjour ⟦1⟧, vous avez messages.\n",
        " Bonjour ⟦1⟧, messages.\n",
        " Bonjour\n",
        " , vous avez\n",
        " nouveaux messages\n",
    ]
    tr, _ = translator(replies)
    result = tr.translate("Hello %s, you have %d new messages", EN, FR)
    assert result.fallback == "piecewise"
    assert result.translation == "Bonjour %s, vous avez %d nouveaux messages"
    assert any("lost '%d'" in p for p in result.problems)


def test_marker_slips_are_mended_where_the_fix_is_certain():
    assert repair_markers("Run ⟦1⟧ now.", "Lancez ⟦1⟧Installer⟧ maintenant ⟦7⟧.") == "Lancez ⟦1⟧Installer maintenant ."
    assert repair_markers("Run ⟦1⟧ now.", "Lancez ⟦1⟧ ⟦1⟧ maintenant.") == "Lancez ⟦1⟧ maintenant."
    assert repair_markers("⟦1⟧ is not valid.", "n'est pas valide.") == "⟦1⟧ n'est pas valide."
    assert repair_markers("Invalid page (⟦1⟧): ⟦2⟧", "Page invalide (⟦1⟧) :") == "Page invalide (⟦1⟧) : ⟦2⟧"
    assert repair_markers("Send ⟦1⟧ to ⟦2⟧ today.", "Envoyez à ⟦2⟧ aujourd'hui.") == "Envoyez à ⟦2⟧ aujourd'hui.", (
        "the middle is left to the retry"
    )
    assert repair_markers("No spans here.", "Pas de ⟦1⟧ ici.") == "Pas de ici."


def test_made_up_markers_do_not_cost_a_retry():
    tr, _ = translator([" Lancez ⟦1⟧ maintenant ⟦3⟧.\n"])
    result = tr.translate("Run `pip install x` now.", EN, FR)
    assert result.translation == "Lancez `pip install x` maintenant ." and result.attempts == 1


def test_a_base_model_gets_one_sentence_per_call_with_the_previous_as_context():
    tr, gen = translator(upper_translation)
    result = tr.translate("Upload a file. It must be an image.", EN, FR)
    assert result.translation == "UPLOAD A FILE. IT MUST BE AN IMAGE."
    assert len(gen.prompts) == 2
    assert gen.prompts[1].text.endswith(
        "English: Upload a file.\nFrench: UPLOAD A FILE.\n\nEnglish: It must be an image.\nFrench:"
    )


def test_a_segment_with_nothing_to_translate_does_not_reach_the_model():
    tr, gen = translator(upper_translation)
    assert tr.translate("  %s {0} https://example.com  ", EN, FR).translation == "  %s {0} https://example.com  "
    assert gen.prompts == []


def test_an_empty_answer_after_the_retry_keeps_the_source_and_says_so():
    tr, _ = translator(["", ""])
    result = tr.translate("Hello world.", EN, FR)
    assert (result.translation, result.fallback) == ("Hello world.", "source-kept")


def test_a_segment_too_long_for_the_context_is_kept_and_the_document_goes_on():
    # The engine refuses a prompt longer than its context (PromptTooLong). One such segment (a table
    # cell of thousands of tags, a subtitle cue of thousands of words) used to end the whole job,
    # and every resume ended there again.
    def reply(prompt):
        if "WIDE" in segment_of(prompt):
            raise PromptTooLong("the prompt is 9000 tokens but the context holds 4096; shorten it")
        return upper_translation(prompt)

    tr, _ = translator(reply)
    wide = "WIDE " + "word " * 50 + "end."
    result = tr.translate(wide, EN, FR)
    assert (result.translation, result.fallback) == (wide, "source-kept")
    assert result.problems == ("kept as it was: the prompt is 9000 tokens but the context holds 4096; shorten it",)
    job = TranslationJob(tr, f"First one.\n\n{wide}\n\nLast one.\n", JobSettings(FR, EN))
    finished = list(job.run())[-1]
    assert isinstance(finished, JobFinished)
    assert finished.text == f"FIRST ONE.\n\n{wide}\n\nLAST ONE.\n"
    assert [r.fallback for r in finished.results] == [None, "source-kept", None]


def test_a_prompt_too_long_with_its_context_is_asked_again_without_it():
    # A long paragraph translated before, carried as context, can make the next prompt too long
    # where the segment alone fits: asked again without the context, not kept in the source.
    def reply(prompt):
        text = prompt.text if prompt.kind == "completion" else str(prompt.messages)
        if "LONG PARAGRAPH" in text:
            raise PromptTooLong("the prompt is 5000 tokens but the context holds 4096; shorten it")
        return upper_translation(prompt)

    tr, generator = translator(reply)
    result = tr.translate("Next one.", EN, FR, context=(("LONG PARAGRAPH ...", "LONG PARAGRAPH ..."),))
    assert (result.translation, result.fallback, result.problems) == ("NEXT ONE.", None, ())
    assert len(generator.prompts) == 2


# -- glossary ------------------------------------------------------------------------------------------


def test_glossary_file_format_and_errors(tmp_path):
    glossary = parse_glossary("# terms\npull request = demande de fusion\nbranch\tbranche\ncommit -> commit\n\n")
    assert glossary == {"pull request": "demande de fusion", "branch": "branche", "commit": "commit"}
    with pytest.raises(BadInputError, match="line 2"):
        parse_glossary("a = b\njust words\n")
    with pytest.raises(BadInputError, match="no such file"):
        load_glossary(tmp_path / "missing.txt")
    latin = tmp_path / "latin-1.txt"
    latin.write_bytes("café = café\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"^--glossary .*latin-1.txt is not UTF-8 text; convert it to UTF-8"):
        load_glossary(latin)
    assert terms_in("Open a Pull Request now", glossary) == {"pull request": "demande de fusion"}
    assert terms_in("branches are", glossary) == {}, "whole words only"
    assert missing_terms("Ouvrez une demande de fusion", {"pull request": "demande de fusion"}) == []


def test_glossary_terms_are_suggested_then_enforced():
    glossary = {"pull request": "demande de fusion"}
    # The model ignores the suggestion, so the retry protects the term and restores it as required.
    tr, gen = translator([" Ouvrez une requête de tirage.\n", " Ouvrez une ⟦1⟧.\n"])
    result = tr.translate("Open a pull request.", EN, FR, glossary=glossary)
    assert "English: pull request\nFrench: demande de fusion" in gen.prompts[0].text
    assert "pull request" not in gen.prompts[1].text.rsplit("English:", 1)[1]
    assert result.translation == "Ouvrez une demande de fusion."
    assert result.problems == ("first try: glossary term not used: pull request",)


def test_a_glossary_followed_at_once_needs_no_retry():
    tr, _ = translator([" Ouvrez une demande de fusion.\n"])
    result = tr.translate("Open a pull request.", EN, FR, glossary={"pull request": "demande de fusion"})
    assert result.attempts == 1 and result.translation == "Ouvrez une demande de fusion."


# -- prompts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,expected",
    [
        ("Hunyuan-MT-7B", "hunyuan-mt"),
        ("Seed-X-PPO-7B", "seed-x"),
        ("TowerInstruct 7B v0.2", "tower"),
        ("translategemma-4b-it", "translategemma"),
    ],
)
def test_dedicated_translation_models_are_recognised_from_metadata(name, expected):
    assert choose_strategy({"general.name": name}, has_chat_template=True).name == expected


def test_generic_strategies_and_overrides():
    assert choose_strategy({"general.name": "SmolLM2"}, has_chat_template=True).name == "instruction"
    assert choose_strategy({"general.name": "Gemma 3 270m"}, has_chat_template=False).name == "few-shot"
    assert choose_strategy({"general.name": "Tower"}, True, override="few-shot").name == "few-shot"
    with pytest.raises(BadInputError, match="chat template"):
        choose_strategy({}, has_chat_template=False, override="instruction")
    with pytest.raises(BadInputError, match="unknown"):
        choose_strategy({}, True, override="nonsense")


def test_prompt_formats_say_the_languages_and_the_text():
    request = TranslationRequest("Hello ⟦1⟧.", EN, resolve_language("de"))
    seed = choose_strategy({"general.name": "Seed-X"}, True).build(request)
    assert (
        seed.kind == "completion"
        and seed.text == "Translate the following English sentence into German:\nHello ⟦1⟧. <de>"
    )
    tower = choose_strategy({"general.name": "TowerInstruct"}, True).build(request)
    assert tower.messages[0]["content"].endswith("English: Hello ⟦1⟧.\nGerman:")
    hunyuan_zh = choose_strategy({"general.name": "Hunyuan-MT"}, True).build(
        TranslationRequest("Hi", EN, resolve_language("zh"))
    )
    assert hunyuan_zh.messages[0]["content"].startswith("把下面的文本翻译成中文")
    gemma = choose_strategy({"general.name": "TranslateGemma"}, True).build(request)
    assert gemma.special_tokens and gemma.text.endswith("Hello ⟦1⟧.<end_of_turn>\n<start_of_turn>model\n")
    instruction = choose_strategy({}, True).build(request)
    assert "⟦1⟧ into the translation exactly once" in instruction.messages[0]["content"]
    few = FEW_SHOT.build(request)
    assert few.text.startswith("English: Save changes\nGerman: Änderungen speichern\n\n")
    assert few.text.endswith("English: Hello ⟦1⟧.\nGerman:")


def test_few_shot_without_examples_for_a_language_pair_is_zero_shot():
    request = TranslationRequest("Hello.", EN, resolve_language("fi"))
    assert FEW_SHOT.build(request).text == "English: Hello.\nFinnish:"


# -- jobs: lines, documents, events, resume, cancel ---------------------------------------------------


def run_job(text, mode="lines", reply=upper_translation, resume=None, **settings):
    gen = ScriptedGenerator(reply)
    job = TranslationJob(
        SegmentTranslator(gen, FEW_SHOT), text, JobSettings(target=FR, source=EN, mode=mode, **settings), resume
    )
    return job, list(job.run()), gen


def test_piped_lines_come_out_aligned():
    text = "Hello %s.\n\nThe file {name} is open.\n   \nBye now\n"
    _, events, _ = run_job(text)
    out = events[-1].text
    assert out.split("\n") == ["HELLO %s.", "", "THE FILE {name} IS OPEN.", "   ", "BYE NOW", ""]
    assert len(out.split("\n")) == len(text.split("\n"))


def test_events_in_order_with_totals():
    _, events, _ = run_job("one two\nthree four\n")
    assert isinstance(events[0], JobStarted) and events[0].total == 2 and events[0].resumed == 0
    done = [e for e in events if isinstance(e, ChunkDone)]
    assert [(e.index, e.total) for e in done] == [(0, 2), (1, 2)]
    assert isinstance(events[-1], JobFinished) and len(events[-1].results) == 2


def test_streamed_text_reaches_the_callback_during_the_chunk():
    gen = ScriptedGenerator(upper_translation)
    job = TranslationJob(SegmentTranslator(gen, FEW_SHOT), "one two\n", JobSettings(target=FR, source=EN, mode="lines"))
    seen = []
    list(job.run(on_text=seen.append))
    assert [(e.index, e.text.strip()) for e in seen] == [(0, "ONE TWO")]


def test_document_mode_carries_the_previous_chunk_of_the_paragraph_as_context():
    paragraph = " ".join(f"Sentence {n} has five words." for n in range(6))  # 30 words: two chunks of <= 16
    job, _, gen = run_job(f"{paragraph}\n\nAnother paragraph stands alone.\n", mode="document", max_chunk_tokens=16)
    assert len(job.chunks) == 3 and job.chunks[0].piece == job.chunks[1].piece != job.chunks[2].piece
    # Sentence by sentence (a base model's prompt): each prompt ends with the sentence it asks for.
    asked = {p.text.rsplit("English: ", 1)[1].removesuffix("\nFrench:"): p.text for p in gen.prompts}
    first_chunk, first_of_second_chunk = job.chunks[0].text, job.chunks[1].text.split(". ")[0] + "."
    assert f"English: {first_chunk}\nFrench: {first_chunk.upper()}\n\n" in asked[first_of_second_chunk]
    # A new paragraph starts afresh, as it does with --parallel (where paragraphs are in flight together).
    assert "Sentence" not in asked["Another paragraph stands alone."]


def test_same_language_is_copied_without_the_model():
    gen = ScriptedGenerator(upper_translation)
    job = TranslationJob(
        SegmentTranslator(gen, FEW_SHOT), "Bonjour.\n", JobSettings(target=FR, source=FR, mode="lines")
    )
    assert list(job.run())[-1].text == "Bonjour.\n" and gen.prompts == []


def test_cancel_stops_and_resume_skips_what_was_done(tmp_path):
    sidecar = tmp_path / ".out.md.translation.jsonl"
    settings = {"model": "fake", "to": "fr"}
    gen = ScriptedGenerator(upper_translation)
    log = ResumeLog(sidecar, settings)
    job = TranslationJob(
        SegmentTranslator(gen, FEW_SHOT),
        "one a\ntwo b\nthree c\n",
        JobSettings(target=FR, source=EN, mode="lines"),
        log,
    )
    events = []
    for event in job.run():
        events.append(event)
        if isinstance(event, ChunkDone) and event.index == 0:
            job.cancel()  # as Ctrl-C or the UI's cancel button would, mid-document
    log.close()
    assert isinstance(events[-1], JobCancelled) and events[-1].done == 1
    assert not any(isinstance(e, JobFinished) for e in events)

    log = ResumeLog(sidecar, settings)
    assert log.done == {"one a": "ONE A"}
    job, events, gen = run_job("one a\ntwo b\nthree c\n", resume=log)
    assert events[0].resumed == 1 and len(gen.prompts) == 2
    assert events[-1].text == "ONE A\nTWO B\nTHREE C\n"
    assert events[-1].results[0].resumed


# In a child: the file-size limit is per process (Python ignores SIGXFSZ, so writes fail with EFBIG).
SIDECAR_PAST_THE_LIMIT = """
import os, resource, sys
from pathlib import Path
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.translate import ResumeLog
sidecar = Path(sys.argv[1])
log = ResumeLog(sidecar, {"to": "fr"})
log.record("one a", "ONE A")
resource.setrlimit(resource.RLIMIT_FSIZE, (sidecar.stat().st_size, resource.RLIM_INFINITY))
try:
    log.record("two b", "TWO B " * 1000)
except LlamadeskError as err:
    print(err)
log.close()  # what a caller's cleanup may do next: no second error, here or at exit
print(ResumeLog(sidecar, {"to": "fr"}).done)
"""


def test_a_sidecar_that_cannot_grow_is_one_line_naming_it_and_keeps_what_was_done(tmp_path):
    # A translation to a full disk ended on "the disk is full (while writing)" or "File too large".
    import subprocess
    import sys

    sidecar = tmp_path / ".out.md.translation.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", SIDECAR_PAST_THE_LIMIT, str(sidecar)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [
        f"{sidecar} could not be written: it grew past the largest file this process may write (`ulimit -f`) "
        "or its file system holds (FAT32: 4 GiB); raise the limit or write it to another disk",
        "{'one a': 'ONE A'}",  # a rerun resumes with what was done
    ]


def test_a_sidecar_in_a_folder_that_takes_no_file_is_one_line_naming_it(tmp_path):
    # /proc takes no new file: a bare "No such file or directory" and exit 1.
    sidecar = Path("/proc/.out.txt.translation.jsonl")
    with pytest.raises(BadInputError) as err:
        ResumeLog(sidecar, {"to": "fr"}).record("one a", "UN A")
    assert str(err.value) == (
        f"cannot write the resume sidecar {sidecar} beside the output (No such file or directory); "
        "give -o a file in a folder you can write to"
    )


def test_a_link_in_the_sidecar_s_place_is_refused_and_its_target_kept(tmp_path):
    # The link was followed: its target (a stranger's notes) was emptied and filled with JSON.
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    sidecar = tmp_path / ".out.md.translation.jsonl"
    sidecar.symlink_to(notes)
    with pytest.raises(BadInputError, match="is a symbolic link in the way of the resume sidecar; remove it"):
        ResumeLog(sidecar, {"to": "fr"})
    # A link put there after the sidecar was read is not written through either.
    sidecar.unlink()
    log = ResumeLog(sidecar, {"to": "fr"})
    sidecar.symlink_to(notes)
    with pytest.raises(BadInputError, match="cannot write the resume sidecar"):
        log.record("one a", "UN A")
    assert notes.read_text() == "my notes\n" and sidecar.is_symlink()
    # Nor a hard link: O_TRUNC emptied the other name's file (a sidecar of other settings is started afresh).
    sidecar.unlink()
    os.link(notes, sidecar)
    with pytest.raises(BadInputError, match="is a hard link in the way of the resume sidecar"):
        ResumeLog(sidecar, {"to": "fr"})
    sidecar.unlink()
    log = ResumeLog(sidecar, {"to": "fr"})
    os.link(notes, sidecar)
    with pytest.raises(BadInputError, match="hard link"):
        log.record("one a", "UN A")
    assert notes.read_text() == "my notes\n"


def test_a_sidecar_is_as_private_as_the_file_it_stands_beside(tmp_path):
    # With --update, a 0600 catalog's messages went into a 0644 sidecar.
    for mode in (0o600, 0o640):
        sidecar = tmp_path / f"{mode:o}.jsonl"
        log = ResumeLog(sidecar, {"to": "fr"}, mode)
        log.record("one a", "UN A")
        log.close()
        assert sidecar.stat().st_mode & 0o777 == mode
    catalog = tmp_path / "fr.po"
    catalog.write_text("")
    catalog.chmod(0o600)
    assert existing_mode(catalog) == 0o600 and existing_mode(tmp_path / "missing.po") is None


def test_a_sidecar_for_other_settings_is_not_used(tmp_path):
    sidecar = tmp_path / "s.jsonl"
    log = ResumeLog(sidecar, {"to": "de"})
    log.record("one a", "EINS A")
    log.close()
    assert ResumeLog(sidecar, {"to": "fr"}).done == {}
    sidecar.write_text(sidecar.read_text() + '{"source": "cut sho', encoding="utf-8")
    assert ResumeLog(sidecar, {"to": "de"}).done == {"one a": "EINS A"}, "a torn last line is ignored"


def test_cancel_during_generation_ends_with_cancelled():
    gen = ScriptedGenerator(upper_translation)
    gen.stop_after = 1  # the second model call is stopped mid-way
    job = TranslationJob(
        SegmentTranslator(gen, FEW_SHOT), "one a\ntwo b\n", JobSettings(target=FR, source=EN, mode="lines")
    )
    events = list(job.run())
    assert isinstance(events[-1], JobCancelled) and events[-1].done == 1


def test_segment_of_helper_reads_the_last_source_line():
    assert segment_of(Prompt("completion", text="English: a\nFrench: b\n\nEnglish: c d\nFrench:")) == "c d"


def test_the_pieces_around_spans_are_asked_for_together():
    """The fallback's pieces are independent, so they go to the model in one generate_all call
    (a batched model then decodes them side by side)."""
    replies = [" Bonjour ⟦1⟧, vous avez messages.\n", " Bonjour ⟦1⟧, messages.\n"]
    replies += [" Bonjour\n", " , vous avez\n", " nouveaux\n"]  # the three pieces
    tr, generator = translator(replies)
    asked: list[int] = []
    generate_all = generator.generate_all
    generator.generate_all = lambda prompts, budgets: asked.append(len(prompts)) or generate_all(prompts, budgets)
    result = tr.translate("Hello %s, you have %d new messages", EN, FR)
    assert result.fallback == "piecewise" and asked == [3]


def test_a_segment_copied_twice_is_translated_around_its_spans():
    replies = [" Invalid value ⟦1⟧ given\n", " Invalid value ⟦1⟧ given\n", " Valeur invalide\n", " donnée\n"]
    tr, _ = translator(replies)
    result = tr.translate("Invalid value %(v)s given", EN, FR)
    assert result.fallback == "piecewise" and result.translation == "Valeur invalide %(v)s donnée"


def test_a_stop_during_the_chat_template_render_is_a_generation_stop():
    from llamadesk.app.core.errors import Interrupted
    from llamadesk.app.translate.generation import EngineGenerator, GenerationStopped
    from llamadesk.app.translate.prompts import Prompt

    class StoppedWhileRendering:
        def chat_prompt_tokens(self, messages):
            raise Interrupted("stopped")

        def stream_tokens(self, tokens, sampling, *, shelve=False):
            raise AssertionError("nothing is decoded once the render was stopped")

    generator = EngineGenerator(StoppedWhileRendering())
    with pytest.raises(GenerationStopped):
        generator.generate(Prompt("chat", messages=({"role": "user", "content": "Hello"},)), max_tokens=8)


# -- Markdown links ------------------------------------------------------------------------------


def test_markdown_link_checks_after_restoration():
    source = "See [the docs](https://example.com) and [the FAQ](faq.md)."
    assert broken_links(source, "Voir [la doc](https://example.com) et [la FAQ](faq.md).") == []
    assert broken_links(source, "Voir [la doc] (https://example.com) et [la FAQ](faq.md).") == [
        "link broken: […](https://example.com)"
    ]
    assert broken_links(source, "Voir [](https://example.com) et [la FAQ](faq.md).") == ["a link's text is empty"]
    source = "Read [the user guide](guide.md) and [the release notes](notes.md)."
    assert untranslated_link_texts(source, "Lisez [le guide](guide.md) et [the release notes](notes.md).") == [
        "the release notes"
    ]
    assert untranslated_link_texts(source, source) == []  # a copy: the copy check's business


def test_a_link_the_model_breaks_is_repaired_by_translating_around_it():
    # Both whole-sentence answers put the closing marker first (the link would be "](url)text[");
    # the fallback translates the words between the markers, which keeps the link by construction.
    replies = [" Voir ⟦2⟧la documentation⟦1⟧.\n", " Voir ⟦2⟧la doc⟦1⟧.\n", " Voir\n", " la documentation\n"]
    tr, _ = translator(replies)
    result = tr.translate("See [the docs](https://example.com).", EN, FR)
    assert result.translation == "Voir [la documentation](https://example.com)."
    assert result.fallback == "piecewise"
    assert any("link broken" in p for p in result.problems)


def test_a_link_text_left_in_english_is_retried_then_flagged():
    source = "Read [the user guide](guide.md) and [the release notes](notes.md)."
    kept = " Lisez ⟦1⟧le guide⟦2⟧ et ⟦3⟧the release notes⟦4⟧.\n"
    tr, gen = translator([kept, " Lisez ⟦1⟧le guide⟦2⟧ et ⟦3⟧les notes de version⟦4⟧.\n"])
    result = tr.translate(source, EN, FR)
    assert result.translation == "Lisez [le guide](guide.md) et [les notes de version](notes.md)."
    assert result.problems == ("first try: link text not translated: 'the release notes'",)
    tr, gen = translator([kept, kept])
    result = tr.translate(source, EN, FR)
    assert "[the release notes](notes.md)" in result.translation
    assert result.problems[-1] == "retry: link text not translated: 'the release notes'"
    assessed = assess(result, EN, FR)
    assert assessed.confidence is not None and assessed.confidence <= 0.5
    assert any("link text not translated" in reason for reason in assessed.confidence_reasons)


def test_reference_definitions_and_shortcut_links_stay_byte_identical():
    text = 'Read [the guide][guide] and [CONTRIBUTING].\n\n[guide]: https://example.com/guide "The guide"\n'
    tr, gen = translator(upper_translation)
    job = TranslationJob(tr, text, JobSettings(target=FR, source=EN))
    finished = next(e for e in job.run() if isinstance(e, JobFinished))
    assert finished.text == (
        'READ [THE GUIDE][guide] AND [CONTRIBUTING].\n\n[guide]: https://example.com/guide "The guide"\n'
    )
    assert len(gen.prompts) == 1  # the definition line never reached the model
