"""Stored text made safe to draw: control characters are shown, never obeyed by the terminal.

Titles and messages come from anywhere: a paste, `ls --color | llamadesk chat --save`, a model's
reply. Textual hands an ESC in them to the terminal as it is, so a title could rename the
terminal window (OSC 0) and a message could wipe the screen (ESC [2J). Every C0 and C1 control
character but newline and tab is drawn as a stand-in instead: C0 and DEL in caret notation, as
`cat -v` writes them (ESC is ^[), C1 as U+FFFD. Only what is drawn changes: the store, exports
and copies keep the text as it was.
"""

from __future__ import annotations

_STAND_INS = {code: f"^{chr(code ^ 0x40)}" for code in [*range(0x20), 0x7F] if chr(code) not in "\n\t"}
_STAND_INS.update({code: "\ufffd" for code in range(0x80, 0xA0)})
# Unicode's explicit direction overrides and isolates reorder what follows them on the line (a
# model name holding U+202E printed the rest of `info`'s line backwards); right-to-left text
# needs none of them, its direction is in its letters.
BIDI_CONTROLS = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_STAND_INS.update({code: "\ufffd" for code in BIDI_CONTROLS})


def printable(text: str) -> str:
    """`text` with its control characters as visible stand-ins; a Windows line end (CR LF) stays a line end."""
    return text.replace("\r\n", "\n").translate(_STAND_INS)


# One character for one: the Unicode control pictures (ESC is U+241B), for text whose positions
# matter (a TextArea's cursor and selection count characters of the text as it is).
_PICTURES = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
_PICTURES.update({0x7F: "\u2421", **{code: "\ufffd" for code in [*range(0x80, 0xA0), *BIDI_CONTROLS]}})


def printable_in_place(text: str) -> str:
    """`text` with each control character (but newline and tab) as one visible stand-in, so every
    character stays where it was."""
    return text.translate(_PICTURES)
