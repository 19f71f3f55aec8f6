"""Keeps bench/RESULTS.md: one `## name` section per benchmark script, each replaced in place."""

from __future__ import annotations

import argparse
import datetime
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = (
    "# Benchmark results\n\n"
    "Latest figures from the scripts in bench/; each section names the command that produced it.\n"
)


def update_section(name: str, body: str) -> None:
    """Replace (or append) the section `## name` of RESULTS.md with `body`, stamped with the date."""
    text = RESULTS.read_text() if RESULTS.exists() else TITLE
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {name}\n\nMeasured {stamp}.\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def command_line(script: str, parser: argparse.ArgumentParser, args: argparse.Namespace, skip=("no_write",)) -> str:
    """The `Command:` line of a section: the script with every option given a value other than its default."""
    words = [".venv/bin/python", f"bench/{script}"]
    for dest, value in vars(args).items():
        if dest in skip or value == parser.get_default(dest):
            continue
        flag = "--" + dest.replace("_", "-")
        words.append(flag if value is True else f"{flag} {value}")
    return "Command: `" + " ".join(words) + "`"
