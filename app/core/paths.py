"""Where llamadesk keeps its data and configuration.

The platform's usual folders (platformdirs), unless LLAMADESK_HOME points both somewhere else
(tests, portable installs, a Pi with its data on a USB disk).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

from llamadesk.app.core.atomic_file import UnwritableFolder
from llamadesk.app.core.errors import LlamadeskError

HOME_ENV = "LLAMADESK_HOME"
# A data or config folder that cannot be written: the environment fails, no output to choose.
HOME_NOT_WRITABLE = UnwritableFolder(f"make it writable (or set {HOME_ENV} to another folder)", LlamadeskError)


def data_dir() -> Path:
    """The folder for models, the conversation store and other data; created on demand."""
    home = os.environ.get(HOME_ENV)
    return _made_folder(Path(home) / "data" if home else Path(platformdirs.user_data_dir("llamadesk")), "data")


def config_dir() -> Path:
    """The folder for the config file; created on demand."""
    home = os.environ.get(HOME_ENV)
    return _made_folder(Path(home) / "config" if home else Path(platformdirs.user_config_dir("llamadesk")), "config")


def models_dir() -> Path:
    """The folder where llamadesk puts models it makes (starter assembly, conversions)."""
    return _made_folder(data_dir() / "models", "models")


def _made_folder(path: Path, what: str) -> Path:
    """`path`, created if it is not there; LlamadeskError saying what is in the way if it cannot be.

    A file in the folder's place made every command (and the app) end on "File exists: PATH".
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LlamadeskError(
            f"{path} is not a folder, and llamadesk keeps its {what} there; move it away "
            f"(or set {HOME_ENV} to another folder)"
        ) from None
    except OSError as err:
        raise LlamadeskError(
            f"cannot create llamadesk's {what} folder {path} ({err.strerror or err}); {HOME_NOT_WRITABLE.remedy}"
        ) from None
    return path


_OLLAMA_BLOB = re.compile(r"sha256-[0-9a-f]{64}")


def other_apps_store(path: Path) -> str | None:
    """The app whose content-addressed store holds `path` ("Ollama" for a blob), else None.

    Nothing may be written there: a file beside a blob (an eval sidecar, an imatrix) is one the
    other app does not know, in a folder it owns and prunes."""
    if path.parent.name == "blobs" and _OLLAMA_BLOB.fullmatch(path.name):
        return "Ollama"
    return None
