"""The stop flag llama.cpp polls between graph nodes (the real stop mid-prompt is in test_engine)."""

import ctypes

from llamadesk.app.engine.stop_flag import StopFlag, _c_library_strlen


def ask_callback(flag: StopFlag) -> bool:
    """Call the callback exactly as llama.cpp does: with the data pointer it was installed with."""
    return bool(flag._callback(ctypes.cast(flag._byte, ctypes.c_void_p)))


def assert_callback_follows_the_flag(flag: StopFlag) -> None:
    assert not flag.is_set() and not ask_callback(flag)
    flag.set()
    assert flag.is_set() and ask_callback(flag)
    flag.clear()
    assert not flag.is_set() and not ask_callback(flag)


def callback_address(flag: StopFlag) -> int | None:
    return ctypes.cast(flag._callback, ctypes.c_void_p).value


def test_the_callback_is_c_code_so_llama_cpp_never_waits_for_the_gil():
    # A Python callback would take the GIL ~500 times per token (see stop_flag's docstring).
    flag = StopFlag()
    strlen = _c_library_strlen()
    assert strlen is not None and callback_address(flag) == strlen
    assert_callback_follows_the_flag(flag)


def test_without_a_c_library_the_flag_still_works_through_python(monkeypatch):
    monkeypatch.setattr("llamadesk.app.engine.stop_flag._c_library_strlen", lambda: None)
    flag = StopFlag()
    monkeypatch.undo()
    assert callback_address(flag) != _c_library_strlen()
    assert_callback_follows_the_flag(flag)


def test_the_python_callback_can_be_asked_for():
    flag = StopFlag(in_python=True)
    assert callback_address(flag) != _c_library_strlen()
    assert_callback_follows_the_flag(flag)
