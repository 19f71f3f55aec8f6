"""How models load on this machine, as the user fixed it: `load.json` under the config folder.

Flags win over this file, and this file wins over what runtime_settings would choose. A Pi keeps
its small-context profile here (packaging/profiles/pi5-load.json); a laptop might pin threads.
Every key is optional:

    {"ctx": 2048, "threads": 4, "gpu_layers": 0, "flash_attn": true, "kv_type": "q8_0",
     "mmap": true, "mlock": false, "batch": 256}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.paths import config_dir
from llamadesk.app.engine.types import LoadSettings

LOAD_CONFIG_FILE = "load.json"
# key in load.json -> (LoadSettings field, accepted JSON type)
KEYS: dict[str, tuple[str, type]] = {
    "ctx": ("n_ctx", int),
    "threads": ("n_threads", int),
    "gpu_layers": ("n_gpu_layers", int),
    "flash_attn": ("flash_attn", bool),
    "kv_type": ("kv_cache_type", str),
    "mmap": ("use_mmap", bool),
    "mlock": ("use_mlock", bool),
    "batch": ("n_batch", int),
    "rpc": ("rpc_servers", str),
}


def load_config_path() -> Path:
    return config_dir() / LOAD_CONFIG_FILE


def configured_load_settings(path: Path | None = None) -> LoadSettings:
    """LoadSettings from load.json (all defaults when there is none); bad files are BadInputError."""
    path = path or load_config_path()
    if not path.exists():
        return LoadSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path} is not valid JSON ({err}); fix it or delete it") from err
    if not isinstance(data, dict):
        raise BadInputError(f'{path} must hold a JSON object like {{"ctx": 2048}}; fix it or delete it')
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise BadInputError(f"{path}: unknown setting {key!r}; known: {', '.join(KEYS)}")
        name, kind = KEYS[key]
        # JSON true is a Python int too: check bools exactly.
        if value is not None and (type(value) is not kind):
            raise BadInputError(f"{path}: {key} must be a {kind.__name__}, not {json.dumps(value)}")
        if value is not None:
            values[name] = value
    return LoadSettings(**values)


def merged(base: LoadSettings, overrides: dict[str, Any]) -> LoadSettings:
    """`base` with every override that is not None (flags over the file)."""
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
