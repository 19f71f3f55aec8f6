"""The model manager's long jobs (pull from the Hub, convert a checkpoint) as plain functions.

The screen runs them in a thread worker. They report progress through a callback and stop at
the next progress report once their CancelToken is set, by raising Interrupted from inside the
callback: the library's own clean-up then runs as it does on Ctrl-C in the CLI (a stopped
download keeps its partial file so the next pull resumes, less the chunk in flight, which
huggingface-hub reports before writing it; a stopped conversion or quantization
leaves no file behind).

What cannot be stopped midway, because the underlying call reports nothing while it runs:
asking the Hub for a repo's files, checking a finished download's sha256, and one tensor's
conversion or quantization. A cancel takes effect right after the step in progress.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llamadesk.app.core.errors import BadInputError, Interrupted

if TYPE_CHECKING:
    from tqdm import tqdm

    from llamadesk.app.hub.pull import PullResult

# pull/ and convert/ (huggingface-hub, numpy, gguf) are imported when a job starts, not with the
# app: they would add half a second to its start.

DEFAULT_CONVERT_TYPE = "Q4_K_M"


@dataclass(frozen=True)
class JobProgress:
    """Where a job is: a stage ("downloading x.gguf", "converting") and done/total in its units."""

    stage: str
    done: int = 0
    total: int | None = None  # None: unknown yet (the bar pulses)


Report = Callable[[JobProgress], None]


class CancelToken:
    """Set from the UI thread; checked by the job's thread at each progress report."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str) -> None:
        if self._event.is_set():
            raise Interrupted(f"{what} stopped")


def download_bar_class(report: Report, cancel: CancelToken) -> type[tqdm]:
    """A tqdm class for huggingface-hub's download loop that reports to `report` instead of drawing.

    huggingface-hub builds a bar per file with total/initial/desc and calls update(bytes) per chunk.
    A plain tqdm subclass (not huggingface-hub's) gets exactly those arguments; it is created
    disabled so it never writes to the terminal, which Textual owns.
    """

    from tqdm import tqdm

    class DownloadBar(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.file_name = str(kwargs.get("desc") or "file")
            self.file_total = kwargs.get("total")
            self.file_done = int(kwargs.get("initial") or 0)
            report(JobProgress(f"downloading {self.file_name}", self.file_done, self.file_total))

        def update(self, n: float | None = 1) -> bool | None:
            self.file_done += int(n or 0)
            report(JobProgress(f"downloading {self.file_name}", self.file_done, self.file_total))
            # Raised inside the download loop: the partial file stays, and the next pull resumes it.
            cancel.check(f"download of {self.file_name} (pull again to resume)")
            return None

    return DownloadBar


def pull(spec: str, report: Report, cancel: CancelToken) -> PullResult:
    """Pull `REPO[:QUANT|:FILE]` into the library (see pull.pull_model), reporting each file's bytes."""
    from llamadesk.app.hub.pull import pull_model

    spec = spec.strip()
    report(JobProgress(f"asking the Hub about {spec}"))
    return pull_model(spec, progress=download_bar_class(report, cancel))


def convert(source: str, quant_type: str, report: Report, cancel: CancelToken) -> tuple[Path, list[str]]:
    """Convert a local checkpoint folder to a `quant_type` GGUF in the library; returns its path and
    the notes the CLI prints (a stale shard index left unread, the context the GGUF records)."""
    from llamadesk.app.library.checkpoint_conversion import check_convert_type, conversion_notes, convert_checkpoint
    from llamadesk.app.library.registry import record_made_model

    folder = Path(source.strip()).expanduser()
    if not folder.is_dir():
        raise BadInputError(f"{source.strip()}: no such folder; give a checkpoint folder (config.json and weights)")
    qtype = check_convert_type(quant_type.strip() or DEFAULT_CONVERT_TYPE)

    def converting(done: int, total: int) -> None:
        report(JobProgress("converting", done, total))
        cancel.check("conversion")

    def quantizing(step) -> None:  # quantize_log.TensorProgress: tensor `index` of `total` started
        report(JobProgress(f"quantizing to {qtype.name}", step.index - 1, step.total))
        cancel.check("quantization")

    notes: list[str] = []
    report(JobProgress(f"reading {folder.name}"))
    path, _ = convert_checkpoint(
        folder,
        None,
        qtype,
        convert_progress=converting,
        quantize_progress=quantizing,
        planned=lambda plan: notes.extend(conversion_notes(plan)),
    )
    record_made_model(path, {"checkpoint": str(folder.resolve()), "outtype": qtype.name})
    return path, notes


__all__ = ["JobProgress", "CancelToken", "download_bar_class", "pull", "convert", "DEFAULT_CONVERT_TYPE"]
