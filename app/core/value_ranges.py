"""The range every number a user sets must fall in, defined once.

Flags, load.json, config.json and the app's settings form all check against these, so a value one
of them accepts the others accept too. Why ranges at all: llama.cpp trusts what it is given. 100000
threads overrun ggml's thread table (GGML_MAX_N_THREADS is 512) and segfault; a temperature of
"hot" reaches the sampler as a string; a context beyond 32 bits wraps around in its C type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llamadesk.app.core.errors import BadInputError

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ValueRange:
    """Numbers from `low` to `high` (both included); `whole` ones are integers."""

    low: int | float
    high: int | float
    whole: bool = False

    def describe(self) -> str:
        if self.whole:
            return f"a whole number from {self.low} to {self.high}"
        return f"a number from {self.low:g} to {self.high:g}"

    def check(self, value: object, name: str) -> int | float:
        """`value` itself when it is in range; else BadInputError "NAME must be ..., not VALUE".

        JSON's true and false are Python ints too: they are refused as what they are, booleans.
        """
        number_types = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types):
            raise BadInputError(f"{name} must be {self.describe()}, not {shown(value)}")
        # NaN compares false with everything, so the range test refuses it too.
        if not self.low <= value <= self.high:
            raise BadInputError(f"{name} must be {self.describe()}, not {shown(value)}")
        return value

    def parse(self, text: str, name: str) -> int | float:
        """The number written in `text`, checked (for fields a user types into)."""
        try:
            value: int | float = int(text) if self.whole else float(text)
        except ValueError:
            raise BadInputError(f"{name}: '{text}' is not {'a whole number' if self.whole else 'a number'}") from None
        return self.check(value, name)


def shown(value: object, limit: int = 40) -> str:
    """A value as the user wrote it in JSON, cut short: error lines stay one short line."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- loading a model (flags and load.json) ---------------------------------------------------
# ggml's GGML_MAX_N_THREADS: llama.cpp writes past a fixed table beyond this and crashes.
THREADS = ValueRange(1, 512, whole=True)
# llama_context_params.n_ctx is a uint32; whether a context fits memory is checked when loading.
CONTEXT = ValueRange(1, UINT32_MAX, whole=True)
# A batch larger than the context is cut to it when loading.
BATCH = ValueRange(1, UINT32_MAX, whole=True)
# More layers than the model has means all of them (llama.cpp clamps), so only the C type bounds it.
GPU_LAYERS = ValueRange(0, INT32_MAX, whole=True)

# -- a conversation (flags, config.json and the settings form) ---------------------------------
TEMPERATURE = ValueRange(0, 2)
TOP_P = ValueRange(0, 1)
REPEAT_PENALTY = ValueRange(1, 2)
MAX_TOKENS = ValueRange(1, INT32_MAX, whole=True)
# llama.cpp's seed is a uint32: 2**32 wraps to 0, and 0xFFFFFFFF (LLAMA_DEFAULT_SEED, which -1
# becomes) means "a random seed": a number that looks fixed but does not reproduce.
SEED = ValueRange(0, UINT32_MAX - 1, whole=True)
# A conversation needs room for its chat template, a question and a reply.
CHAT_CONTEXT = ValueRange(256, UINT32_MAX, whole=True)

# -- the prompt cache on disk (config.json, --prompt-cache-mb) ------------------------------------
# MiB; 0 turns it off. The upper bound only keeps the byte count within 64 bits.
PROMPT_CACHE_MB = ValueRange(0, 2**40, whole=True)

# -- segments the app translates at once (config.json's translate_parallel) -----------------------
# The range translate --parallel and serve --parallel accept too.
PARALLEL = ValueRange(1, 64, whole=True)
