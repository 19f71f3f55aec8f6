"""PEFT's per-module `rank_pattern` / `alpha_pattern` keys, matched as PEFT matches them, safely.

PEFT gives a module the value of the first key for which `(.*\\.)?(KEY)$` matches the module's
name (`model.layers.3.self_attn.q_proj`). The keys are regular expressions from a downloaded file,
and Python's `re` cannot be interrupted: a key such as `(a+)+$` would hang the conversion. Real
keys are module names, sometimes with a class (`layers.[0-3].mlp`) or one `.*`; those are
accepted, and anything with other repetition or groups is refused, which keeps matching linear.
"""

from __future__ import annotations

import re

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.value_ranges import shown

MAX_KEY_LENGTH = 200
# Letters, digits, _ - . and character classes; `^`/`$` anchors and `|` alternatives.
ALLOWED = re.compile(r"^[A-Za-z0-9_.\-^$|]*(\.\*)?[A-Za-z0-9_.\-^$|]*$")
CLASS = re.compile(r"\[[A-Za-z0-9_\-]*\]")


def check_pattern_key(key: object, source: str, field: str) -> str:
    """`key` when it is a pattern PEFT would accept and llamadesk can match in bounded time."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadInputError(f"{source}: a {field} key that is not a module name ({shown(key)}); the config is damaged")
    if not ALLOWED.match(CLASS.sub("x", key)):  # each [class] matches one character, like a letter
        raise BadInputError(
            f"{source}: {field} key {shown(key)} uses regular-expression features llamadesk does not accept "
            "(module names, [classes], | and one .* are); rewrite it as module names"
        )
    try:
        re.compile(key)
    except re.error:
        raise BadInputError(
            f"{source}: {field} key {shown(key)} is not a valid pattern; the config is damaged"
        ) from None
    return key


def pattern_value(patterns: dict[str, object], module: str, default: object) -> object:
    """The value PEFT gives `module`: that of the first key matching the end of its name, else `default`."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default
