"""Structured output: a schema the grammar cannot honour is a 400 naming the keyword, never a reply
that breaks it, and never llama.cpp's grammar dump (request literals and all) on the server's log."""

from __future__ import annotations

import re

import httpx
import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine import json_grammar
from llamadesk.app.engine.json_grammar import json_schema_grammar
from tests.serve_process import MODEL, serving

HI = [{"role": "user", "content": "Hi"}]
BAD_PATTERN = {"type": "string", "pattern": "^hunter2\\b$"}  # the converter writes GBNF llama.cpp cannot parse
SECRET_SCHEMA = {"type": "object", "properties": {"password": {"const": "hunter2-SECRET"}, "x": {"enum": []}}}


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "integer", "minimum": 5, "maximum": 9}, "schema.minimum"),
        ({"type": "number", "exclusiveMaximum": 3}, "schema.exclusiveMaximum"),
        ({"type": "array", "items": {"type": "integer", "multipleOf": 2}}, "schema.items.multipleOf"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "schema.uniqueItems"),
        ({"properties": {"a": {"not": {"type": "string"}}}}, "schema.properties.a.not"),
        ({"$defs": {"n": {"type": "integer", "maximum": 3}}, "$ref": "#/$defs/n"}, "schema.$defs.n.maximum"),
        ({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}, "schema.anyOf[1].minimum"),
    ],
)
def test_a_keyword_the_grammar_would_ignore_is_refused_by_name(schema, where):
    with pytest.raises(BadInputError, match=re.escape(where) + " cannot be enforced"):
        json_schema_grammar(schema)


def test_keyword_names_used_as_property_names_or_constants_are_fine():
    assert "minimum" in json_schema_grammar({"type": "object", "properties": {"minimum": {"type": "integer"}}})
    assert "maximum" in json_schema_grammar({"const": {"maximum": 1}})


@pytest.mark.parametrize(
    "schema",
    [{"enum": []}, {"anyOf": []}, {"oneOf": []}, {"type": []}, SECRET_SCHEMA],
    ids=["enum", "anyOf", "oneOf", "type", "nested"],
)
def test_an_empty_union_is_refused_before_llama_cpp_sees_it(schema):
    with pytest.raises(BadInputError, match="is empty"):
        json_schema_grammar(schema)


def test_a_grammar_llama_cpp_cannot_parse_is_refused_without_a_word_on_stderr(monkeypatch, capfd):
    # llama.cpp prints a grammar it cannot parse to stderr, past the log callback: request literals
    # on the server's log. A word boundary (\\b) in a pattern makes the converter write one; so does
    # an empty union were it not refused by name first.
    monkeypatch.setattr(json_grammar, "_check_enforceable", lambda schema: None)
    for schema in (BAD_PATTERN, {"enum": []}):
        with pytest.raises(BadInputError, match="llama.cpp cannot read"):
            json_schema_grammar(schema)
    assert capfd.readouterr().err == ""
    assert "root ::=" in json_schema_grammar({"type": "string", "pattern": "^ab$"})


@pytest.mark.slow
def test_refused_schemas_are_400s_that_leave_the_log_one_line_each():
    with serving("--threads", "1", "--max-tokens", "8") as served, httpx.Client(base_url=served.url) as http:
        openai_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": SECRET_SCHEMA}}
        bounded = {"type": "integer", "minimum": 5, "maximum": 9}
        responses = [
            http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI, "response_format": openai_format}),
            http.post("/api/chat", json={"model": MODEL, "messages": HI, "stream": False, "format": SECRET_SCHEMA}),
            http.post("/api/chat", json={"model": MODEL, "messages": HI, "stream": False, "format": bounded}),
            http.post("/api/chat", json={"model": MODEL, "messages": HI, "stream": False, "format": BAD_PATTERN}),
        ]
        assert [r.status_code for r in responses] == [400, 400, 400, 400]
        assert "minimum" in responses[2].json()["error"]
        log = served.log_text()
    assert "hunter2" not in log and "::=" not in log, log


@pytest.mark.parametrize(
    "pattern",
    ["^(a{0,10}b?){0,50}$", "^(a?b?){0,50}$", "^((a{0,80}){0,80})$", "^(a*)*$", "^(a|b?)+$", "^(?<n>a?)*$"],
)
def test_a_pattern_repeating_what_can_match_nothing_is_refused(pattern):
    # Each token took llama.cpp's grammar tens of seconds (25 s for the first), in a C call no stop reaches.
    with pytest.raises(BadInputError, match="repeats a part that can match nothing"):
        json_schema_grammar({"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}})


@pytest.mark.parametrize(
    "pattern",
    ["^(ab?){0,50}$", "^([a-z]{1,10} ?){0,20}$", "^(a{1,10}){1,500}$", "^[a-z]*$", "^((x)?y?)?$", "^(ab){2}$"],
)
def test_patterns_whose_repeated_parts_always_match_something_are_kept(pattern):
    assert "root ::=" in json_schema_grammar({"type": "string", "pattern": pattern})


def test_refs_that_only_name_each_other_are_said_as_such():
    schema = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    with pytest.raises(BadInputError, match=r"\$ref #/\$defs/b leads nowhere") as err:
        json_schema_grammar(schema)
    assert "KeyError" not in str(err.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pattern", ["^a]$", "^[]a]+$", "^a}$", "^a{$", "^x{2,}y]$"])
def test_a_bracket_or_brace_that_closes_nothing_is_a_literal_not_a_hang(pattern):
    # llama-cpp-python's converter looped for ever on a stray "]" or "}", holding a server thread at 100% CPU.
    assert "root ::=" in json_schema_grammar({"type": "string", "pattern": pattern})


@pytest.mark.parametrize(
    ("pattern", "spelled"),
    [
        (r"^\d{3}-\d{4}$", "^[0-9]{3}-[0-9]{4}$"),
        (r"^[\w.-]+@[\w-]+\.[a-z]{2,}$", r"^[a-zA-Z0-9_.-]+@[a-zA-Z0-9_-]+[\x2E][a-z]{2,}$"),
        (r"^\S+$", r"^[^ \t\n\r\x0B\x0C]+$"),
        (r"^[\d\-]+$", r"^[0-9\x2D]+$"),
        (r"^\(\d\)$", r"^\([0-9]\)$"),
        (r"\d+", "^([0-9]+)$"),
        (r"^abc", "^(abc)$"),
    ],
)
def test_regex_escapes_are_spelled_as_the_grammar_reads_them(pattern, spelled):
    from llamadesk.app.engine.json_grammar import _pattern_for_converter

    assert _pattern_for_converter(pattern) == spelled
    assert "root ::=" in json_schema_grammar({"type": "string", "pattern": pattern})
