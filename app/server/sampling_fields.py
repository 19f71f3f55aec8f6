"""Request fields shared by both APIs: sampling ranges, messages and JSON output, checked for type and range."""

from __future__ import annotations

from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import ChatMessage
from llamadesk.app.server.api_errors import ApiError
from llamadesk.app.server.request_fields import Fields

MAX_MODEL_NAME = 256
MAX_MESSAGES = 1024
SEED_RANGE = (-(2**63), 2**64 - 1)
UINT32 = 2**32


def llama_seed(seed: int | None) -> int | None:
    """Any 64-bit seed as the 32-bit seed llama.cpp takes; 0xFFFFFFFF would mean 'random', so it is skipped."""
    if seed is None:
        return None
    value = seed % UINT32
    return value if value != UINT32 - 1 else 0


def model_name(fields: Fields) -> str:
    name = fields.string("model", required=True, max_length=MAX_MODEL_NAME)
    if not name:
        raise ApiError(400, "'model' must name a model; GET /v1/models lists them", param="model")
    return name


def _content_text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of parts of which only text is served here."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"'{where}' may hold only text parts; this server serves text models", param=where)
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError(400, f"'{where}' must be a string or a list of text parts", param=where)


ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# Parts of a message llamadesk's text models cannot take (Ollama's images, either API's tool calls).
UNSERVED_MESSAGE_FIELDS = {"images": "images", "tool_calls": "tool calls"}


def chat_messages(value: Any) -> list[ChatMessage]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "'messages' must be a non-empty list of messages", param="messages")
    if len(value) > MAX_MESSAGES:
        raise ApiError(400, f"'messages' may hold at most {MAX_MESSAGES} messages", param="messages")
    messages: list[ChatMessage] = []
    for i, item in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"'{where}' must be an object with 'role' and 'content'", param=where)
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            allowed = "system, developer, user, assistant (tools are not served)"
            raise ApiError(400, f"'{where}.role' must be one of {allowed}", param=where)
        for unserved, what in UNSERVED_MESSAGE_FIELDS.items():
            if item.get(unserved):  # a model that cannot see them must not answer as if it did
                raise ApiError(400, f"'{where}.{unserved}': {what} are not served by llamadesk", param=where)
        messages.append({"role": ROLES[role], "content": _content_text(item.get("content"), f"{where}.content")})
    return messages


def json_output_grammar(schema: Any, where: str) -> str:
    """The grammar for a JSON schema from a request (both APIs' structured output)."""
    from llamadesk.app.engine.json_grammar import json_schema_grammar  # imports llama_cpp

    if not isinstance(schema, dict):
        raise ApiError(400, f"'{where}' must be a JSON schema object", param=where)
    try:
        return json_schema_grammar(schema)
    except BadInputError as err:
        raise ApiError(400, str(err), param=where) from None
    except RecursionError:
        raise ApiError(400, "the JSON schema is nested too deeply", param=where) from None


def any_json_object_grammar() -> str:
    from llamadesk.app.engine.json_grammar import JSON_OBJECT_SCHEMA, json_schema_grammar

    return json_schema_grammar(JSON_OBJECT_SCHEMA)
