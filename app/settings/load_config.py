"""How models load on this machine, as the user fixed it: `load.json` under the config folder.

Flags win over this file, and this file wins over what runtime_settings would choose. A Pi keeps
its small-context profile here (packaging/profiles/pi5-load.json); a laptop might pin threads.
Every key is optional, and each is checked for its type and range (the same as its flag's,
core/value_ranges) before llama.cpp sees it:

    {"ctx": 2048, "threads": 4, "gpu_layers": 0, "flash_attn": true, "kv_type": "q8_0",
     "mmap": true, "mlock": false, "batch": 256}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.memory_budget import KV_CACHE_TYPES
from llamadesk.app.core.paths import config_dir
from llamadesk.app.core.rpc_endpoints import parse_endpoints
from llamadesk.app.core.value_ranges import BATCH, CONTEXT, GPU_LAYERS, THREADS, shown
from llamadesk.app.engine.types import LoadSettings

LOAD_CONFIG_FILE = "load.json"
LOAD_CONFIG_MAX_BYTES = 64 * 1024  # a dozen keys
LOAD_CONFIG_MAX_DEPTH = 2  # a flat object


def _flag(value: object, name: str) -> bool:
    # JSON true is a Python int too, and 1 is not true here: check bools exactly.
    if not isinstance(value, bool):
        raise BadInputError(f"{name} must be true or false, not {shown(value)}")
    return value


def _kv_type(value: object, name: str) -> str:
    if not isinstance(value, str) or value not in KV_CACHE_TYPES:
        raise BadInputError(f"{name} must be one of {', '.join(KV_CACHE_TYPES)}, not {shown(value)}")
    return str(value)


def _servers(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise BadInputError(f'{name} must be text like "host:50052,host2:50052", not {shown(value)}')
    parse_endpoints(value, name)  # said here, naming the file, not later as if --rpc had been given
    return value


# key in load.json -> (LoadSettings field, its check: the value when usable, else BadInputError)
KEYS: dict[str, tuple[str, Callable[[object, str], Any]]] = {
    "ctx": ("n_ctx", CONTEXT.check),
    "threads": ("n_threads", THREADS.check),
    "gpu_layers": ("n_gpu_layers", GPU_LAYERS.check),
    "flash_attn": ("flash_attn", _flag),
    "kv_type": ("kv_cache_type", _kv_type),
    "mmap": ("use_mmap", _flag),
    "mlock": ("use_mlock", _flag),
    "batch": ("n_batch", BATCH.check),
    "rpc": ("rpc_servers", _servers),
}


def load_config_path() -> Path:
    return config_dir() / LOAD_CONFIG_FILE


def configured_load_settings(path: Path | None = None) -> LoadSettings:
    """LoadSettings from load.json (all defaults when there is none); bad files are BadInputError."""
    path = path or load_config_path()
    if not path.exists() and not path.is_symlink():
        return LoadSettings()
    data = read_json_object(path, "load settings", max_bytes=LOAD_CONFIG_MAX_BYTES, max_depth=LOAD_CONFIG_MAX_DEPTH)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise BadInputError(f"{path}: unknown setting {key[:40]!r}; known: {', '.join(KEYS)}")
        name, check = KEYS[key]
        if value is None:  # null: let llamadesk choose, as if the key were not there
            continue
        try:
            values[name] = check(value, key)
        except BadInputError as err:
            raise BadInputError(f"{path}: {err}; fix it or delete the line") from None
    return LoadSettings(**values)


def merged(base: LoadSettings, overrides: dict[str, Any]) -> LoadSettings:
    """`base` with every override that is not None (flags over the file)."""
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
