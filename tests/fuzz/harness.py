"""Feeding hostile cases to llamadesk and checking each was refused the way users are promised.

    results = run_cases([cli_case("info", path) ...])
    for r in results: assert_refused(r)

The promise (README "Robustness"): bad input gets exit 2 (1 for a failure of the environment),
one line on stderr starting "llamadesk: ", no traceback, no signal, no hang, bounded memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli_case(case_id: str, *argv: str, **extra) -> dict:
    return {"id": case_id, "argv": [str(a) for a in argv], **extra}


def call_case(case_id: str, target: str, *args, **extra) -> dict:
    return {"id": case_id, "call": target, "args": [str(a) if isinstance(a, Path) else a for a in args], **extra}


def run_cases(
    cases: list[dict], tmp_path: Path, preload: tuple[str, ...] = ("llamadesk.app.cli",), overall_timeout: float = 900
) -> dict[str, dict]:
    """Each case in its own forked child of one driver process; results by case id."""
    spec = tmp_path / "fuzz-cases.json"
    spec.write_text(json.dumps({"cases": cases, "preload": list(preload)}))
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.fork_driver", str(spec)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=overall_timeout,
        env={**os.environ},
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["id"]] = result
    missing = [c["id"] for c in cases if c["id"] not in results]
    assert not missing, f"the driver stopped before {missing[:3]}: {done.stderr[-2000:]}"
    return results


def problems(result: dict, codes: tuple[int, ...] = (2,)) -> str | None:
    """What is wrong with how a case ended, or None when it was refused cleanly."""
    if result["status"] != "exit":
        return f"{result['status']} {result['code']} after {result['seconds']} s; stderr: {result['stderr'][-800:]}"
    if result["code"] not in codes:
        return f"exit {result['code']} (wanted {codes}); stderr: {result['stderr'][-800:]}"
    if "Traceback" in result["stderr"]:
        return f"a traceback: {result['stderr'][-800:]}"
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    if result["code"] != 0 and (len(lines) != 1 or not lines[0].startswith("llamadesk: ")):
        return f"not one 'llamadesk: ' line: {result['stderr'][-800:]!r}"
    return None


def assert_all_refused(results: dict[str, dict], codes: tuple[int, ...] = (2,)) -> None:
    bad = {case_id: why for case_id, r in results.items() if (why := problems(r, codes))}
    assert not bad, f"{len(bad)} of {len(results)} cases not refused cleanly:\n" + "\n".join(
        f"  {case_id}: {why}" for case_id, why in list(bad.items())[:15]
    )
