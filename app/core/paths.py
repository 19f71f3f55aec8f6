"""Where llamadesk keeps its data and configuration.

The platform's usual folders (platformdirs), unless LLAMADESK_HOME points both somewhere else
(tests, portable installs, a Pi with its data on a USB disk).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "LLAMADESK_HOME"


def data_dir() -> Path:
    """The folder for models, the conversation store and other data; created on demand."""
    home = os.environ.get(HOME_ENV)
    path = Path(home) / "data" if home else Path(platformdirs.user_data_dir("llamadesk"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """The folder for the config file; created on demand."""
    home = os.environ.get(HOME_ENV)
    path = Path(home) / "config" if home else Path(platformdirs.user_config_dir("llamadesk"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """The folder where llamadesk puts models it makes (starter assembly, conversions)."""
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
