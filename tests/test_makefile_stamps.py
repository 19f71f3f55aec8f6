"""The Makefile's install stamps: what makes `make run` and `make test` install again.

A pin bumped in STARTER_PACKAGES (in the Makefile) never reached an existing .venv: the
`.installed` stamp depended on pyproject.toml only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stamp", [".venv/.installed", ".venv/.test-installed"])
def test_a_changed_makefile_makes_the_install_stamps_stale(tmp_path, stamp):
    assert shutil.which("make"), "make is not installed (make test runs through it)"
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").write_text("")
    for name in (".venv/.installed", ".venv/.test-installed"):
        (tmp_path / name).write_text("")
    old, new = 1_000_000_000, 1_000_000_100
    for name in ("pyproject.toml", ".venv/bin/python"):
        os.utime(tmp_path / name, (old, old))
    for name in (".venv/.installed", ".venv/.test-installed"):
        os.utime(tmp_path / name, (new, new))
    os.utime(tmp_path / "Makefile", (old, old))

    def up_to_date() -> bool:  # make -q: exit 0 when nothing would run, 1 when something would
        return subprocess.run(["make", "-q", stamp], cwd=tmp_path, capture_output=True).returncode == 0

    assert up_to_date()
    os.utime(tmp_path / "Makefile", (new + 100, new + 100))  # a starter or test package pin bumped
    assert not up_to_date()
