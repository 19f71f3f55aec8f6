"""Subtitles (.srt, .vtt) as units to translate, with every byte but the cue text kept.

Our own reader rather than a library's: `srt` and `webvtt-py` rebuild a file from parsed cues
(timestamps re-formatted, VTT notes and styles dropped or rewritten), while a translated file
should differ from its source in the cue text alone. Both formats are blocks separated by blank
lines, so the reader keeps each line as it was (line endings too) and checks the timing lines
strictly: a file with a bad timestamp is refused whole, before any model work. The tests parse
the output with `srt` and `webvtt-py` to show that cues and timing come out identical.

A sentence often runs over two or three cues; translated cue by cue it comes out as fragments
("line by line is fatal"). Cues are therefore grouped until one ends a sentence (at most
MAX_CUES_PER_UNIT), each group is translated as one text with the previous group as context,
and the translation is cut back into the cues in proportion to their source length, at word
boundaries, then wrapped to each cue's original number of lines with the longest line as short
as possible. Dialogue cues ("- Hi." / "- Hello.") keep one line per speaker.

A WebVTT header may say the file's language (`Language: en`, as YouTube's files do): that line is
given the target language's code. SRT has no header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.confidence import FACTORS
from llamadesk.app.translate.file_job import Unit
from llamadesk.app.translate.languages import Language, find_language
from llamadesk.app.translate.segment import SegmentResult

MAX_CUES_PER_UNIT = 4
# A cue that ends like this ends its sentence (closing quotes, brackets and tags aside).
LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")
SENTENCE_END = re.compile(r"[.!?…♪。！？]['\"”’»)\]]*(?:</[a-z]+>)*\s*$", re.IGNORECASE)
DIALOGUE_DASH = re.compile(r"^\s*[-–—]\s*(?=\S)")
# A WebVTT header's language line: the key with what precedes the value, the value, what follows.
HEADER_LANGUAGE = re.compile(r"^(Language[ \t]*:[ \t]*)(\S.*?)([ \t]*)$", re.IGNORECASE)

# ASCII digits only: Python's \d also matches "００" (full width) and "١" (Arabic-Indic), which no
# player reads as a time or a cue number.
_TIME_SRT = r"([0-9]+):([0-5][0-9]):([0-5][0-9])[,.]([0-9]{3})"
_TIME_VTT = r"(?:([0-9]+):)?([0-5][0-9]):([0-5][0-9])\.([0-9]{3})"
TIMING = {
    "srt": re.compile(rf"^\s*{_TIME_SRT}\s*-->\s*{_TIME_SRT}(?:\s.*)?$"),
    "vtt": re.compile(rf"^{_TIME_VTT}[ \t]+-->[ \t]+{_TIME_VTT}(?:[ \t].*)?$"),
}


def _milliseconds(parts: Sequence[str | None]) -> int:
    hours, minutes, seconds, millis = (int(p or 0) for p in parts)
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


@dataclass
class Cue:
    """A cue's text lines (without line endings) and where they sit in the file's lines."""

    first_line: int  # index into SubtitleFile.lines of its first text line
    texts: list[str]
    endings: list[str]


@dataclass
class SubtitleFile:
    lines: list[str]  # the file, line by line with their endings: what is not cue text is kept from here
    cues: list[Cue] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)  # units[i] is the text of cues groups[i]
    # For a unit that is one speaker's line of a dialogue cue, its dash ("- "), kept out of the
    # model's reach; None for a unit of whole cues.
    dashes: list[str | None] = field(default_factory=list)

    def readable(self, index: int, text: str) -> str:
        """Units here hold the file's own text: nothing to show otherwise."""
        return text

    def judge(self, index: int, result: SegmentResult) -> SegmentResult:
        """A group's translation with fewer words than the group has cues leaves the last cues in
        the source language (split_proportionally): low confidence, for a person to look at."""
        cues = len(self.groups[index])
        if self.dashes[index] is not None or cues == 1 or result.confidence is None:
            return result
        if len(result.translation.split()) >= cues:
            return result
        return replace(
            result,
            confidence=result.confidence * FACTORS["cues left in the source"],
            confidence_reasons=(
                *result.confidence_reasons,
                f"too few words for its {cues} cues: the last keep their text",
            ),
        )

    def render(self, results: Sequence[SegmentResult]) -> str:
        new_texts: dict[int, list[str]] = {}  # cue index -> its translated lines
        dialogue_parts: dict[int, list[str]] = {}
        for group, dash, result in zip(self.groups, self.dashes, results, strict=True):
            if dash is not None:
                dialogue_parts.setdefault(group[0], []).append(dash + " ".join(result.translation.split()))
                continue
            cues = [self.cues[i] for i in group]
            sizes = [len(" ".join(t.strip() for t in cue.texts)) for cue in cues]
            for index, cue, portion in zip(group, cues, split_proportionally(result.translation, sizes), strict=True):
                new_texts[index] = wrap_lines(portion, len(cue.texts)) if portion else cue.texts
        new_texts.update(dialogue_parts)
        lines = list(self.lines)
        for index, texts in new_texts.items():
            cue = self.cues[index]
            ending = cue.endings[-1]
            rebuilt = [text + (cue.endings[i] if i < len(cue.endings) - 1 else ending) for i, text in enumerate(texts)]
            # The cue's lines are replaced in place; a cue wrapped to fewer lines leaves empty slots.
            lines[cue.first_line : cue.first_line + len(cue.texts)] = [
                "".join(rebuilt),
                *[""] * (len(cue.texts) - 1),
            ]
        return "".join(lines)


