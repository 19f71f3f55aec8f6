"""GBNF grammars that make a reply valid JSON: any JSON object, or one that follows a JSON schema.

llama.cpp samples only tokens the grammar allows, so the output parses by construction (unless
max_tokens cuts it short). The schema converter is llama-cpp-python's, the same one llama.cpp's
server uses; it lives here because only the engine imports llama_cpp. It never fetches a remote
`$ref` (llama-cpp-python's converter refuses with allow_fetch=False), so a schema in a request
cannot make the server open a URL.

A schema comes from strangers, and the converter writes a bound like `maxLength: 20000` out as
20,000 nested groups: llama.cpp's recursive grammar parser then overflows its stack (the server
dies), and `minLength: 10**8` makes a grammar of gigabytes before llama.cpp sees it. So every
count a schema may give (lengths, item and property counts, a pattern's `{m,n}`) is bounded
before converting, and the grammar's nesting and size after.

The converter also drops some keywords without a word (`minimum`, `uniqueItems`, `not`, ...): the
grammar would let through replies the schema forbids, so a schema that uses one is refused, as is
a union with nothing in it (`enum: []`). And some schemas become GBNF llama.cpp cannot parse (an
empty union, some patterns), which its parser reports by printing the whole grammar, request
literals and all, on stderr: so the grammar is parsed once here, with stderr silenced.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any

import llama_cpp
from llama_cpp import llama_grammar

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.llama_log import use_default_log

# Any JSON object at the top level (what OpenAI's json_object and Ollama's "json" promise).
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}

# Counts a schema may set, and the largest accepted: each becomes up to that many nested groups.
# 500 keeps llama.cpp's parser far from its stack's end (it failed from about 2,000 here) and
# still allows a field of 500 characters or a list of 500 items.
BOUNDED_COUNTS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)
MAX_SCHEMA_COUNT = 500
MAX_GRAMMAR_NESTING = 1_000  # groups inside groups, in the grammar's text
MAX_GRAMMAR_CHARS = 1 << 20  # 1 MiB of grammar: far past what any useful schema makes
# Keywords llama-cpp-python's converter ignores: a reply could break any of them and still be
# "valid", so a schema naming one is refused rather than half enforced.
UNENFORCED_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
)
# Keywords whose value is a list of alternatives: an empty one allows nothing.
UNION_KEYWORDS = ("enum", "anyOf", "oneOf", "type")
# Where a schema holds more schemas (the converter's own walk): keyword -> named schemas, a list, or one.
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONES = ("items", "additionalProperties")
_PATTERN_REPEAT = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


def _check_counts(node: Any, where: str = "schema") -> None:
    """Every count in the schema is a small enough whole number; BadInputError naming the first that is not."""
    stack = [(node, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            here = f"{path}.{key}"
            if key in BOUNDED_COUNTS and isinstance(value, int | float) and not isinstance(value, bool):
                if not 0 <= value <= MAX_SCHEMA_COUNT:
                    raise BadInputError(
                        f"the JSON schema's {here} is {value}; counts in a schema must be 0 to {MAX_SCHEMA_COUNT}"
                    )
            elif key == "pattern" and isinstance(value, str):
                for repeat in _PATTERN_REPEAT.finditer(value):
                    counts = [int(n) for n in repeat.groups() if n]
                    if max(counts) > MAX_SCHEMA_COUNT:
                        raise BadInputError(
                            f"the JSON schema's {here} repeats {repeat.group(0)}; "
                            f"a pattern may repeat at most {MAX_SCHEMA_COUNT} times"
                        )
                if _repeats_what_can_be_empty(value):
                    raise BadInputError(
                        f"the JSON schema's {here} repeats a part that can match nothing (as in (a?b?){{0,50}}): "
                        "llama.cpp's grammar then weighs every way of sharing the text among the repeats, "
                        "minutes per token; make each repeated part match at least one character"
                    )
            else:
                stack.append((value, here))


def _repeats_what_can_be_empty(pattern: str) -> bool:
    """Whether `pattern` repeats (more than once) a part that can match the empty string.

    llama.cpp's grammar sampler keeps one parse stack per way the text so far can be matched;
    `(a{0,10}b?){0,50}` matches "aaa" in thousands of ways, and each token took it 25 s here
    (`(ab?){0,50}`, whose part is never empty, 0.02 s), in a C call no stop flag reaches: one
    request held the server's model for every client. Python's own regex parser measures the
    parts (re._parser: the width of each repeated subpattern, which `re` itself relies on); a
    pattern it cannot read (JavaScript-only syntax) is left to the converter, as before.
    """
    python_syntax = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)  # JavaScript's named groups: (?<name>...)
    try:
        parsed = re._parser.parse(python_syntax)  # type: ignore[attr-defined]
    except (re.error, RecursionError, OverflowError, ValueError):
        return False
    pending: list[Any] = [parsed]
    while pending:
        node = pending.pop()
        if isinstance(node, re._parser.SubPattern):  # type: ignore[attr-defined]
            pending.extend(node.data)
        elif isinstance(node, tuple | list):
            if len(node) == 2 and node[0] in _REPEATS:
                low, high, part = node[1]
                if high > 1 and part.getwidth()[0] == 0:
                    return True
            pending.extend(item for item in node if isinstance(item, tuple | list | re._parser.SubPattern))  # type: ignore[attr-defined]
    return False


_REPEATS = tuple(
    getattr(re._constants, name)  # type: ignore[attr-defined]
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(re._constants, name)  # type: ignore[attr-defined]
)


def _subschemas(node: dict[str, Any], path: str) -> list[tuple[Any, str]]:
    """The schemas inside `node`, each with its path; property names are names, not keywords."""
    found: list[tuple[Any, str]] = []
    for key in _SCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            found.extend((child, f"{path}.{key}.{name}") for name, child in node[key].items())
    for key in _SCHEMA_LISTS + _SCHEMA_ONES:
        value = node.get(key)
        if isinstance(value, list):
            found.extend((child, f"{path}.{key}[{i}]") for i, child in enumerate(value))
        elif isinstance(value, dict):
            found.append((value, f"{path}.{key}"))
    return found


def _check_enforceable(schema: Any) -> None:
    """Every keyword the schema uses is one the grammar enforces, and every union has a member;
    BadInputError naming the first that is not."""
    stack = [(schema, "schema")]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict):
            continue  # the converter reports a schema of the wrong shape
        for key in UNENFORCED_KEYWORDS:
            if key in node:
                raise BadInputError(
                    f"the JSON schema's {path}.{key} cannot be enforced by llamadesk's grammar; "
                    "leave it out and check that constraint on the reply yourself"
                )
        for key in UNION_KEYWORDS:
            if node.get(key) == []:
                raise BadInputError(f"the JSON schema's {path}.{key} is empty, so no value could follow it")
        stack.extend(_subschemas(node, path))


def _nesting(grammar: str) -> int:
    """How deeply the grammar's groups nest, outside its quoted literals and character classes."""
    depth = deepest = 0
    quote = None  # '"' inside a literal, ']' inside a character class
    escaped = False
    for char in grammar:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote is not None:
            if char == quote:
                quote = None
        elif char == '"':
            quote = '"'
        elif char == "[":
            quote = "]"
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


