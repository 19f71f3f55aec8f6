"""The sidecar that makes an interrupted translation resumable.

Beside the output file, `.NAME.translation.jsonl` records every finished chunk as soon as it is
done (one JSON line, flushed). A later run with the same languages, model (the same file, by path,
size and date, with the same LoRA adapters) and prompt skips the chunks it finds there; the
sidecar is removed once the output is complete. A sidecar written for other settings is ignored
and replaced, never mixed in.

A line also keeps what confidence.py judges a translation by besides its text (the model's
mean token log-probability, a fallback, the problems that remained), so that a resumed segment
is judged as it was when it was translated: without them a doubtful one came back sure, and its
`#, fuzzy` mark was lost.

Every line is checked when the sidecar is read, not when its text is used: a line that is not a
small JSON object with a text `source` and a text `translation` (cut short by a crash, or edited)
is skipped and its chunk translated again, and `note` says how many were. A sidecar too large to
be one, or something other than a file in its place, is refused before any work starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any, TextIO

from llamadesk.app.core.atomic_file import hidden_name, no_room_error
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import parse_json_object
from llamadesk.app.translate.segment import SegmentResult

# A sidecar holds the source and translation of an input that is at most MAX_INPUT_BYTES
# (commands/translate.py): a few times that covers the JSON escaping of any script.
SIDECAR_MAX_BYTES = 64 * 1024**2
# {"settings": {"glossary": [["term", "translation"]]}} is as deep as a line goes.
LINE_MAX_DEPTH = 4


def model_identity(engine: Any) -> dict[str, Any]:
    """What a sidecar records of the model translating: its file (path, size, date) and LoRA
    adapters, as the prompt cache knows them. general.name alone let another quantization or
    fine-tune of the same model resume this one's chunks, and the output mixed two models'."""
    identity = engine.state_identity()
    return {
        "model": engine.summary.name,
        "model_file": [identity["model"], identity["model_size"], identity["model_mtime_ns"]],
        "adapters": identity["adapters"],
    }


def sidecar_path(output: Path) -> Path:
    return hidden_name(output, ".translation.jsonl")


def existing_mode(path: Path) -> int | None:
    """The permission bits of the file at `path` (through a link, as --update writes); None if there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