def split_proportionally(text: str, sizes: Sequence[int]) -> list[str]:
    """`text` cut at word boundaries into len(sizes) parts of about the given relative sizes.

    Every part gets at least one word while there are enough words; with fewer words than
    parts, the last parts are empty (their cues keep their source text).
    """
    words = text.split()
    if len(sizes) == 1:
        return [" ".join(words)]
    total_size = sum(sizes) or len(sizes)
    total_chars = sum(len(w) + 1 for w in words)
    ends: list[int] = []  # word index where each part ends
    position, start, cumulative = 0, 0, 0
    for part in range(len(sizes) - 1):
        cumulative += sizes[part]
        wanted = cumulative / total_size * total_chars
        end, chars = start, position
        remaining_parts = len(sizes) - part - 1
        # Take words while that brings the cut nearer to where the proportion puts it, leaving
        # a word for each part still to come (when there are enough).
        limit = min(len(words), max(start + 1, len(words) - remaining_parts))
        while end < limit and (end == start or abs(chars + len(words[end]) + 1 - wanted) <= abs(chars - wanted)):
            chars += len(words[end]) + 1
            end += 1
        ends.append(end)
        start, position = end, chars
    ends.append(len(words))
    parts, start = [], 0
    for end in ends:
        parts.append(" ".join(words[start:end]))
        start = end
    return parts


def wrap_lines(text: str, count: int) -> list[str]:
    """`text` on `count` lines (fewer if it has fewer words), the longest line as short as possible."""
    words = text.split()
    count = max(1, min(count, len(words)))
    if count == 1:
        return [" ".join(words)]

    # starts[j]: the width of words[:j] with a space after each, so a line's width is one subtraction
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(word) + 1)

    def width(i: int, j: int) -> int:
        return starts[j] - starts[i] - 1

    # best[k][j]: the smallest longest line putting words[:j] on k lines (O(count * words²))
    n = len(words)
    best = [[float("inf")] * (n + 1) for _ in range(count + 1)]
    cut = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0
    for k in range(1, count + 1):
        for j in range(k, n + 1):
            for i in range(k - 1, j):
                value = max(best[k - 1][i], width(i, j))
                if value < best[k][j]:
                    best[k][j], cut[k][j] = value, i
    lines, j = [], n
    for k in range(count, 0, -1):
        i = cut[k][j]
        lines.append(" ".join(words[i:j]))
        j = i
    return lines[::-1]


def read_subtitles(data: bytes, name: str, target: Language | None = None) -> SubtitleFile:
    """An .srt or .vtt file's cues as units, a .vtt header's Language line saying `target` (None: as
    it is); BadInputError (naming the line) for a broken file."""
    kind = "vtt" if name.lower().endswith(".vtt") else "srt"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{name} is not UTF-8 text; convert it to UTF-8 first (e.g. with iconv)") from None
    # Lines end at CR LF, LF or CR only: str.splitlines also ends them at U+2028, U+0085 and form
    # feeds, which a cue may hold as characters (its words then came back glued together).
    lines = LINE.findall(text)
    document = SubtitleFile(lines)
    blocks = _blocks(lines)
    if kind == "vtt":
        if not blocks or not re.match(r"^\ufeff?WEBVTT(?:[ \t].*)?$", _bare(lines[blocks[0][0]])):
            raise BadInputError(f"{name} is not a WebVTT file: it must start with a WEBVTT line")
        if target is not None:
            _retarget_header(document.lines, *blocks[0], target)
        blocks = blocks[1:]  # the header block is kept as it is, its language aside
    for start, end in blocks:
        _read_block(document, lines, start, end, kind, name)
    if not document.cues:
        raise BadInputError(f"{name} has no subtitles to translate")
    _group(document)
    return document