# One check at a time: two interleaved would restore each other's /dev/null as stderr for good.
_STDERR_SWAP = threading.Lock()


def _llama_cpp_parses(grammar: str) -> bool:
    """Whether llama.cpp's grammar parser accepts `grammar`. Asked here, with fd 2 on /dev/null,
    because on failure it prints the whole grammar (request literals and all) to stderr with
    fprintf, past the log callback llamadesk silences: the server's log got many lines per request.
    A grammar needs no vocabulary to be parsed."""
    use_default_log()  # its "failed to parse grammar" goes through the callback: no model may be loaded yet
    with _STDERR_SWAP:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            sampler = llama_cpp.llama_sampler_init_grammar(None, grammar.encode("utf-8"), b"root")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def _converter_failure(err: Exception) -> str:
    """What the converter's exception means, in the schema's terms (not Python's)."""
    if isinstance(err, KeyError) and str(err.args[0] if err.args else "").startswith("#"):
        return f"its $ref {err.args[0]} leads nowhere (a missing definition, or $refs that only name each other)"
    if isinstance(err, RecursionError):
        return "it refers to itself too deeply"
    text = str(err) or type(err).__name__
    return text if len(text) <= 200 else text[:200].rsplit(" ", 1)[0] + " ..."


# The converter copies a pattern's escapes into the grammar as they are, and GBNF knows only \t
# \n \r \\ \" \[ \] \xHH \uHHHH: `^\d{3}$` or `^a\.b$` made a grammar llama.cpp refused, so
# the most common patterns (dates, codes, versions) could not be asked for. Such escapes are
# spelled out first, as the classes and characters they stand for.
_SHORTHAND_CLASSES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " \\t\\n\\r\\x0B\\x0C"}
_KNOWN_TO_GBNF = set("tnr\\xu")  # escapes the grammar reads as the regex means them
_CONVERTER_UNESCAPES = set("+?(){}*|[]")  # what the converter itself turns back into a character


