"""A request's JSON body, read under a size limit, and its fields checked before any work starts.

Every check raises ApiError(400) naming the field, so wrong types and out-of-range values are a
clear 4xx, never an exception deeper in the server (a 500).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request

from llamadesk.app.core.json_file import holds_lone_surrogate
from llamadesk.app.server.api_errors import ApiError


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object; 413 past `max_bytes` (checked while reading, not after)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise ApiError(413, f"the request body is larger than the server's limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:  # a chunked body without Content-Length
                raise ApiError(413, f"the request body is larger than the server's limit of {max_bytes} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # nobody will read the answer, but it must not count as a server error
        raise ApiError(400, "the client went away while sending the request") from None
    try:
        value = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, f"the request body is not valid JSON ({_parse_error(err)})") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if holds_lone_surrogate(value):  # fails wherever it is used as text (a schema's pattern: a 500)
        raise ApiError(
            400, "the request body holds a \\uD800-\\uDFFF escape without its pair (half a character), not text"
        )
    return value


def _parse_error(err: Exception) -> str:
    """What is wrong with a body json.loads refused, in a client's terms and whole words."""
    text = str(err)
    if "integer string conversion" in text:  # Python's own advice (sys.set_int_max_str_digits) is not the client's
        return "a number in it has thousands of digits"
    return text if len(text) <= 120 else text[:120].rsplit(" ", 1)[0] + " ..."


class Fields:
    """Typed access to a request object's fields; a missing optional field gives None."""

    def __init__(self, data: Mapping[str, Any], prefix: str = ""):
        self._data = data
        self._prefix = prefix

    def _bad(self, name: str, what: str) -> ApiError:
        return ApiError(400, f"'{self._prefix}{name}' must be {what}", param=f"{self._prefix}{name}")

    def present(self, name: str) -> bool:
        return self._data.get(name) is not None

    def raw(self, name: str) -> Any:
        return self._data.get(name)

    def string(self, name: str, required: bool = False, max_length: int | None = None) -> str | None:
        value = self._data.get(name)
        if value is None:
            if required:
                raise ApiError(400, f"'{self._prefix}{name}' is required", param=f"{self._prefix}{name}")
            return None
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        if max_length is not None and len(value) > max_length:
            raise self._bad(name, f"at most {max_length} characters")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self._data.get(name)
        if value is None:
            return None
        # bool is an int in Python; JSON's true is not a number. An int is always finite, and one
        # of 400 digits cannot even be asked (math.isfinite converts it to a float and overflows).
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise self._bad(name, "a number")
        if not low <= value <= high:
            raise self._bad(name, f"between {low:g} and {high:g}")
        return float(value)

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "an integer")
        if not low <= value <= high:
            raise self._bad(name, f"between {low} and {high}")
        return value

    def stop_list(self, name: str, max_items: int = 16, max_length: int = 256) -> tuple[str, ...]:
        """A stop sequence or a list of them (both APIs take either)."""
        value = self._data.get(name)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or len(items) > max_items
            or not all(isinstance(s, str) and 0 < len(s) <= max_length for s in items)
        ):
            raise self._bad(name, f"a string or a list of at most {max_items} non-empty strings")
        return tuple(items)

    def object(self, name: str) -> Fields | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._bad(name, "an object")
        return Fields(value, prefix=f"{self._prefix}{name}.")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)
