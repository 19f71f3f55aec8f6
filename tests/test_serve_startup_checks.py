"""`serve`: what can be known before the server listens is refused then, in one line with exit 2.

A `-m` file that is not a model was served (and every request to it was a 400), and a --preload
that failed ran inside the server's startup: uvicorn printed a traceback and exited 3.
"""

from __future__ import annotations

from pathlib import Path

from gguf import GGUFWriter

from tests.conftest import assert_one_clear_line, run_cli_process
from tests.serve_process import free_port


def _serve(*args: str):
    return run_cli_process("serve", "--port", str(free_port()), "--threads", "1", *args, timeout=120)


def _adapter_header(path: Path) -> Path:
    """A GGUF that says it is a LoRA adapter (its header is all `serve` reads of it)."""
    writer = GGUFWriter(path, "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_file_that_is_not_gguf_is_refused_with_or_without_preload(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("{}")
    assert_one_clear_line(_serve("-m", str(bad), "--preload"), 2, "not a GGUF file")
    assert_one_clear_line(_serve("-m", str(bad)), 2, "not a GGUF file")


def test_an_adapter_given_as_a_model_is_refused_before_listening(tmp_path):
    adapter = _adapter_header(tmp_path / "my-lora.gguf")
    assert_one_clear_line(_serve("-m", str(adapter)), 2, "LoRA adapter, not a model", "--lora")


def test_a_preloaded_model_larger_than_the_memory_budget_is_one_line(smollm2_path):
    assert_one_clear_line(_serve("-m", str(smollm2_path), "--preload", "--memory-budget", "1M"), 2, "memory budget")
