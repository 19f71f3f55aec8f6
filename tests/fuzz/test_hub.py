"""A hostile Hub: the ETags, commit ids, file lists and answers a malicious mirror could send to
`llamadesk pull`, from the Hub stand-in (tests/hub_standin.py) at HF_ENDPOINT.

Every case runs in its own forked child (tests/fuzz/harness.py) with its own llamadesk home; they
share one HF_HOME (a repo each), so that huggingface-hub, which reads HF_* when it is imported, is
imported once before the children fork. Promised: an ETag is never a path (a hostile one is
hashed into a blob name and the pull works, inside HF_HOME); a commit id, file list or answer no
Hub would send is one line, exit 2; nothing is written outside HF_HOME and the llamadesk homes:
the whole scratch folder, its parent and the absolute paths the hostile names aim at are compared
before and after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fuzz.harness import assert_all_refused, cli_case, run_cases
from tests.gguf_samples import tiny_gguf_bytes
from tests.hub_standin import HubStandin, StandinFile

pytestmark = pytest.mark.timeout(600)

ESCAPE = f"llamadesk-escaped-{os.getpid()}"
TARGETS = [Path("/tmp", ESCAPE), Path("/", ESCAPE)]
HOSTILE_ETAGS = {
    "etag-traversal": "../../../../../escaped-etag",
    "etag-traversal-above-scratch": "../../../../../../escaped-etag",
    "etag-traversal-to-root": "../" * 40 + f"tmp/{ESCAPE}",
    "etag-absolute": f"/tmp/{ESCAPE}",
    "etag-dotdot": "..",
    "etag-dot": ".",
    "etag-blank": " ",
    "etag-backslashes": "..\\..\\..\\escaped-etag",
    "etag-uppercase-hex": "A" * 64,
    "etag-long": "a" * 4000,
    "etag-latin1": "caf\xe9/../x",
}
HOSTILE_COMMITS = {
    "commit-traversal": "../../../../escaped-commit",
    "commit-absolute": f"/tmp/{ESCAPE}",
    "commit-hex-then-traversal": "a" * 40 + "/../../../escaped-commit",
    "commit-short": "abc123",
    "commit-uppercase": "A" * 40,
    "commit-too-long": "a" * 41,
}
SIBLING_PATCHES: dict[str, object] = {
    "files-traversal-only": [{"rfilename": "../../escaped-Q4_K_M.gguf"}, {"rfilename": "/tmp/escaped-Q4_K_M.gguf"}],
    "files-names-not-text": [{"rfilename": 5}, {"rfilename": None}, {"rfilename": ["a.gguf"]}, {"rfilename": {}}],
    "files-name-with-newline": [{"rfilename": "M\nllamadesk: fake-Q4_K_M.gguf"}],
    "files-name-too-long": [{"rfilename": "M" * 300 + "-Q4_K_M.gguf"}],
    "files-name-missing": [{"size": 5}],
    "files-a-string": "M-Q4_K_M.gguf",
    "files-an-object": {"M-Q4_K_M.gguf": 1},
    "files-a-number": 5,
    "files-entries-not-objects": ["M-Q4_K_M.gguf", 5],
    "files-huge-list": [{"rfilename": f"f{n}-Q4_K_M.gguf"} for n in range(110_000)],
    "files-size-huge": [{"rfilename": "M-Q4_K_M.gguf", "size": 2**60}],
    "files-size-negative": [{"rfilename": "M-Q4_K_M.gguf", "size": -1}],
    "files-size-text": [{"rfilename": "M-Q4_K_M.gguf", "size": "4096"}],
    "files-size-fraction": [{"rfilename": "M-Q4_K_M.gguf", "size": 1.5}],
    "files-size-bool": [{"rfilename": "M-Q4_K_M.gguf", "size": True}],
    "files-lfs-sha-traversal": [
        {"rfilename": "M-Q4_K_M.gguf", "size": 9, "lfs": {"sha256": "../x", "size": 9, "pointerSize": 1}}
    ],
    "files-lfs-sha-number": [{"rfilename": "M-Q4_K_M.gguf", "lfs": {"sha256": 5, "size": 9, "pointerSize": 1}}],
    "files-lfs-size-huge": [
        {"rfilename": "M-Q4_K_M.gguf", "lfs": {"sha256": "0" * 64, "size": 2**62, "pointerSize": 1}}
    ],
    "files-lfs-text": [{"rfilename": "M-Q4_K_M.gguf", "lfs": "yes"}],
    "files-split-with-99999-parts": [{"rfilename": "M-Q4_K_M-00001-of-99999.gguf", "size": 9}],
}
LFS_EMPTY = {"rfilename": "M-Q4_K_M.gguf", "lfs": {}}
INFO_PATCHES: dict[str, dict] = {
    "commit-a-number": {"sha": 5},
    "commit-a-list": {"sha": ["a" * 40]},
    "commit-null": {"sha": None},
    "commit-empty": {"sha": ""},
}
RAW_ANSWERS = {
    "answer-not-json": b"<html>Welcome to the mirror</html>",
    "answer-nested-without-end": b"[" * 200_000,
    "answer-deep-object": b'{"siblings": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "answer-a-list": b'[{"sha": "' + b"a" * 40 + b'"}]',
    "answer-empty-object": b"{}",
    "answer-huge-number": b'{"id": "x/y", "sha": ' + b"9" * 5000 + b"}",
}
LINKED_SIZES = {"size-header-negative": "-5", "size-header-huge": "9" * 30}


def scratch_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


PRELOAD = ("llamadesk.app.cli", "llamadesk.app.commands.pull", "llamadesk.app.hub.pull")


def test_a_hostile_hub_never_gets_a_file_written_outside_the_cache(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    hf_home = scratch / "hf"
    model = tiny_gguf_bytes(tmp_path, "M-Q4_K_M.gguf")
    ok, refused = [], []
    with HubStandin() as hub:
        for name, value in hub.env(hf_home).items():  # for the driver, which imports huggingface-hub once
            monkeypatch.setenv(name, value)

        def case(case_id: str, repo: str, *args: str, expect: list) -> None:
            env = {"LLAMADESK_HOME": str(scratch / case_id)}
            expect.append(cli_case(case_id, "pull", repo, *args, "--json", env=env, timeout=60))

        for case_id, etag in HOSTILE_ETAGS.items():
            hub.add_repo(f"evil/{case_id}", {"M-Q4_K_M.gguf": StandinFile(model, etag=etag)})
            case(case_id, f"evil/{case_id}:Q4_K_M", expect=ok)
        hub.add_repo("evil/etag-plain-file", {"M-Q4_K_M.gguf": StandinFile(model, lfs=False, etag="../../../x")})
        case("etag-traversal-plain-file", "evil/etag-plain-file:Q4_K_M", expect=ok)
        # An empty "lfs" is read as none: a plain file, checked by its size alone, as the Hub's own are.
        hub.add_repo("evil/files-lfs-empty", {"M-Q4_K_M.gguf": model}, info_patch={"siblings": [LFS_EMPTY]})
        case("files-lfs-empty", "evil/files-lfs-empty:Q4_K_M", expect=ok)
        hub.add_repo("evil/size-header-unreadable", {"M-Q4_K_M.gguf": StandinFile(model, linked_size="lots")})
        case("size-header-unreadable", "evil/size-header-unreadable:Q4_K_M", expect=ok)
        for case_id, size in LINKED_SIZES.items():
            hub.add_repo(f"evil/{case_id}", {"M-Q4_K_M.gguf": StandinFile(model, linked_size=size)})
            case(case_id, f"evil/{case_id}:Q4_K_M", expect=refused)
        for case_id, commit in HOSTILE_COMMITS.items():
            hub.add_repo(f"evil/{case_id}", {"M-Q4_K_M.gguf": model}, commit_id=commit)
            case(case_id, f"evil/{case_id}:Q4_K_M", expect=refused)
        for case_id, patch in INFO_PATCHES.items():
            hub.add_repo(f"evil/{case_id}", {"M-Q4_K_M.gguf": model}, info_patch=patch)
            case(case_id, f"evil/{case_id}:Q4_K_M", expect=refused)
        for case_id, siblings in SIBLING_PATCHES.items():
            hub.add_repo(f"evil/{case_id}", {"M-Q4_K_M.gguf": model}, info_patch={"siblings": siblings})
            case(case_id, f"evil/{case_id}", expect=refused)
        for case_id, body in RAW_ANSWERS.items():
            hub.add_repo(f"evil/{case_id}", {"M-Q4_K_M.gguf": model}, raw_info=body)
            case(case_id, f"evil/{case_id}", expect=refused)
        hub.add_repo("good/Model-GGUF", {"M-Q4_K_M.gguf": model})
        for case_id, revision in (("revision-traversal", "../../../escaped"), ("revision-absolute", f"/tmp/{ESCAPE}")):
            case(case_id, "good/Model-GGUF:Q4_K_M", "--revision", revision, expect=refused)
        before, around = scratch_files(scratch), set(tmp_path.parent.iterdir())
        assert not any(target.exists() for target in TARGETS)
        results = run_cases(ok + refused, tmp_path, preload=PRELOAD)

    assert_all_refused({c["id"]: results[c["id"]] for c in refused})
    assert_all_refused({c["id"]: results[c["id"]] for c in ok}, codes=(0,))
    for c in ok:  # pulled into the cache, under a blob name that is a hash
        path = Path(json.loads(results[c["id"]]["stdout"])["path"])
        assert path.is_relative_to(hf_home) and path.resolve().is_relative_to(hf_home), (c["id"], path)
        assert path.read_bytes() == model
    # Blobs, and the marks saying llamadesk downloaded them (`<hash>.llamadesk-downloaded`).
    assert all(len(blob.name.removesuffix(".llamadesk-downloaded")) in (40, 64) for blob in hf_home.rglob("blobs/*"))
    # Nothing outside HF_HOME and each case's home, nowhere the hostile names point.
    homes = {hf_home} | {scratch / c["id"] for c in ok + refused}
    outside = [p for p in scratch_files(scratch) - before if not any(p.is_relative_to(h) for h in homes)]
    assert not outside, outside
    assert set(tmp_path.parent.iterdir()) - around <= {tmp_path}, set(tmp_path.parent.iterdir()) - around
    assert not any(target.exists() for target in TARGETS)
    assert not list(tmp_path.rglob("escaped*")) and not list(tmp_path.parent.glob("escaped*"))
    print(f"hub: {len(ok)} hostile ETags and headers pulled safely (exit 0), {len(refused)} refused (exit 2)")


def test_hostile_search_results_are_shown_or_refused_in_one_line(tmp_path):
    with HubStandin() as hub:
        hub.add_repo("odd/Counts-GGUF", {"M-Q4_K_M.gguf": b"x"}, info_patch={"downloads": "lots", "likes": [1]})
        hub.add_repo("odd/Date-GGUF", {"M-Q4_K_M.gguf": b"x"}, info_patch={"lastModified": "yesterday"})
        env = {**hub.env(tmp_path / "hf"), "LLAMADESK_HOME": str(tmp_path / "home")}
        results = run_cases(
            [
                cli_case("search-counts-not-numbers", "search", "Counts", "--json", env=env),
                cli_case("search-date-not-a-date", "search", "Date", "--json", env=env),
            ],
            tmp_path,
        )
    counts = results.pop("search-counts-not-numbers")
    assert_all_refused({"search-counts-not-numbers": counts}, codes=(0,))
    assert json.loads(counts["stdout"])[0]["downloads"] == 0
    assert_all_refused(results, codes=(0, 2))
