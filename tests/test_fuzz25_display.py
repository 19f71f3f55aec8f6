"""Text from a GGUF, and a file's own name, reach the terminal as text: control characters are shown
(^[ for ESC), never obeyed, and every message stays one line.

A general.name of "ESC ]0;... BEL ESC [2J" retitled the terminal and cleared the screen in `info`
and in `chat`'s refusal line; a file named "evil<newline>llamadesk: everything is fine.gguf" forged
a second message line.
"""

from __future__ import annotations

from pathlib import Path

from llamadesk.app.core.gguf_file import NAME_CHARS, inspect_gguf
from tests.conftest import run_cli
from tests.fuzz import gguf_mutants as gm

EVIL_NAME = "\x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[31mEvil\x1b[0m"


def starter_copy(dest: Path, **strings: str) -> Path:
    """The SmolLM2 starter with some string keys changed (key=value, dots as '__')."""
    layout = gm.deepcopy(gm.BASE.layout)
    for key, value in strings.items():
        layout.set(key.replace("__", "."), gm.STR, value)
    head = layout.encode()
    with dest.open("wb") as out, gm.BASE.path.open("rb") as source:
        out.write(head + bytes(-len(head) % layout.alignment))
        source.seek(gm.BASE.file_size - layout.data_size)
        out.write(source.read())
    return dest


def test_info_shows_control_characters_from_the_file_instead_of_sending_them(tmp_path):
    path = starter_copy(tmp_path / "evil.gguf", general__name=EVIL_NAME, general__license="MIT\x1b[2J\nmore")
    done = run_cli("info", str(path))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[1].startswith("  ^[]0;PWNED-TITLE^G^[[2J^[[31mEvil^[[0m: llama, 135M parameters")
    assert "  general.name = ^[]0;PWNED-TITLE^G^[[2J^[[31mEvil^[[0m" in lines
    assert "  general.license = MIT^[[2J\\nmore" in lines


def test_a_direction_override_in_a_name_is_shown_not_obeyed(tmp_path):
    # U+202E printed the rest of `info`'s line backwards (the hub's listing already showed it).
    path = starter_copy(tmp_path / "rlo.gguf", general__name="Smol\u202egnp.exe\u2066x\u2069")
    done = run_cli("info", str(path))
    assert done.returncode == 0, done.stderr
    assert not any(c in done.stdout for c in "\u202e\u2066\u2069")
    assert "Smol\ufffdgnp.exe\ufffdx\ufffd" in done.stdout


def test_a_huge_name_is_cut_in_the_summary(tmp_path):
    path = starter_copy(tmp_path / "long.gguf", general__name="\0" * 100_000)
    name = inspect_gguf(path).name
    assert name == "^@" * NAME_CHARS + "..."


def test_a_file_name_with_a_newline_stays_in_one_message_line(tmp_path):
    path = tmp_path / "evil\nllamadesk: everything is fine.gguf"
    path.write_bytes(b"GGUF")
    done = run_cli("info", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"llamadesk: {tmp_path}/evil^Jllamadesk: everything is fine.gguf is a damaged GGUF file: "
        "it is only 4 bytes long; download or convert it again\n"
    )
