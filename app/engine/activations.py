"""Input activations of every weight matrix while a model reads a text (for importance matrices).

llama.cpp's llama-imatrix works through the eval callback (`cb_eval` in the context params): the
scheduler asks, for each graph node, whether we want its data, and after computing it calls
again with the tensor. For each matrix multiplication by a weight (`blk.*` MUL_MAT nodes), the
sum over tokens of each input column squared is what the quantizer needs.

llama-cpp-python binds the callback but gives no view of the `struct ggml_tensor *` it passes,
so the struct is mirrored here in ctypes (ggml.h). Because a wrong mirror would read the wrong
memory, it is checked on the first tensor against ggml's own accessors (ggml_get_name,
ggml_nelements, ggml_nbytes), and the operation is read by name (ggml_op_desc), never by its enum
number. A llama.cpp whose tensor layout changed is refused with a clear error instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as llama
import numpy as np

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.engine.llama_log import use_default_log

GGML_MAX_DIMS = 4
GGML_MAX_OP_PARAMS = 64
GGML_MAX_SRC = 10
GGML_MAX_NAME = 64
MIN_ROWS = 16  # llama-imatrix ignores smaller batches (single-token decodes)
WEIGHT_PREFIX = "blk."  # llama-imatrix's default: the repeating layers, not output.weight


class GGMLTensor(ctypes.Structure):
    """struct ggml_tensor from ggml/include/ggml.h (checked at run time, see module docstring)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


GGML_TYPE_F32 = 0  # enum ggml_type; part of the GGUF file format, so it never changes


def _ggml_function(name: str, restype: object, argtypes: list[object]) -> Callable:
    function = getattr(llama._lib, name)
    function.restype, function.argtypes = restype, argtypes
    return function


_get_name = _ggml_function("ggml_get_name", ctypes.c_char_p, [ctypes.c_void_p])
_op_desc = _ggml_function("ggml_op_desc", ctypes.c_char_p, [ctypes.c_void_p])
_nelements = _ggml_function("ggml_nelements", ctypes.c_int64, [ctypes.c_void_p])
_nbytes = _ggml_function("ggml_nbytes", ctypes.c_size_t, [ctypes.c_void_p])
_tensor_get = _ggml_function(
    "ggml_backend_tensor_get", None, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
)


@dataclass
class ActivationStats:
    """Per weight: sum over tokens of each input column squared, and the number of tokens."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    matrices: dict[str, int] = field(default_factory=dict)  # 1, or the experts of a 3-D weight
    chunks: int = 0
    chunk_size: int = 0


def weight_name(node_name: str) -> str:
    """'blk.0.attn_q.weight' from a node name that may wrap it ('...#blk.0.attn_q.weight#...')."""
    parts = node_name.split("#")
    return parts[1] if len(parts) > 1 else node_name


class _Collector:
    def __init__(self, stats: ActivationStats):
        self.stats = stats
        self.layout_checked = False
        self.error: BaseException | None = None
        self.signals: list[int] = []  # received while deferred (deferred_signals); stops the graph

    def _tensor(self, pointer: int) -> GGMLTensor:
        tensor = GGMLTensor.from_address(pointer)
        if not self.layout_checked:
            expected = (_get_name(pointer), _nelements(pointer))
            if (tensor.name, math.prod(tensor.ne)) != expected:
                raise LlamadeskError(
                    "this llama.cpp's ggml_tensor layout differs from the one llamadesk knows; "
                    "use llama-imatrix to compute the importance matrix"
                )
            self.layout_checked = True
        return tensor

    def _wanted(self, pointer: int) -> tuple[GGMLTensor, GGMLTensor, str] | None:
        if _op_desc(pointer) != b"MUL_MAT":
            return None
        node = self._tensor(pointer)
        src0, src1 = node.src[0], node.src[1]
        if not src0 or not src1:
            return None
        name = weight_name(_get_name(src0).decode())
        activations = self._tensor(src1)
        if not name.startswith(WEIGHT_PREFIX) or activations.type != GGML_TYPE_F32 or activations.ne[1] < MIN_ROWS:
            return None
        return self._tensor(src0), activations, name

    def __call__(self, pointer: int, ask: bool, _user_data: ctypes.c_void_p) -> bool:
        if self.error is not None or self.signals:
            # Stop the graph: ggml computes a node we ask for, then stops when the call after it
            # says False. (Declining every node instead would compute the rest of the decode.)
            return ask
        try:
            wanted = self._wanted(pointer)
            if wanted is None:
                return False
            if not ask:
                self._add(*wanted, pointer)
            return True
        except BaseException as err:  # nothing may cross into C (ctypes prints and drops it); raised after decode
            self.error = err
            return False

    def _add(self, weight: GGMLTensor, activations: GGMLTensor, name: str, node: int) -> None:
        src1 = self._tensor(node).src[1]
        raw = np.empty(_nbytes(src1), dtype=np.uint8)
        _tensor_get(src1, raw.ctypes.data, 0, raw.nbytes)
        ne, nb = list(activations.ne), list(activations.nb)
        x = np.lib.stride_tricks.as_strided(
            raw.view(np.float32), shape=(ne[3], ne[2], ne[1], ne[0]), strides=(nb[3], nb[2], nb[1], nb[0])
        )
        n_mat = weight.ne[2] * weight.ne[3]
        squares = np.einsum("abij,abij->abj", x, x, dtype=np.float64)  # (ne3, ne2, ne0)
        per_matrix = np.zeros((n_mat, ne[0]), dtype=np.float64)
        for i3 in range(ne[3]):  # llama-imatrix's mapping of activation slices to weight matrices
            for i2 in range(ne[2]):
                per_matrix[(i3 % weight.ne[3]) * weight.ne[2] + (i2 % weight.ne[2])] += squares[i3, i2]
        stats = self.stats
        if name in stats.sums:
            stats.sums[name] += per_matrix.reshape(-1)
        else:
            stats.sums[name] = per_matrix.reshape(-1)
        stats.counts[name] = stats.counts.get(name, 0) + (ne[1] * ne[2] * ne[3]) // n_mat
        stats.matrices[name] = n_mat


# Stopped by these, the program must stop (app.cli turns SIGTERM and SIGHUP into Terminated).
STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def deferred_signals(received: list[int]) -> Iterator[None]:
    """Record Ctrl-C, SIGTERM and SIGHUP in `received` instead of raising, and on leaving raise
    what was received as the handlers replaced would have (KeyboardInterrupt, Terminated).

    Why: during a decode nearly every Python bytecode runs in the eval callback, so a handler's
    KeyboardInterrupt was raised there, and ctypes prints and drops an exception from a callback:
    the run went on to the end and exited 0 whatever the user pressed. Only Python handlers are
    replaced, in the main thread (the only one where Python runs them).
    """
    replaced: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOPPING_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):
                replaced[signum] = handler
                signal.signal(signum, lambda number, _frame: received.append(number))

    try:
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
        if received:
            signum = received[0]
            received.clear()
            replaced[signum](signum, None)


def collect_activations(
    model_path: Path | str,
    text: str,
    n_ctx: int = 512,
    n_threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ActivationStats:
    """Read `text` in chunks of `n_ctx` tokens (as llama-imatrix: BOS first where the model uses
    it, a short remainder dropped) and collect every weight's input activation statistics."""
    stats = ActivationStats(chunk_size=n_ctx)
    collector = _Collector(stats)
    callback = llama.ggml_backend_sched_eval_callback(collector)
    # Its load report is dropped as every load's is (the high-level Llama class hides it; we bypass
    # that class), and by llama_log's default sink, which runs no Python: a sink in Python dropped a
    # Ctrl-C that came during the load (see llama_log).
    use_default_log()
    return _collect(Path(model_path), text, n_ctx, n_threads, progress, stats, collector, callback)