def _gbnf_character(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


def _pattern_for_converter(pattern: str) -> str:
    """`pattern` with the escapes GBNF cannot read spelled out (\\d, \\w, \\s and their negations
    outside a class, \\f, \\v, an escaped punctuation mark); what is unknown (\\b, \\1) stays, for
    the converter or llama.cpp to refuse as before. An unanchored pattern (JSON Schema's patterns
    match anywhere in the string) is anchored around a group: every string the grammar then allows
    still matches it, where the converter refused it ("Pattern must start with ^")."""
    starts = pattern.startswith("^")
    trailing_backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    ends = pattern.endswith("$") and trailing_backslashes % 2 == 0 and len(pattern) > int(starts)
    if not (starts and ends):
        pattern = "^(" + pattern[int(starts) : len(pattern) - int(ends)] + ")$"
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        character = pattern[i]
        if character == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            i += 2
            if escaped in _SHORTHAND_CLASSES:
                body = _SHORTHAND_CLASSES[escaped]
                out.append(body if in_class else f"[{body}]")
            elif escaped.lower() in _SHORTHAND_CLASSES and escaped.isupper() and not in_class:
                out.append(f"[^{_SHORTHAND_CLASSES[escaped.lower()]}]")
            elif escaped in "fv":
                out.append(_gbnf_character("\f" if escaped == "f" else "\v"))
            elif escaped.isalnum() or escaped in _KNOWN_TO_GBNF or (in_class and escaped in "[]"):
                out.append("\\" + escaped)
            elif in_class:
                out.append(_gbnf_character(escaped))
            elif escaped in _CONVERTER_UNESCAPES:
                out.append("\\" + escaped)
            else:  # `\.`, `\-`, `\/`: the character itself, as a class of one
                out.append(f"[{_gbnf_character(escaped)}]")
            continue
        if character == "[" and not in_class:
            in_class = True
            out.append(character)
            # A "]" right after "[" or "[^" is a member of the class, not its end (escaped: the
            # converter would end the class there).
            for lead in ("^", "]"):
                if pattern.startswith(lead, i + 1):
                    out.append("\\]" if lead == "]" else lead)
                    i += 1
        elif character == "]" and in_class:
            in_class = False
            out.append(character)
        elif not in_class and character == "{" and (quantifier := _QUANTIFIER.match(pattern, i)):
            out.append(quantifier.group(0))
            i = quantifier.end()
            continue
        elif not in_class and character in "]{}":
            # A literal bracket or brace (as regexes read one that opens or closes nothing): the
            # converter, given it bare, looped for ever on it (`^a]$`), holding a server thread.
            out.append("\\" + character)
        else:
            out.append(character)
        i += 1
    return "".join(out)


_QUANTIFIER = re.compile(r"\{\d+(?:,\d*)?\}")


def _converter_schema(node: Any) -> Any:
    """A copy of the schema whose patterns are spelled for the converter (_pattern_for_converter)."""
    if not isinstance(node, dict):
        return node
    copy = dict(node)
    if isinstance(copy.get("pattern"), str):
        copy["pattern"] = _pattern_for_converter(copy["pattern"])
    for key in _SCHEMA_MAPS:
        if isinstance(copy.get(key), dict):
            copy[key] = {name: _converter_schema(child) for name, child in copy[key].items()}
    for key in _SCHEMA_LISTS + _SCHEMA_ONES:
        value = copy.get(key)
        if isinstance(value, list):
            copy[key] = [_converter_schema(child) for child in value]
        elif isinstance(value, dict):
            copy[key] = _converter_schema(value)
    return copy


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF grammar for replies that validate against `schema`."""
    _check_counts(schema)
    _check_enforceable(schema)
    try:
        grammar = llama_grammar.json_schema_to_gbnf(json.dumps(_converter_schema(schema)))
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,  # a field of the wrong kind: `properties: [1]`, `items: 5`
        IndexError,
        AssertionError,
        NotImplementedError,
        RecursionError,
    ) as err:
        raise BadInputError(f"the JSON schema cannot be turned into a grammar: {_converter_failure(err)}") from err
    if len(grammar) > MAX_GRAMMAR_CHARS or _nesting(grammar) > MAX_GRAMMAR_NESTING:
        raise BadInputError(
            "the JSON schema makes a grammar too large or too deeply nested for llama.cpp; "
            "give it fewer or smaller bounds, or less nesting"
        )
    if not _llama_cpp_parses(grammar):  # after the size checks: a deep grammar overflows the parser's stack
        raise BadInputError(
            "the JSON schema makes a grammar llama.cpp cannot read (a `pattern` it cannot translate?); simplify it"
        )
    return grammar
