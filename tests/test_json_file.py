"""read_json_object: a JSON object from a file, or one line saying what is wrong with the file."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import nesting_exceeds, parse_json_object, read_json_object


def _refusal(path, **limits) -> str:
    with pytest.raises(BadInputError) as err:
        read_json_object(path, "model config", **limits)
    message = str(err.value)
    assert err.value.exit_code == 2
    assert "\n" not in message and str(path) in message and "model config" in message
    return message


def test_an_object_is_returned_as_parsed(tmp_path):
    path = tmp_path / "config.json"
    data = {"a": [1, 2.5, {"b": None}], "c": "[[[{{{", "d": True}
    path.write_text(json.dumps(data))
    assert read_json_object(path, "model config") == data


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    assert read_json_object(path, "model config") == {"a": 1}


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ("5", "int"), ('"text"', "str"), ("null", "NoneType")])
def test_anything_but_an_object_is_refused(tmp_path, text, kind):
    path = tmp_path / "config.json"
    path.write_text(text)
    assert f"not {kind}" in _refusal(path)


@pytest.mark.parametrize("raw", [b'{"a": }', b"", b'{"a": 1', b'{"a": 1' + b"0" * 5000 + b"}"])
def test_what_is_not_json_is_refused(tmp_path, raw):
    path = tmp_path / "config.json"
    path.write_bytes(raw)
    assert "not valid JSON" in _refusal(path)


def test_text_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"a": "\xff"}')
    assert "not UTF-8" in _refusal(path)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "config.json"
    with open(path, "wb") as f:
        f.truncate(10 * 1024**3)  # sparse: reading it would take minutes and 10 GB
    assert "10.0 GiB" in _refusal(path)
    path.write_text('{"a": "' + "x" * 100 + '"}')
    assert "more than the 64 B" in _refusal(path, max_bytes=64)
    assert read_json_object(path, "model config", max_bytes=200) == {"a": "x" * 100}


def test_what_is_not_a_regular_file_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    # Opening a FIFO for reading would block until a writer comes; the check must not open it.
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(_refusal(fifo)), daemon=True)
    worker.start()
    worker.join(10)
    assert outcome and "not a regular file" in outcome[0]
    assert "not a regular file" in _refusal(tmp_path)
    if Path("/dev/zero").exists():  # endless: a reader without the check never returns
        assert "not a regular file" in _refusal(Path("/dev/zero"))


def test_a_missing_file_is_refused_naming_it(tmp_path):
    assert "cannot be read" in _refusal(tmp_path / "config.json")


def test_nesting_is_capped_before_parsing(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"a": ' + "[" * 10 + "]" * 10 + "}")  # 11 levels
    assert read_json_object(path, "model config", max_depth=11)["a"] == [[[[[[[[[[]]]]]]]]]]
    assert "more than 10 levels" in _refusal(path, max_depth=10)
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")  # far past the parser's recursion limit
    assert "more than 64 levels" in _refusal(path)
    path.write_text('{"a": "' + "[" * 100 + '"}')  # brackets inside a string do not nest
    assert read_json_object(path, "model config", max_depth=2) == {"a": "[" * 100}


def test_unbalanced_brackets_are_reported_as_bad_json_not_as_depth(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"a": [[[}')
    assert "not valid JSON" in _refusal(path, max_depth=2)


def _depth(value) -> int:
    """The reference: nesting depth by plain recursion over the parsed value."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _random_value(rng: random.Random, depth: int):
    kind = rng.random()
    if depth <= 0 or kind < 0.3:
        return rng.choice([1, -2.5, "x[", "]}{", '"\\', None, True, "\\\\]"])
    if kind < 0.65:
        return [_random_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))]
    return {f"k{i}[": _random_value(rng, depth - 1) for i in range(rng.randrange(0, 4))}


def test_nesting_check_agrees_with_a_recursive_walk_on_random_json():
    rng = random.Random(7)
    for _ in range(500):
        value = _random_value(rng, rng.randrange(0, 12))
        text = json.dumps(value, indent=rng.choice([None, 1]))
        depth = _depth(value)
        for limit in (max(depth - 1, 0), depth, depth + 1):
            assert nesting_exceeds(text, limit) == (depth > limit), (text, limit)


def test_parse_names_the_source_and_what_it_is():
    with pytest.raises(BadInputError, match=r"^x\.safetensors: the safetensors header must be a JSON object"):
        parse_json_object("[]", "x.safetensors", "safetensors header")


@pytest.mark.parametrize(
    "escaped", [r"Be brief.\ud800", r"\udfff", r"x\udc00\ud800y", r"\ud83d", r"\uDBFF tail"], ids=str
)
def test_half_a_character_is_refused_wherever_it_is(tmp_path, escaped):
    # A lone surrogate passed every check, then crashed chat, the app and doctor as it was
    # printed, stored in SQLite or tokenized (UnicodeEncodeError, an internal error).
    for document in (f'{{"system_prompt": "{escaped}"}}', f'{{"a": [1, {{"{escaped}": 2}}]}}'):
        path = tmp_path / "config.json"
        path.write_text(document)
        with pytest.raises(BadInputError, match=r"without its pair \(half a character"):
            read_json_object(path, "config")


def test_whole_characters_and_escaped_backslashes_are_text(tmp_path):
    assert parse_json_object(r'{"a": "\ud83d\ude00", "b": "\\ud800", "c": "\u00e9"}', "x", "config") == {
        "a": "😀",
        "b": "\\ud800",
        "c": "é",
    }
