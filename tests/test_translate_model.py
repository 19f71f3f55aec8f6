"""Translation with the real gemma3-270m starter through real llama.cpp, and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from llamadesk.app.translate import JobFinished, JobSettings, TranslationJob, resolve_language, translator_for
from llamadesk.app.translate.protection import find_spans
from tests.conftest import LLAMADESK, PINNED_FLAGS, PINNED_LOAD, run_cli
from tests.language_check import language_of

pytestmark = pytest.mark.slow

SENTENCES = [
    "Hello %s, you have %d new messages.",
    "The file {name} could not be opened.",
    "Please visit https://example.com/help or write to support@example.com.",
    "Ensure this value has at most %(limit_value)d characters.",
]
# Pinned (one thread among them: on a busy shared machine two llama.cpp threads wait on each other
# and crawl), so the translations are the same on every machine.
THREADS = list(PINNED_FLAGS)


@pytest.fixture(scope="module")
def gemma_translator(gemma_path):
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    with Engine.load(gemma_path, LoadSettings(n_ctx=2048, **PINNED_LOAD)) as engine:
        yield translator_for(engine)


def test_the_starter_is_prompted_as_a_base_model(gemma_translator):
    assert gemma_translator.strategy.name == "few-shot"


@pytest.mark.parametrize("target", ["fr", "de", "es"])
def test_english_to_target_keeps_every_placeholder(gemma_translator, target):
    english, language = resolve_language("en"), resolve_language(target)
    outputs = []
    for sentence in SENTENCES:
        result = gemma_translator.translate(sentence, english, language)
        out = result.translation
        assert out.strip(), f"empty translation of {sentence!r}"
        assert out != sentence, f"{sentence!r} came back untranslated"
        assert "⟦" not in out and "⟧" not in out
        assert "\n" not in out, "one segment in, one line out"
        for start, end, _ in find_spans(sentence):
            assert sentence[start:end] in out, f"{sentence[start:end]!r} lost in {out!r} ({result.problems})"
        outputs.append(out)
    assert language_of(" ".join(outputs)) == target, outputs


def test_a_markdown_document_keeps_its_structure(gemma_translator):
    doc = (
        "# Welcome\n\nThis is a short guide.\n\n```\npip install llamadesk\n```\n\n"
        "- Open the file.\n- Save your work.\n"
    )
    job = TranslationJob(
        gemma_translator, doc, JobSettings(target=resolve_language("fr"), source=resolve_language("en"))
    )
    events = list(job.run())
    assert isinstance(events[-1], JobFinished)
    out = events[-1].text
    lines = out.split("\n")
    assert len(lines) == len(doc.split("\n"))
    assert lines[0].startswith("# ") and lines[0] != "# Welcome"
    assert "```\npip install llamadesk\n```" in out
    assert lines[8].startswith("- ") and lines[9].startswith("- ")


def test_cli_translates_piped_lines_in_place():
    text = "Good morning.\n\nThe file {name} could not be opened.\nHello %s!\n"
    proc = run_cli("translate", "--to", "fr", "--from", "en", *THREADS, input=text)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert len(lines) == len(text.split("\n"))
    assert lines[1] == "" and lines[4] == ""
    assert all(lines[i].strip() for i in (0, 2, 3))
    assert "{name}" in lines[2] and "%s" in lines[3]
    assert lines[0] != "Good morning."


def test_cli_output_dash_is_stdout_as_input_dash_is_stdin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it wrote a file named "-" here
    proc = run_cli("translate", "--to", "fr", "--from", "en", "-o", "-", *THREADS, input="Good morning.\n")
    assert proc.returncode == 0 and proc.stdout.strip() and proc.stdout != "Good morning.\n", proc.stderr
    assert not (tmp_path / "-").exists()


def test_cli_json_detects_the_source_and_times_segments():
    proc = run_cli("translate", "--to", "es", "--json", *THREADS, input="This field is required.\n")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source_language"] == "en" and report["source_detected"]
    assert report["strategy"] == "few-shot" and report["target_language"] == "es"
    [segment] = report["segments"]
    assert segment["source"] == "This field is required." and segment["translation"].strip()
    assert segment["seconds"] > 0 and segment["attempts"] >= 1


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("translate", "--to", "klingonese", input="Hello\n")
    assert proc.returncode == 2 and "unknown language" in proc.stderr and "Traceback" not in proc.stderr
    existing = tmp_path / "out.txt"
    existing.write_text("keep me")
    proc = run_cli("translate", "--to", "fr", "-o", str(existing), input="Hello\n")
    assert proc.returncode == 2 and "--force" in proc.stderr and existing.read_text() == "keep me"
    proc = run_cli("translate", "--to", "fr", "--glossary", str(tmp_path / "none.txt"), input="Hello\n")
    assert proc.returncode == 2 and "no such file" in proc.stderr


@pytest.mark.parametrize(
    "name, content",
    [("code.md", "# 1.2\n\n```\nprint('hello world')\n```\n"), ("numbers.txt", "42 %s https://example.com/page\n")],
)
def test_cli_input_without_words_is_refused_before_the_model_loads(tmp_path, name, content):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    out = tmp_path / f"out-{name}"
    missing_model = str(tmp_path / "no-such-model.gguf")  # never reached: the input is refused first
    for extra in ((), ("--from", "en")):
        proc = run_cli("translate", "--to", "fr", *extra, str(source), "-o", str(out), "-m", missing_model)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
            "llamadesk: nothing to translate: the input has no words outside code, links and placeholders"
        ], proc.stderr
    assert not out.exists()


def test_cli_glossary_is_enforced(tmp_path):
    glossary = tmp_path / "terms.txt"
    glossary.write_text("pull request = demande de fusion\n", encoding="utf-8")
    proc = run_cli(
        "translate",
        "--to",
        "fr",
        "--from",
        "en",
        "--glossary",
        str(glossary),
        *THREADS,
        input="Open a pull request on the project.\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert "demande de fusion" in proc.stdout


def test_cli_ctrl_c_keeps_finished_segments_and_the_next_run_resumes(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text(
        "".join(f"This is sentence number {n} of the test file.\n\n" for n in range(1, 9)), encoding="utf-8"
    )
    out = tmp_path / "notes.fr.txt"
    sidecar = tmp_path / ".notes.fr.txt.translation.jsonl"
    # One segment at a time, so Ctrl-C lands between segments (a parallel run's cancel is
    # tests/test_translate_parallel.py's): with 8 in flight, all 8 can finish together.
    command = [str(LLAMADESK), "translate", "--to", "fr", "--from", "en", str(source), "-o", str(out), *THREADS]
    command += ["--parallel", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not sidecar.exists() or sidecar.read_text().count("\n") < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "resume" in stderr and "Traceback" not in stderr
    assert not out.exists(), "no half-written output under the final name"
    kept = sidecar.read_text().count("\n") - 1  # the first line holds the settings
    assert 2 <= kept < 8

    proc = run_cli("translate", "--to", "fr", "--from", "en", str(source), "-o", str(out), "--json", *THREADS)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert sum(s["resumed"] for s in report["segments"]) >= kept
    assert len(report["segments"]) == 8
    assert out.read_text(encoding="utf-8").count("\n") == source.read_text().count("\n")
    assert not sidecar.exists(), "the sidecar goes once the output is complete"


def test_cli_candidates_keep_one_answer_per_line_and_repeat():
    """--candidates 4 (two answers of the usual prompt and one of each prompt with the shipped
    corpus's 3 and 5 nearest examples, or two of one where both would show the same, greedy then
    sampled, one kept) on the real model: one Spanish line per input line, and the same answer on a
    second run (the samples' seeds are fixed)."""
    command = ("translate", "--to", "es", "--from", "en", "--candidates", "4", *THREADS)
    args = (*command, "--parallel", "2")
    first = run_cli(*args, input="Change my password.\n")
    assert first.returncode == 0, first.stderr
    out = first.stdout.strip()
    assert out and out != "Change my password." and "\n" not in out
    assert language_of(out) == "es", out
    assert run_cli(*args, input="Change my password.\n").stdout == first.stdout
    # One segment at a time, the candidates decode one after another on the engine's own stream.
    single = run_cli(*command, "--parallel", "1", input="Change my password.\n")
    assert single.returncode == 0, single.stderr
    assert language_of(single.stdout.strip()) == "es", single.stdout


def test_cli_refuses_a_candidate_count_out_of_range():
    for count in ("0", "1", "33"):  # 0 quietly turned candidates off
        proc = run_cli("translate", "--to", "es", "--candidates", count, input="Hello\n")
        assert proc.returncode == 2 and proc.stderr.startswith(f"llamadesk: --candidates {count}: give 2 to 32")
        assert proc.stderr.count("\n") == 1 and not proc.stdout


def test_a_file_name_after_candidates_is_told_to_come_first(tmp_path):
    # The help's own example, `--candidates notes.md`, said only "invalid int value: 'notes.md'".
    notes = tmp_path / "notes.md"
    notes.write_text("Good morning.\n", encoding="utf-8")
    proc = run_cli("translate", "--to", "es", "--candidates", str(notes))
    assert proc.returncode == 2 and f"{str(notes)!r} is not a number of answers; give the file first" in proc.stderr
    assert "llamadesk translate notes.md --to es --candidates " in run_cli("translate", "--help").stdout


def test_cli_context_comes_from_the_flag_then_load_json_then_the_default(tmp_path, gemma_path):
    # The parser's default (--ctx 4096) counted as a flag, so load.json's "ctx" was never used.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "load.json").write_text(json.dumps({"ctx": 64, "threads": 1}))
    env = {"LLAMADESK_HOME": str(tmp_path)}
    command = ("translate", "--to", "fr", "--from", "en", "-m", str(gemma_path), "--parallel", "1")
    from_file = run_cli(*command, input="Where is the station?\n", env=env)
    assert from_file.returncode == 0, from_file.stderr
    assert "the context holds 64" in from_file.stderr  # the 130-token prompt does not fit 64
    from_flag = run_cli(*command, "--ctx", "2048", input="Where is the station?\n", env=env)
    assert from_flag.returncode == 0 and "the context holds" not in from_flag.stderr, from_flag.stderr


def test_cli_resumes_only_with_the_same_model_file(tmp_path, gemma_path, monkeypatch):
    # The sidecar named the model by general.name alone: a run interrupted with one quantization
    # resumed with another file's model (same name), and the output mixed two models' segments.
    from llamadesk.app.translate import ResumeLog

    source = tmp_path / "notes.txt"
    source.write_text("Where is the station?\n", encoding="utf-8")
    out = tmp_path / "notes.fr.txt"
    sidecar = tmp_path / ".notes.fr.txt.translation.jsonl"
    same_model = tmp_path / "same-model.gguf"  # the same bytes under another path: another file
    try:
        os.link(gemma_path, same_model)
    except OSError:  # another file system
        shutil.copyfile(gemma_path, same_model)
    monkeypatch.setattr(ResumeLog, "finish", ResumeLog.close)  # keep the sidecar as an interrupted run does

    def translate(model) -> str:
        command = ("translate", "--to", "fr", "--from", "en", str(source), "-o", str(out), "--force")
        done = run_cli(*command, "-m", str(model), "--parallel", "1", *THREADS)
        assert done.returncode == 0, done.stderr
        return out.read_text(encoding="utf-8")

    translate(gemma_path)
    lines = sidecar.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[1])
    lines[1] = json.dumps({"source": entry["source"], "translation": "MARKED AS RESUMED"})
    sidecar.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "MARKED AS RESUMED" in translate(gemma_path)  # the same file resumes
    assert "MARKED AS RESUMED" not in translate(same_model)  # another file starts afresh