def _retarget_header(lines: list[str], start: int, end: int, target: Language) -> None:
    """The header's `Language:` lines given `target`'s code, every other byte kept (line endings
    too); a value that names the language already (fr-CA for fr) stays."""
    for i in range(start + 1, end):
        match = HEADER_LANGUAGE.match(_bare(lines[i]))
        if match and find_language(match.group(2)) != target:
            lines[i] = match.group(1) + target.code + match.group(3) + lines[i][len(_bare(lines[i])) :]


def _bare(line: str) -> str:
    return line.rstrip("\r\n")


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, end) line indexes of each run of non-blank lines."""
    blocks, start = [], None
    for i, line in enumerate(lines):
        blank = not _bare(line).strip()
        if blank and start is not None:
            blocks.append((start, i))
            start = None
        elif not blank and start is None:
            start = i
    if start is not None:
        blocks.append((start, len(lines)))
    return blocks


def _read_block(document: SubtitleFile, lines: list[str], start: int, end: int, kind: str, name: str) -> None:
    first = _bare(lines[start]).lstrip("\ufeff")
    if kind == "vtt" and re.match(r"^(NOTE|STYLE|REGION)(?:[ \t]|$)", first):
        return  # comments and styling: kept untouched
    timing_at = start
    if "-->" not in first:  # an index (.srt) or a cue identifier (.vtt) comes first
        if kind == "srt" and not (first.strip().isascii() and first.strip().isdigit()):
            raise BadInputError(f"{name}, line {start + 1}: expected a cue number or timing, found {first[:40]!r}")
        timing_at = start + 1
    if timing_at >= end:
        raise BadInputError(f"{name}, line {start + 1}: a cue without its timing line")
    timing = _bare(lines[timing_at])
    match = TIMING[kind].match(timing)
    if not match:
        raise BadInputError(f"{name}, line {timing_at + 1}: bad timestamp {timing.strip()[:60]!r}")
    groups = match.groups()
    if _milliseconds(groups[4:8]) < _milliseconds(groups[0:4]):
        raise BadInputError(f"{name}, line {timing_at + 1}: the cue ends before it starts ({timing.strip()!r})")
    texts = [_bare(line) for line in lines[timing_at + 1 : end]]
    # A timing line among the text means a blank line is missing before the next cue: read as
    # text, that cue's number and timing would be translated over and the cue lost.
    inner = next((i for i, text in enumerate(texts) if TIMING[kind].match(text)), None)
    if inner is not None:
        raise BadInputError(
            f"{name}, line {timing_at + inner + 2}: a cue timing line inside the text of the cue before it; "
            "put a blank line before each cue"
        )
    if not any(t.strip() for t in texts):
        return
    endings = [line[len(_bare(line)) :] for line in lines[timing_at + 1 : end]]
    document.cues.append(Cue(timing_at + 1, texts, endings))


def _group(document: SubtitleFile) -> None:
    """Cues into units: runs of cues up to a sentence end, or one unit per dialogue line."""
    run: list[int] = []

    def flush() -> None:
        if run:
            text = " ".join(t.strip() for i in run for t in document.cues[i].texts if t.strip())
            document.units.append(Unit(text, follows=True))
            document.groups.append(list(run))
            document.dashes.append(None)
            run.clear()

    for index, cue in enumerate(document.cues):
        if len(cue.texts) > 1 and all(DIALOGUE_DASH.match(t) for t in cue.texts):
            flush()
            for line in cue.texts:
                dash = DIALOGUE_DASH.match(line)
                assert dash is not None
                document.units.append(Unit(line[dash.end() :].strip(), follows=True))
                document.groups.append([index])
                document.dashes.append(dash.group(0))
            continue
        run.append(index)
        if SENTENCE_END.search(cue.texts[-1]) or len(run) >= MAX_CUES_PER_UNIT:
            flush()
    flush()
