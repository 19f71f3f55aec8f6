"""The structured files translation mode reads and writes, chosen by the file's extension.

Each format is a module that turns a file into units (file_job.Unit) and renders it back from
their translations, keeping everything that is not text for people: gettext (.po, .pot),
subtitles (.srt, .vtt), html (.html, .htm). Formats are imported only when such a file is read.
"""

from __future__ import annotations

from pathlib import Path

from llamadesk.app.translate.file_job import TranslatableFile
from llamadesk.app.translate.languages import Language

# extension -> format module under llamadesk.app.translate.formats
FORMAT_OF_EXTENSION = {
    ".po": "gettext",
    ".pot": "gettext",
    ".srt": "subtitles",
    ".vtt": "subtitles",
    ".html": "html",
    ".htm": "html",
}


# Text files read as plain text rather than Markdown (JobSettings.markdown): a .txt file, and one
# without an extension (notes, LICENSE), whose indented paragraphs are a letter's, not code to keep.
PLAIN_TEXT_EXTENSIONS = frozenset({".txt", ""})


def format_of(path: str | Path) -> str | None:
    """The format of a file by its extension, or None for text and Markdown."""
    return FORMAT_OF_EXTENSION.get(Path(path).suffix.lower())


def reads_as_markdown(path: str | Path) -> bool:
    """Whether a text file (one `format_of` gives None for) is read as Markdown: any but a .txt file
    and one without an extension, which are plain text."""
    return Path(path).suffix.lower() not in PLAIN_TEXT_EXTENSIONS


def read_translatable(path: str | Path, data: bytes, target: Language, retranslate: bool = False) -> TranslatableFile:
    """The file's units to translate; BadInputError (nothing written) if it is not a valid file of its kind."""
    name = Path(path).name
    kind = format_of(path)
    if kind == "gettext":
        from llamadesk.app.translate.formats.gettext import read_catalog

        return read_catalog(data, name, target, retranslate)
    if kind == "subtitles":
        from llamadesk.app.translate.formats.subtitles import read_subtitles

        return read_subtitles(data, name, target)
    if kind == "html":
        from llamadesk.app.translate.formats.html import read_html

        return read_html(data, name, target)
    raise ValueError(f"not a structured format: {name}")