class ResumeLog:
    """Finished chunks by source text, persisted line by line."""

    def __init__(self, path: Path, settings: dict[str, Any], mode: int | None = None):
        """`mode`: the permission bits of the file the sidecar stands beside, when it exists (a
        private catalog's sidecar, which holds its messages, is as private)."""
        self.path = path
        self.mode = mode
        # As it comes back from JSON (tuples become lists), so a rerun's settings compare equal.
        self.settings = json.loads(json.dumps(settings, ensure_ascii=False))
        self.note: str | None = None  # what was skipped while reading, for the user
        # What a finished chunk was judged by besides its text: SegmentResult's fields, by source.
        self.judged: dict[str, dict[str, Any]] = {}
        self.done: dict[str, str] = self._read()
        self._handle: TextIO | None = None

    def _read(self) -> dict[str, str]:
        done: dict[str, str] = {}
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return done
        if stat.S_ISLNK(info.st_mode):  # writing would go through it, into whatever it points to
            raise BadInputError(f"{self.path} is a symbolic link in the way of the resume sidecar; remove it")
        if not stat.S_ISREG(info.st_mode):
            raise BadInputError(f"{self.path} is in the way of the resume sidecar (it is not a file); remove it")
        if info.st_nlink > 1:  # another name of some file: truncating it emptied that file too
            raise BadInputError(f"{self.path} is a hard link in the way of the resume sidecar; remove it")
        if info.st_size > SIDECAR_MAX_BYTES:
            raise BadInputError(
                f"the resume sidecar {self.path} is {format_bytes(info.st_size)}, larger than any this "
                "translation could write; delete it to start over"
            )
        with open(os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
            lines = handle.read(SIDECAR_MAX_BYTES).splitlines()
        if not lines or self._line(lines[0]).get("settings") != self.settings:
            return done  # another translation's, or damaged from the first line: replaced, not mixed in
        skipped = 0
        for line in lines[1:]:
            entry = self._line(line)
            source, translation = entry.get("source"), entry.get("translation")
            judged = _judged(entry)
            if isinstance(source, str) and isinstance(translation, str) and judged is not None:
                done[source] = translation
                self.judged[source] = judged
            else:  # a line cut short by a crash, or edited: its chunk is simply not done
                skipped += 1
        if skipped:
            self.note = (
                f"{skipped} damaged line(s) in the resume sidecar {self.path} were skipped; "
                "their segments are translated again"
            )
        return done

    def _line(self, line: bytes) -> dict[str, Any]:
        """One line as a JSON object, or {} when it is not one (UTF-8, checked for depth before parsing)."""
        try:
            return parse_json_object(line.decode("utf-8"), str(self.path), "resume sidecar line", LINE_MAX_DEPTH)
        except (BadInputError, UnicodeDecodeError):
            return {}

    def get(self, source: str) -> str | None:
        return self.done.get(source)

    def resumed(self, source: str, text: str) -> SegmentResult | None:
        """The finished chunk `source` as a result for the unit `text`, as it was judged; None if not done."""
        translation = self.done.get(source)
        if translation is None:
            return None
        return SegmentResult(text, translation, resumed=True, **self.judged.get(source, {}))

    def record(self, source: str, translation: str, result: SegmentResult | None = None) -> None:
        """Append one finished chunk (with what `result` was judged by); it is on disk when this returns."""
        judged = _judged_of(result)
        line = {"source": source, "translation": translation, **judged}
        if "problems" in line:
            line["problems"] = list(line["problems"])
        try:
            self._append(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as err:
            # The line that did not fit stays in the handle's buffer: dropped with it, so that no
            # later close or the exit tries it again and says so a second time.
            with contextlib.suppress(OSError):
                self.close()
            # A full disk stops the translation here, first: say which file, not "while writing".
            no_room = no_room_error(err, self.path)
            if no_room is not None:
                raise no_room from None
            # A folder that takes no new file (/proc, a read-only mount): it was a bare "No such
            # file or directory" and exit 1, naming only the sidecar.
            raise BadInputError(
                f"cannot write the resume sidecar {self.path} beside the output ({err.strerror or err}); "
                "give -o a file in a folder you can write to"
            ) from None
        self.done[source] = translation
        self.judged[source] = judged

    def _append(self, line: str) -> None:
        """Write `line` after the settings line, which a fresh sidecar starts with."""
        if self._handle is None:
            fresh = not self.done
            # Never through a link put there since it was read (O_NOFOLLOW: ELOOP, said as unwritable).
            # Emptied only once it is known to be no other file's name (ftruncate below, not O_TRUNC).
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND
            descriptor = os.open(self.path, flags, 0o666 if self.mode is None else self.mode)
            try:
                if os.fstat(descriptor).st_nlink > 1:  # linked since it was read: never written through
                    raise BadInputError(f"{self.path} is a hard link in the way of the resume sidecar; remove it")
                if fresh:
                    os.ftruncate(descriptor, 0)
                if self.mode is not None:
                    os.fchmod(descriptor, self.mode)
                self._handle = open(descriptor, "w", encoding="utf-8")
            except BaseException:
                os.close(descriptor)
                raise
            if fresh:
                self._handle.write(json.dumps({"settings": self.settings}, ensure_ascii=False) + "\n")
        self._handle.write(line)
        self._handle.flush()

    def close(self) -> None:
        handle, self._handle = self._handle, None  # forgotten even when closing fails (a full disk)
        if handle is not None:
            handle.close()

    def finish(self) -> None:
        """The output is complete: the sidecar is no longer needed."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _judged_of(result: SegmentResult | None) -> dict[str, Any]:
    """What confidence.py reads of a result besides its text, as SegmentResult keyword arguments."""
    if result is None:
        return {}
    judged: dict[str, Any] = {}
    if result.mean_logprob is not None:
        judged["mean_logprob"] = result.mean_logprob
    if result.fallback is not None:
        judged["fallback"] = result.fallback
    if result.problems:
        judged["problems"] = tuple(result.problems)
    return judged


def _judged(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A sidecar line's judged fields as SegmentResult keyword arguments; None when one is damaged."""
    judged: dict[str, Any] = {}
    mean_logprob, fallback, problems = entry.get("mean_logprob"), entry.get("fallback"), entry.get("problems")
    if mean_logprob is not None:
        if isinstance(mean_logprob, bool) or not isinstance(mean_logprob, (int, float)):
            return None
        judged["mean_logprob"] = float(mean_logprob)
    if fallback is not None:
        if fallback not in ("piecewise", "source-kept"):
            return None
        judged["fallback"] = fallback
    if problems is not None:
        if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
            return None
        judged["problems"] = tuple(problems)
    return judged