def _collect(
    model_path: Path,
    text: str,
    n_ctx: int,
    n_threads: int,
    progress,
    stats: ActivationStats,
    collector: _Collector,
    callback: object,
) -> ActivationStats:
    model_params = llama.llama_model_default_params()
    model_params.n_gpu_layers = 0
    model = llama.llama_model_load_from_file(str(model_path).encode(), model_params)
    if not model:
        raise LlamadeskError(f"llama.cpp could not load {model_path}")
    context = None
    try:
        params = llama.llama_context_default_params()
        params.n_ctx = params.n_batch = n_ctx
        params.n_ubatch = min(512, n_ctx)
        params.n_threads = params.n_threads_batch = n_threads
        params.cb_eval = callback
        params.cb_eval_user_data = None
        context = llama.llama_init_from_model(model, params)
        if not context:
            raise LlamadeskError(f"llama.cpp could not create a context for {model_path}")
        vocab = llama.llama_model_get_vocab(model)
        tokens = _tokenize(vocab, text)
        n_chunks = len(tokens) // n_ctx
        if n_chunks < 1:
            raise BadInputError(f"the text is {len(tokens)} tokens; it needs at least {n_ctx} (one chunk of --ctx)")
        add_bos = llama.llama_vocab_get_add_bos(vocab)
        batch = llama.llama_batch_init(n_ctx, 0, 1)
        try:
            for chunk in range(n_chunks):
                piece = tokens[chunk * n_ctx : (chunk + 1) * n_ctx]
                if add_bos:
                    piece[0] = llama.llama_vocab_bos(vocab)
                llama.llama_memory_clear(llama.llama_get_memory(context), True)
                with deferred_signals(collector.signals):  # raises what came once the decode stops
                    status = llama.llama_decode(context, _batch_with_all_outputs(batch, piece))
                if collector.error is not None:
                    raise collector.error
                if status != 0:
                    raise LlamadeskError(f"llama.cpp failed to evaluate chunk {chunk + 1} (status {status})")
                stats.chunks += 1
                if progress is not None:
                    progress(chunk + 1, n_chunks)
        finally:
            llama.llama_batch_free(batch)
    finally:
        if context:
            llama.llama_free(context)
        llama.llama_model_free(model)
    return stats


def _batch_with_all_outputs(batch: llama.llama_batch, tokens: list[int]) -> llama.llama_batch:
    """A batch asking for every position's output, as llama-imatrix does (it computes perplexity
    too). With only the last output, llama.cpp skips the last layer's feed-forward for the other
    tokens, and those weights would get no statistics."""
    for i, token in enumerate(tokens):
        batch.token[i] = token
        batch.pos[i] = i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = True
    batch.n_tokens = len(tokens)
    return batch


def _tokenize(vocab: llama.llama_vocab_p, text: str) -> list[int]:
    raw = text.encode("utf-8")
    capacity = len(raw) + 16
    buffer = (llama.llama_token * capacity)()
    n = llama.llama_tokenize(vocab, raw, len(raw), buffer, capacity, True, False)
    if n < 0:
        raise LlamadeskError("could not tokenize the text")
    return list(buffer[:n])
