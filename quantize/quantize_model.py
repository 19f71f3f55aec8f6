"""Quantizing a GGUF with llama.cpp's own quantizer: checked input, progress, atomic output.

The quantizer itself runs in a child process (llama_quantizer.py says why); this module starts
the child, checks what can be checked before minutes are spent while the child starts, turns its
log into progress, and renames the output into place only when llama.cpp reports success. Ctrl-C
kills the child and removes the partial file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.value_ranges import THREADS
from llamadesk.app.engine.quantize_request import QuantizeRequest, done_marker, new_nonce, refused_marker
from llamadesk.quantize.quant_types import FLOAT_TYPES, QuantType, find_quant_type
from llamadesk.quantize.quantize_log import QuantizeReport, TensorProgress, read_line

ProgressCallback = Callable[[TensorProgress], None]
WORKER_MODULE = "llamadesk.app.engine.llama_quantizer"
# Below this much free space after a failed write, the disk being full is the likely cause.
FULL_DISK_SLACK = 64 * 1024 * 1024

REQUANTIZE_WHY = (
    "quantizing it again rounds already-rounded weights, so the errors of both quantizations add "
    "up and quality drops more than quantizing the f16/bf16 original to the same type"
)


# What a GGUF that is not a model says it is (general.type), and what to do with it instead.
NOT_A_MODEL = {
    "adapter": "a LoRA adapter, not a model; quantize the model it was trained on (the adapter is applied "
    "to it as it is, with --lora)",
    "imatrix": "an importance matrix, not a model; give it with --imatrix and the model as IN.gguf",
}


def quantized_types(path: Path) -> list[str]:
    """The quantized ggml types among a GGUF's matrices (empty for an f32/f16/bf16 file).

    BadInputError for a GGUF that is not a model (an adapter, an importance matrix): llama.cpp's
    quantizer said only "key not found" or "unknown model architecture", exit 1.
    """
    # Imported here: the header reader needs numpy and gguf (~0.1 s), which quantize_gguf()
    # imports while the quantizer child starts rather than before.
    from llamadesk.app.core.gguf_file import check_model, open_header, summarize

    header = open_header(path)
    kind = header.metadata.get("general.type")
    if kind in NOT_A_MODEL:
        raise BadInputError(f"{path} is {NOT_A_MODEL[kind]}")
    # What every load checks: llama.cpp's quantizer aborted on some of these (a block count of 0,
    # more experts used than there are) and wrote a useless file from others (a context length of 0).
    check_model(path, header, summarize(path, header).architecture)
    return sorted({t.ggml_type.name for t in header.tensors if t.ggml_type.name not in FLOAT_TYPES})


def default_output(input_path: Path, qtype: QuantType) -> Path:
    """model-f16.gguf -> model-Q4_K_M.gguf beside it (a trailing -F16/-BF16/-F32 is replaced).

    A split model's first part (model-f16-00001-of-00003.gguf) gives model-Q4_K_M.gguf: the output
    is one file, and a name claiming "part 1 of 3" sends tools looking for the other two.
    """
    from llamadesk.app.core.gguf_naming import SPLIT_PART  # imports gguf (~0.1 s): see quantized_types

    split = SPLIT_PART.match(input_path.name)
    stem = split["base"] if split else input_path.stem
    for suffix in (*FLOAT_TYPES, "f16", "bf16", "f32"):
        for sep in ("-", ".", "_"):
            if stem.endswith(sep + suffix):
                stem = stem[: -len(sep + suffix)]
    return input_path.with_name(f"{stem}-{qtype.name}.gguf")


def check_input_gguf(input_path: Path, allow_requantize: bool) -> None:
    """Refuse, with one clear line, input llama.cpp would refuse (or the user regret)."""
    already = quantized_types(input_path)  # also validates the GGUF header
    if already and not allow_requantize:
        raise BadInputError(
            f"{input_path} is already quantized ({', '.join(already)}); {REQUANTIZE_WHY}. "
            "Quantize the original instead, or pass --allow-requantize"
        )


def check_imatrix(qtype: QuantType, imatrix: Path | None) -> None:
    """A type that needs an importance matrix has one, and the file given is one."""
    if qtype.needs_imatrix and imatrix is None:
        raise BadInputError(
            f"{qtype.name} needs an importance matrix (without one its few bits per weight ruin the model); "
            "pass --imatrix FILE (from `llamadesk imatrix`), or choose a type such as Q2_K, Q3_K_M or Q4_K_M"
        )
    if imatrix is not None:
        from llamadesk.app.core.imatrix_file import read_imatrix  # numpy: only when a matrix is given

        read_imatrix(imatrix)  # a bad file is reported now, not by the child mid-way


class QuantizerProcess:
    """llama.cpp's quantizer in a child process that runs the requests it is given.

    The child starts when this object is made, before its requests are known, so its start-up
    (Python and llama.cpp's library, ~0.06 s) overlaps whatever the caller does meanwhile.
    Leaving the `with` block kills a child still running (Ctrl-C, a failed check, any error).
    """

    def __init__(self) -> None:
        self._count = 0
        self._nonce = new_nonce()
        self._child = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )

    def __enter__(self) -> QuantizerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        for stream in (self._child.stdin, self._child.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def send(self, requests: list[QuantizeRequest]) -> None:
        """Give the child its requests; it starts on them at once. Call it once."""
        assert self._child.stdin is not None
        self._count = len(requests)
        try:
            job = {"nonce": self._nonce, "requests": [r.to_dict() for r in requests]}
            self._child.stdin.write(json.dumps(job) + "\n")
            self._child.stdin.close()
        except BrokenPipeError:
            pass  # the child died while starting; its exit status says so in results()

    def results(self, progress: ProgressCallback | None = None) -> list[tuple[int, QuantizeReport]]:
        """Wait for the requests sent; each one's status and what it logged, in order.

        A request the child never finished (it crashed) gets the child's exit status, negative
        for a signal. A child stopped by SIGINT was stopped by Ctrl-C, which a terminal sends to
        the whole foreground group: that is KeyboardInterrupt here too, even when the child's pipe
        closes before this process's own SIGINT has raised it.
        """
        child = self._child
        assert child.stdout is not None
        done, refused = done_marker(self._nonce), refused_marker(self._nonce)
        results: list[tuple[int, QuantizeReport]] = []
        report = QuantizeReport()
        for line in child.stdout:
            line = line.rstrip("\n")
            if line.startswith(done):
                status_text, seconds = line.removeprefix(done).split()
                report.seconds = float(seconds)
                results.append((int(status_text), report))
                report = QuantizeReport()
                continue
            if line.startswith(refused):
                report.refused = line.removeprefix(refused).strip()
                continue
            started = read_line(report, line)
            if started is not None and progress is not None:
                progress(started)
        status = child.wait()
        if status == -signal.SIGINT and len(results) < self._count:
            raise KeyboardInterrupt
        while len(results) < self._count:
            results.append((status or 1, report))
            report = QuantizeReport()
        return results


def run_quantizer(
    requests: list[QuantizeRequest], progress: ProgressCallback | None = None
) -> list[tuple[int, QuantizeReport]]:
    """Run the requests in one quantizer child; the child never outlives the call."""
    with QuantizerProcess() as quantizer:
        quantizer.send(requests)
        return quantizer.results(progress)


def _file_size_limit() -> int | None:
    try:
        import resource  # Unix only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _write_failure_reason(target: Path, partial: Path) -> str | None:
    """Why writing stopped, when the disk or a file-size limit explains it."""
    written = partial.stat().st_size if partial.exists() else 0
    soft_limit = _file_size_limit()
    if soft_limit is not None and written >= soft_limit - FULL_DISK_SLACK:
        return (
            f"writing {target} stopped at the file-size limit for this process ({soft_limit} bytes, "
            "see `ulimit -f`); raise the limit or quantize to a smaller type"
        )
    free = shutil.disk_usage(target.parent if str(target.parent) else ".").free
    if free < FULL_DISK_SLACK:
        return f"the disk is full while writing {target}; free some space (or choose another -o) and try again"
    return None


# What ggml's abort handler adds after the reason: a backtrace through gdb, when gdb is there.
_BACKTRACE_NOISE = re.compile(
    r"^(\[Inferior |\[New LWP|\[Thread |#\d+ |0x[0-9a-f]+ in |Using host libthread_db|warning: )"
)
_CRASH_REASON = re.compile(r"GGML_ASSERT|GGML_ABORT|error|failed|terminate called|what\(\)", re.IGNORECASE)


def _crash_detail(lines: list[str]) -> str:
    """The line that says why llama.cpp aborted: the last naming an assertion or an error, not gdb's."""
    meaningful = [line for line in lines if line.strip() and not _BACKTRACE_NOISE.match(line.strip())]
    for line in reversed(meaningful):
        if _CRASH_REASON.search(line):
            return line.strip()
    return meaningful[-1].strip() if meaningful else "no output"


def _failure(
    status: int, report: QuantizeReport, request: QuantizeRequest, target: Path, partial: Path
) -> LlamadeskError:
    if report.refused is not None:
        from llamadesk.app.core.gguf_file import ADVICE

        return BadInputError(f"{request.input}: llama.cpp cannot load it: {report.refused}; {ADVICE}")
    if report.imatrix_mismatch is not None:
        return BadInputError(
            f"the importance matrix {request.imatrix} was made for another model (its size for "
            f"{report.imatrix_mismatch} does not match); make one for this model with `llamadesk imatrix`"
        )
    if report.no_fallback is not None:
        return BadInputError(
            f"llama.cpp cannot make {report.no_fallback.upper()} for this model (some tensors' rows do not "
            "fit its blocks, and it has no fallback type); choose another type"
        )
    if report.needs_imatrix:
        return BadInputError("this type needs an importance matrix for this model; pass --imatrix FILE")
    if not partial.exists() and report.tensors_done == 0 and "iostream error" in (report.failure or ""):
        # Nothing was written at all: the folder does not take new files (/proc, a read-only mount
        # that os.access approves for root), which said "the disk is full" when it has no free space.
        return BadInputError(f"no file can be created in {target.parent}; choose another -o")
    if (reason := _write_failure_reason(target, partial)) is not None:
        return LlamadeskError(reason)
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        detail = _crash_detail(report.lines)
        return LlamadeskError(f"llama.cpp's quantizer crashed ({name}) on {request.input}: {detail}")
    why = report.failure or (report.lines[-1] if report.lines else f"exit status {status}")
    return LlamadeskError(f"llama.cpp could not quantize {request.input}: {why}")


def quantize_gguf(
    input: Path | str,
    output: Path | str | None,
    qtype: str | QuantType,
    threads: int | None = None,
    force: bool = False,
    allow_requantize: bool = False,
    imatrix: Path | str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Quantize `input` to `qtype` with llama.cpp and return the finished file's path.

    `output` defaults to the input's name with the type (model-Q4_K_M.gguf). The file appears
    only when complete; on any error or Ctrl-C nothing is left behind. Raises BadInputError for
    input it refuses (not GGUF, already quantized without `allow_requantize`, type needing an
    imatrix without one, existing output without `force`) and LlamadeskError when llama.cpp fails.
    """
    input_path = Path(input)
    quant = qtype if isinstance(qtype, QuantType) else find_quant_type(qtype)
    if output is None and not input_path.is_file():
        check_input_gguf(input_path, allow_requantize)  # names what it is ('.' has no name to derive one from)
    target = Path(output) if output is not None else default_output(input_path, quant)
    if threads is not None:
        THREADS.check(threads, "--threads")  # past ggml's thread table llama.cpp crashes
    imatrix_path = Path(imatrix) if imatrix is not None else None
    check_imatrix(quant, imatrix_path)
    if target.exists() and input_path.exists() and os.path.samefile(target, input_path):
        raise BadInputError(f"the output {target} is the input; choose another -o")
    with QuantizerProcess() as quantizer, atomic_output(target, force) as partial:
        request = QuantizeRequest(
            input=str(input_path),
            output=str(partial),
            ftype=quant.ftype,
            threads=threads or 0,
            allow_requantize=allow_requantize,
            imatrix=str(imatrix_path) if imatrix_path else None,
        )
        quantizer.send([request])
        # While llama.cpp starts on it: reading the header (~0.2 s with numpy's and gguf's imports)
        # would otherwise come first and add a sixth to quantizing a small model. A refusal here
        # still stops everything: the child is killed and the partial file removed.
        check_input_gguf(input_path, allow_requantize)
        [(status, report)] = quantizer.results(progress)
        if status != 0:
            raise _failure(status, report, request, target, partial)
    return target


def quantized_sizes(input: Path | str, qtypes: list[QuantType]) -> dict[str, int]:
    """Exact tensor-data bytes of `input` quantized to each type, from llama.cpp's dry run.

    No file is written. Types llama.cpp cannot produce for this model are left out.
    """
    requests = [
        QuantizeRequest(input=str(input), output=os.devnull, ftype=q.ftype, allow_requantize=True, dry_run=True)
        for q in qtypes
    ]
    return {
        quant.name: report.output_bytes
        for quant, (status, report) in zip(qtypes, run_quantizer(requests), strict=False)
        if status == 0 and report.output_bytes is not None
    }
