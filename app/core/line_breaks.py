"""Splitting text at a terminal's line breaks, for one-line fields (a title, a file name).

str.splitlines also breaks at U+2028, U+2029, U+0085 and the C0 separators, which a file name or
a title may hold: a pasted path was cut there, and a title shown whole in its dialog was saved cut.
"""

from __future__ import annotations

import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")


def text_lines(text: str) -> list[str]:
    """`text` split at its line breaks (a trailing one ends the last line; it does not begin another)."""
    return LINE_BREAK.split(text.rstrip("\r\n")) if text else []
