"""Reading the text to translate (a file, piped stdin, a glossary) with a bound on its size.

A long novel is about 1 MB of text and takes a small model hours; more is a mistake, or a device
with no end such as /dev/zero, and is refused before it fills memory. Whatever the source, at most
one byte past the limit is read.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError

MAX_INPUT_BYTES = 8 * 1024**2


def read_source_file(path: Path, name: str | None = None, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of `path`; BadInputError (naming it as `name`) for a folder, a missing file,
    a file over `max_bytes` or bytes that are not UTF-8."""
    name = name or str(path)
    return _decoded(read_source_bytes(path, name, max_bytes), name, max_bytes)


def read_source_text(path: Path, name: str | None = None) -> str:
    """The UTF-8 text of `path` with its line endings as they are.

    The segmenter keeps every line ending in place, so a translation has the file's own, mixed
    ones included. Converting to the first line's ending instead changed the bytes of code (a
    fenced block of CRLF lines in an LF file came back LF, a lone CR in a code line became a line
    break), and a Windows repository's Markdown had come back LF before that.
    """
    name = name or str(path)
    return _decoded(read_source_bytes(path, name), name, MAX_INPUT_BYTES, keep_line_endings=True)


def read_source_bytes(path: Path, name: str | None = None, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of `path` as they are (a structured file's format reads them, line endings and
    all); BadInputError for a folder, a missing file or a file over `max_bytes`."""
    name = name or str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise BadInputError(f"{name} is a folder; give a text file")
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            raise _too_large(name, max_bytes)
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise BadInputError(f"{name}: no such file") from None
    if len(raw) > max_bytes:
        raise _too_large(name, max_bytes)
    return raw


def read_source_stream(stream: BinaryIO, name: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a stream (piped stdin), read to its end or to the limit, whichever is first."""
    return _decoded(stream.read(max_bytes + 1), name, max_bytes)


def _decoded(raw: bytes, name: str, max_bytes: int, keep_line_endings: bool = False) -> str:
    if len(raw) > max_bytes:
        raise _too_large(name, max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{name} is not UTF-8 text; convert it to UTF-8 first (e.g. with iconv)") from None
    if keep_line_endings:
        return text
    # Newlines as Python's text mode reads them (a glossary's, piped lines' ends).
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _too_large(name: str, max_bytes: int) -> BadInputError:
    return BadInputError(
        f"{name} is larger than {format_bytes(max_bytes)}, more than one translation should take; "
        "split it into smaller files"
    )
