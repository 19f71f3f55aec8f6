"""GBNF grammars that make a reply valid JSON: any JSON object, or one that follows a JSON schema.

llama.cpp samples only tokens the grammar allows, so the output parses by construction (unless
max_tokens cuts it short). The schema converter is llama-cpp-python's, the same one llama.cpp's
server uses; it lives here because only the engine imports llama_cpp. It never fetches a remote
`$ref` (llama-cpp-python's converter refuses with allow_fetch=False), so a schema in a request
cannot make the server open a URL.
"""

from __future__ import annotations

import json
from typing import Any

from llama_cpp import llama_grammar

from llamadesk.app.core.errors import BadInputError

# Any JSON object at the top level (what OpenAI's json_object and Ollama's "json" promise).
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF grammar for replies that validate against `schema`."""
    try:
        return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, KeyError, TypeError, AssertionError, NotImplementedError, RecursionError) as err:
        raise BadInputError(f"the JSON schema cannot be turned into a grammar ({type(err).__name__}: {err})") from err
