"""llama.cpp's log stays off the user's terminal unless LLAMADESK_LLAMA_LOG asks for it."""

import llama_cpp.llama_cpp as llama
import pytest

from llamadesk.app.engine.llama_log import LOG_ENV, log_sent_to, use_default_log


def make_llama_cpp_log() -> None:
    """A cheap real log: llama.cpp explains, on its log, why a missing file does not load."""
    assert llama.llama_model_load_from_file(b"/nonexistent/model.gguf", llama.llama_model_default_params()) is None


@pytest.fixture(autouse=True)
def default_log_after():
    yield
    use_default_log()


def test_llama_cpp_log_is_dropped_by_default(monkeypatch, capfd):
    monkeypatch.delenv(LOG_ENV, raising=False)
    use_default_log()
    make_llama_cpp_log()
    assert capfd.readouterr().err == ""


def test_the_environment_variable_passes_it_to_stderr(monkeypatch, capfd):
    monkeypatch.setenv(LOG_ENV, "1")
    use_default_log()
    make_llama_cpp_log()
    assert "nonexistent/model.gguf" in capfd.readouterr().err


def test_a_sink_gets_the_log_and_the_default_comes_back(monkeypatch, capfd):
    monkeypatch.delenv(LOG_ENV, raising=False)
    lines: list[str] = []
    with log_sent_to(lines.append):
        make_llama_cpp_log()
    assert "nonexistent/model.gguf" in "".join(lines)
    count = len(lines)
    make_llama_cpp_log()
    assert len(lines) == count and capfd.readouterr().err == ""
