"""A text file without an extension (`notes`, `LICENSE`) is translated as plain text, exactly as a
`.txt` file is, through the CLI: the real gemma3-270m starter, pinned loading, greedy decoding.
"""

from __future__ import annotations

import json

import pytest

from llamadesk.app.translate.formats import reads_as_markdown
from tests.conftest import PINNED_FLAGS, run_cli

PINNED = [*PINNED_FLAGS, "--from", "en"]
# A letter whose indented paragraphs Markdown would read as code, left in English.
LETTER = b"Meeting notes\n\n    The budget was approved by everyone today.\n    Next meeting is on Monday morning.\n"


def translated(path) -> dict:
    proc = run_cli("translate", "--to", "fr", str(path), "--json", *PINNED)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_a_file_without_an_extension_is_translated_as_its_txt_twin(tmp_path):
    # `notes` was read as Markdown: its indented paragraphs were code and came out in English.
    reports = {}
    for name in ("notes.txt", "notes", "LICENSE"):
        source = tmp_path / name
        source.write_bytes(LETTER)
        report = translated(source)
        reports[name] = ([segment["source"] for segment in report["segments"]], report["text"])
    assert any("budget was approved" in source for source in reports["notes.txt"][0]), reports
    assert reports["notes"] == reports["notes.txt"] == reports["LICENSE"]


@pytest.mark.parametrize(
    ("name", "markdown"),
    [
        ("notes", False),
        ("LICENSE", False),
        ("v1.2/notes", False),  # a dot in a folder's name is not the file's extension
        ("notes.txt", False),
        ("NOTES.TXT", False),
        ("notes.md", True),
        ("README.markdown", True),
    ],
)
def test_only_txt_and_extensionless_files_are_plain_text(name, markdown):
    assert reads_as_markdown(name) is markdown


def test_an_extensionless_text_cannot_be_written_into_a_structured_format(tmp_path):
    # Read as text, it would be written as text into a file named .po: refused as a .txt's is.
    for name in ("notes", "notes.txt"):
        source = tmp_path / name
        source.write_bytes(LETTER)
        out = tmp_path / "notes.fr.po"
        proc = run_cli("translate", "--to", "fr", str(source), "-o", str(out), *PINNED)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"{source} is text" in proc.stderr and "name the output notes.fr.txt" in proc.stderr, proc.stderr
        assert not out.exists()
