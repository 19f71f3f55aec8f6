"""The sidecar that makes an interrupted translation resumable.

Beside the output file, `.NAME.translation.jsonl` records every finished chunk as soon as it is
done (one JSON line, flushed). A later run with the same languages, model and prompt skips the
chunks it finds there; the sidecar is removed once the output is complete. A sidecar written
for other settings is ignored and replaced, never mixed in.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, TextIO


def sidecar_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.translation.jsonl")


class ResumeLog:
    """Finished chunks by source text, persisted line by line."""

    def __init__(self, path: Path, settings: dict[str, Any]):
        self.path = path
        self.settings = settings
        self.done: dict[str, str] = self._read()
        self._handle: TextIO | None = None

    def _read(self) -> dict[str, str]:
        done: dict[str, str] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return done
        if not lines:
            return done
        try:
            if json.loads(lines[0]).get("settings") != self.settings:
                return done
        except (json.JSONDecodeError, AttributeError):
            return done
        for line in lines[1:]:
            try:  # a line cut short by a crash is simply not done
                entry = json.loads(line)
                done[entry["source"]] = entry["translation"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        return done

    def get(self, source: str) -> str | None:
        return self.done.get(source)

    def record(self, source: str, translation: str) -> None:
        """Append one finished chunk; it is on disk when this returns."""
        if self._handle is None:
            fresh = not self.done
            self._handle = self.path.open("w" if fresh else "a", encoding="utf-8")
            if fresh:
                self._handle.write(json.dumps({"settings": self.settings}, ensure_ascii=False) + "\n")
        self.done[source] = translation
        self._handle.write(json.dumps({"source": source, "translation": translation}, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(self) -> None:
        """The output is complete: the sidecar is no longer needed."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
