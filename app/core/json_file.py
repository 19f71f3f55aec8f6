"""Read a JSON object from a file that may come from a stranger, with its size and depth checked.

Configs, tokenizers and headers are small and shallow; a file that is huge, nested thousands of
levels deep (Python's parser then recurses until RecursionError, and every reader after it walks
the same depth), not UTF-8, or not an object at all is damaged or hostile. Each is refused here,
before parsing, with one line that names the file, so every reader of JSON gets the same guarantees.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError

DEFAULT_MAX_BYTES = 16 * 1024**2  # configs are kilobytes; the largest tokenizer.json files ~30 MB
DEFAULT_MAX_DEPTH = 64  # real files nest fewer than ten levels

# A JSON string (brackets inside strings do not nest), and an innermost empty pair of brackets.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(r"\[\]|\{\}")


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether `text` nests arrays/objects more than `max_depth` deep, found without recursion.

    Strings are blanked out, everything but brackets is dropped, then innermost pairs are removed
    one level per pass (each pass is a C-speed regex over the remaining brackets). Unbalanced
    brackets stop shrinking before the limit: that is a syntax error, left to the parser to report.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return False
        reduced = _INNERMOST_PAIR.sub("", brackets)
        if reduced == brackets:
            return False
        brackets = reduced
    return bool(brackets)


def parse_json_object(text: str, source: str, what: str, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """`text` as a JSON object; BadInputError naming `source` (a path) and `what` (e.g. "model config") if not."""
    if nesting_exceeds(text, max_depth):
        raise BadInputError(f"{source}: the {what} is nested more than {max_depth} levels deep; the file is damaged")
    try:
        data = json.loads(text)
    except ValueError as err:  # JSONDecodeError, and ints longer than Python converts
        raise BadInputError(f"{source}: the {what} is not valid JSON ({err}); the file is damaged") from None
    except RecursionError:  # only if the caller allows more depth than the interpreter has stack
        raise BadInputError(f"{source}: the {what} is nested too deep to read; the file is damaged") from None
    if not isinstance(data, dict):
        raise BadInputError(
            f"{source}: the {what} must be a JSON object, not {type(data).__name__}; the file is damaged"
        )
    if _SURROGATE_ESCAPE.search(text) and holds_lone_surrogate(data):
        raise BadInputError(
            f"{source}: the {what} holds a \\uD800-\\uDFFF escape without its pair (half a character, "
            "which no text can hold); the file is damaged"
        )
    return data


# JSON may spell half of a UTF-16 pair alone ("\ud800"); Python reads it as a lone surrogate, a
# str that cannot be encoded, which fails far from here (printing it, storing it in SQLite,
# tokenizing it). Looked for only when the text has such an escape at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def holds_lone_surrogate(value: Any) -> bool:
    """Whether any string (or key) in a parsed JSON value is not encodable text."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def read_json_object(
    path: Path, what: str, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> dict[str, Any]:
    """The JSON object in `path`, or BadInputError naming the file and saying what is wrong with it.

    `what` names the file's role for the message ("model config", "tokenizer"). The file must be a
    regular file of at most `max_bytes` (checked before reading, and the read itself is capped, so
    a file that grows or a device never fills memory), UTF-8 (a BOM is allowed), at most
    `max_depth` levels deep, and hold an object.
    """
    try:
        # stat before open: opening a FIFO would wait for a writer forever.
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise BadInputError(f"{path}: the {what} is not a regular file")
        if info.st_size > max_bytes:
            raise BadInputError(
                f"{path}: the {what} is {format_bytes(info.st_size)}, more than the {format_bytes(max_bytes)} "
                "such a file can be; it is damaged or not what its name says"
            )
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as err:
        raise BadInputError(f"{path}: the {what} cannot be read ({err.strerror or err})") from None
    if len(raw) > max_bytes:
        raise BadInputError(f"{path}: the {what} grew past {format_bytes(max_bytes)} while being read")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: the {what} is not UTF-8 text; the file is damaged") from None
    return parse_json_object(text, str(path), what, max_depth)
