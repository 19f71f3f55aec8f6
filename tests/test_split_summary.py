"""A split model is summarized whole, wherever it is summarized (core/gguf_file.summarize).

Part 1 alone sized a 61 GiB split model as 8 GiB: chat and doctor fitted it to a 22 GiB machine
that refused the same model in one file, and bench showed half its size."""

from __future__ import annotations

from llamadesk.app.core.gguf_file import open_header, summarize
from llamadesk.app.core.machine import machine_facts
from llamadesk.app.engine.fitted_settings import choose_settings
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.library.catalog import inspect_model
from tests import fake_machines as fm
from tests.gguf_samples import split_gguf


def test_every_summary_of_a_split_model_counts_all_its_parts(smollm2_path, tmp_path):
    parts = split_gguf(smollm2_path, tmp_path / "Smol-Q4_1.gguf", 100)
    first = min(tmp_path.glob("Smol-Q4_1-00001-of-*.gguf"))
    assert len(list(tmp_path.glob("Smol-Q4_1-*-of-*.gguf"))) >= 2, parts
    whole = summarize(smollm2_path, open_header(smollm2_path))
    split = summarize(first, open_header(first))
    assert (split.parameters, split.tensor_bytes, split.repeating_tensor_bytes) == (
        whole.parameters,
        whole.tensor_bytes,
        whole.repeating_tensor_bytes,
    )
    assert split.file_size == sum(p.stat().st_size for p in tmp_path.glob("Smol-Q4_1-*-of-*.gguf"))
    assert inspect_model(first).parameters == whole.parameters  # the listing: counted once, not twice
    # What memory the load is fitted to: the same as the single file's.
    machine = machine_facts(fm.CUDA_LAPTOP)
    assert (
        choose_settings(split, machine, None, LoadSettings()).reasons
        == choose_settings(whole, machine, None, LoadSettings()).reasons
    )
