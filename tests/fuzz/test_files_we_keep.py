"""Hostile and broken copies of the files llamadesk keeps for itself: the conversation store,
config.json, load.json, the translation resume sidecar, and the text it is asked to translate.

Every case runs in its own forked child (tests/fuzz/harness.py). What each class must get:
- a damaged store is kept aside, byte for byte, and a fresh one opened; an unwritable one keeps
  working in memory; either way one line says so and the conversation goes on (exit 0);
- a bad config.json or load.json is one line naming the file and the setting, exit 2;
- a damaged sidecar line is skipped (its segment translated again), never a crash at the end; a
  sidecar that cannot be one is refused up front, exit 2;
- input with no end (/dev/zero) or too large is refused before it is read whole, exit 2.
Seeds are fixed, so every run feeds the same bytes.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from llamadesk.app.chat.store import ConversationSettings, Store
from llamadesk.app.chat.store_migrations import SCHEMA_VERSION
from llamadesk.app.translate.resume import SIDECAR_MAX_BYTES, ResumeLog
from llamadesk.app.translate.source_text import MAX_INPUT_BYTES
from tests.fuzz.harness import assert_all_refused, call_case, cli_case, problems, run_cases

pytestmark = pytest.mark.timeout(600)
PAGE = 4096
HERE = "tests.fuzz.test_files_we_keep"
CATALOG = "llamadesk.app.library.catalog"  # resolving -m imports huggingface-hub (~0.4 s)
# The children call functions of this module: imported once by the driver, not once per child.
PRELOAD = ("llamadesk.app.cli", "llamadesk.app.settings.user_config", HERE)


# -- what the children run ---------------------------------------------------------------------


def use_store(path: str, expect: str) -> None:
    """Open the store, read everything in it, then hold a conversation; print what happened.

    `expect`: "aside" (kept aside, fresh file), "memory" (not saved), "sound" (as it was), or
    "any" (random damage SQLite may or may not notice: whichever happened must hold together).
    """
    store_path = Path(path)
    original = store_path.read_bytes() if store_path.is_file() else None
    store = Store(store_path)
    for conversation in store.conversations():  # damage SQLite's check missed must not crash a read
        store.messages(conversation.id)
    conversation = store.new_conversation("fuzz", ConversationSettings())
    store.add_message(conversation.id, "user", "still here")
    assert [m.content for m in store.messages(conversation.id)] == ["still here"]
    asides = sorted(store_path.parent.glob(f"{store_path.stem}.damaged-*{store_path.suffix}"))
    outcome = "aside" if asides else "memory" if store.not_saved else "sound"
    assert expect in (outcome, "any"), (expect, outcome, store.notices)
    assert len(store.notices) == (0 if outcome == "sound" else 1), store.notices
    if outcome == "aside":
        assert len(asides) == 1 and asides[0].read_bytes() == original  # never deleted, never changed
        store.close()
        assert [c.title for c in Store(store_path).conversations()] == ["fuzz"]  # the fresh one saves
    elif outcome == "memory" and original is not None:
        assert store_path.read_bytes() == original
    print(json.dumps({"outcome": outcome}))


def fill_store_mid_session(path: str) -> None:
    """The disk fills in the middle of a conversation: the store goes on in memory, one line says so."""
    store = Store(Path(path))
    conversation = store.new_conversation("filling", ConversationSettings())
    store.add_message(conversation.id, "user", "before")
    # A file-size limit is a full disk for this process alone (SIGXFSZ ignored: writes fail instead).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = sum(p.stat().st_size for p in Path(path).parent.iterdir())
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    for n in range(100):
        store.add_message(conversation.id, "assistant", f"reply {n} " * 2000)
    assert store.not_saved is not None and len(store.notices) == 1
    assert len(store.messages(conversation.id)) == 101
    print(json.dumps({"outcome": "memory"}))


def read_sidecar(path: str) -> None:
    """Read a sidecar as a rerun would, and use every translation in it as the job does at the end."""
    log = ResumeLog(Path(path), SIDECAR_SETTINGS)
    text = "".join(log.get(source) or "" for source in ("Hello.", "Good morning."))
    assert all(isinstance(t, str) for t in log.done.values())
    if log.note:
        print(f"llamadesk: note: {log.note}", file=sys.stderr)
    print(json.dumps({"done": len(log.done), "text": text, "note": log.note}))


def read_config(path: str) -> None:
    from llamadesk.app.settings.user_config import load_config

    load_config(Path(path))


def translate_dev_zero_on_stdin() -> None:
    from llamadesk.app.cli import main

    zero = os.open("/dev/zero", os.O_RDONLY)
    os.dup2(zero, 0)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child exits with os._exit
    raise SystemExit(main(["translate", "--to", "fr"]))


# -- building the inputs -----------------------------------------------------------------------

SIDECAR_SETTINGS = {"model": "m", "strategy": "few-shot", "to": "fr", "mode": "document", "from": "en", "glossary": []}


def sound_store(path: Path) -> Path:
    store = Store(path, on_notice=lambda _line: None)
    conversation = store.new_conversation("before", ConversationSettings())
    for n in range(120):
        store.add_message(conversation.id, "user", f"message {n} " * 20)
    store.add_translation("en", "fr", "Hello", "Bonjour", "m")
    store.close()
    return path


def damaged_stores(folder: Path, template: bytes) -> dict[str, tuple[Path, str]]:
    """case id -> (store path, expected outcome), one folder per case."""
    rng = random.Random(20260107)
    cases: dict[str, tuple[bytes | None, str]] = {}
    pages = len(template) // PAGE
    for _ in range(10):
        cut = rng.randrange(1, len(template))
        cases[f"store-truncated-{cut}"] = (template[:cut], "any")
    for n in range(16):
        data = bytearray(template)
        for page in rng.sample(range(1, pages), rng.randint(1, 3)):
            data[page * PAGE : (page + 1) * PAGE] = rng.randbytes(PAGE)
        cases[f"store-pages-overwritten-{n}"] = (bytes(data), "any")
    for n in range(6):
        data = bytearray(template)
        for _ in range(8):
            data[rng.randrange(16, 100)] ^= 1 << rng.randrange(8)
        cases[f"store-header-bits-flipped-{n}"] = (bytes(data), "any")
    cases["store-first-page-random"] = (rng.randbytes(PAGE) + template[PAGE:], "aside")
    cases["store-not-a-database-text"] = (b"these are not the conversations you are looking for\n" * 200, "aside")
    cases["store-not-a-database-random"] = (rng.randbytes(3 * PAGE), "aside")
    cases["store-not-a-database-json"] = (b'{"conversations": []}', "aside")
    cases["store-not-a-database-gguf"] = (b"GGUF\x03\x00\x00\x00" + bytes(PAGE), "aside")
    cases["store-empty-file"] = (b"", "sound")  # SQLite's empty database: a store is made in it
    built = {}
    for case_id, (data, expect) in cases.items():
        path = folder / case_id / "conversations.sqlite3"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        built[case_id] = (path, expect)
    return built


def odd_stores(folder: Path) -> dict[str, tuple[Path, str, dict]]:
    """Stores that are sound files but not usable ones: case id -> (path, outcome, case options)."""
    built: dict[str, tuple[Path, str, dict]] = {}

    def place(case_id: str) -> Path:
        (folder / case_id).mkdir()
        return folder / case_id / "conversations.sqlite3"

    path = sound_store(place("store-read-only-file"))
    os.chmod(path, 0o444)
    built["store-read-only-file"] = (path, "memory", {"enforce_permissions": True})
    path = sound_store(place("store-read-only-folder"))
    os.chmod(path.parent, 0o555)
    built["store-read-only-folder"] = (path, "memory", {"enforce_permissions": True})
    path = place("store-folder-in-its-place")
    path.mkdir()
    built["store-folder-in-its-place"] = (path, "memory", {})
    path = place("store-fifo-in-its-place")
    os.mkfifo(path)
    built["store-fifo-in-its-place"] = (path, "memory", {})
    path = place("store-link-to-dev-zero")
    path.symlink_to("/dev/zero")
    built["store-link-to-dev-zero"] = (path, "memory", {})
    path = sound_store(place("store-garbage-wal"))
    Path(f"{path}-wal").write_bytes(random.Random(3).randbytes(3 * PAGE))
    built["store-garbage-wal"] = (path, "sound", {})
    for case_id, sql in (
        ("store-schema-not-ours", "CREATE TABLE conversations (id INTEGER PRIMARY KEY, name TEXT)"),
        ("store-schema-tables-missing", "CREATE TABLE unrelated (x)"),
    ):
        path = place(case_id)
        raw = sqlite3.connect(path)
        raw.execute(sql)
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # the current schema, yet not our tables
        raw.commit()
        raw.close()
        built[case_id] = (path, "aside", {})
    return built


def json_variants(valid: dict, fields: dict[str, list]) -> dict[str, bytes]:
    """Every field with every wrong value, then the classes that are wrong as a whole."""
    rng = random.Random(7)
    variants = {}
    for key, values in fields.items():
        for n, value in enumerate(values):
            variants[f"field-{key}-{n}"] = json.dumps({**valid, key: value}).encode()
    variants |= {
        "deep-array": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "deep-object": b'{"a": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        "deep-unclosed": b"[" * 200_000,
        "huge-whitespace": b" " * (3 * 1024**2) + b"{}",
        "huge-string": json.dumps({"theme": "x" * (2 * 1024**2)}).encode(),
        "invalid-utf8": b'{"theme": "\xff\xfe\xfd"}',
        "lone-surrogate": b'{"system_prompt": "Be brief.\\ud800", "theme": "x\\udfff"}',
        "utf16": json.dumps(valid).encode("utf-16"),
        "not-json": b"{not json",
        "empty": b"",
        "nul-bytes": b"\x00" * 64,
        "random-bytes": rng.randbytes(512),
        "array": b"[1, 2, 3]",
        "string": b'"config"',
        "number": b"42",
        "null": b"null",
        "true": b"true",
        "huge-number": b'{"temperature": 1' + b"0" * 5000 + b"}",
        "nan": b'{"temperature": NaN, "threads": NaN}',
        "unknown-key": b'{"colour": "red"}',
        "empty-key": b'{"": 1}',
        "many-unknown-keys": json.dumps({f"k{n}": n for n in range(2000)}).encode(),
    }
    return variants


WRONG = ["hot", [], {}, True, None, -1, 1e400, 2**70, "1"]
CONFIG_FIELDS = {
    "models": [[], "smollm2", {"chat": 5}, {"chat": ""}, {"video": "x"}, {"chat": ["a"]}, None, {"chat": None}],
    "theme": [5, [], {}, None, True, "x" * 1000],
    "system_prompt": [5, [], {}, None, False, "x" * 200_001],
    "temperature": [*WRONG, -0.1, 2.01, "0.2"],
    "top_p": [*WRONG, 1.5, "0.9"],
    "repeat_penalty": [*WRONG, 0.9, 2.5],
    "max_tokens": ["hot", [], {}, True, 0, -5, 1.5, 2**40, "64"],
    "context_length": ["hot", [], {}, True, 0, 10, 255, 2**40, 4096.0],
    "prompt_cache_mb": ["hot", [], {}, True, -1, 1.5, 2**41, "64"],
}
LOAD_FIELDS = {
    "ctx": ["hot", [], {}, True, 0, -5, 2**40, 2048.0, "2048"],
    "threads": ["hot", [], {}, True, 0, -1, 513, 100_000, 4.5, "4"],
    "gpu_layers": ["hot", [], {}, True, -1, 2**40, 1.0],
    "flash_attn": ["on", 1, 0, [], {}],
    "kv_type": ["q3_k", 8, [], {}, True, "F16", ""],
    "mmap": ["yes", 1, [], {}],
    "mlock": ["no", 0, [], {}],
    "batch": ["hot", [], {}, True, 0, -1, 2**40, 256.5],
    "rpc": [5, [], {}, True, "x" * 5000, "myhost", "host:0", "host:99999", ""],
}


def sidecar_lines() -> dict[str, bytes]:
    settings = json.dumps({"settings": SIDECAR_SETTINGS}).encode()
    good = json.dumps({"source": "Good morning.", "translation": "Bonjour."}).encode()
    bad_lines = {
        "deep-line": b"[" * 100_000 + b"]" * 100_000,
        "deep-object-line": b'{"source": "Hello.", "translation": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "translation-int": b'{"source": "Hello.", "translation": 5}',
        "translation-list": b'{"source": "Hello.", "translation": ["Salut."]}',
        "translation-object": b'{"source": "Hello.", "translation": {"text": "Salut."}}',
        "translation-null": b'{"source": "Hello.", "translation": null}',
        "source-list": b'{"source": ["Hello."], "translation": "Salut."}',
        "source-object": b'{"source": {"a": 1}, "translation": "Salut."}',
        "keys-missing": b'{"source": "Hello."}',
        "cut-short": b'{"source": "Hello.", "transl',
        "invalid-utf8": b'{"source": "Hello.", "translation": "\xff\xfe"}',
        "array-line": b'["Hello.", "Salut."]',
        "number-line": b"12",
        "huge-number": b'{"source": "Hello.", "translation": 1' + b"0" * 5000 + b"}",
    }
    files = {name: b"\n".join([settings, line, good]) + b"\n" for name, line in bad_lines.items()}
    files["first-line-deep"] = b"[" * 100_000 + b"\n" + good + b"\n"
    files["first-line-settings-a-list"] = b'{"settings": [1]}\n' + good + b"\n"
    files["all-lines-random"] = random.Random(5).randbytes(4096)
    return files


# -- the tests ---------------------------------------------------------------------------------


def test_damaged_and_unusable_stores_are_kept_aside_or_kept_in_memory(tmp_path):
    template = sound_store(tmp_path / "template.sqlite3").read_bytes()
    cases, expected = [], {}
    for case_id, (path, expect) in damaged_stores(tmp_path / "damaged", template).items():
        cases.append(call_case(case_id, f"{HERE}:use_store", path, expect))
        expected[case_id] = expect
    (tmp_path / "odd").mkdir()
    for case_id, (path, expect, options) in odd_stores(tmp_path / "odd").items():
        cases.append(call_case(case_id, f"{HERE}:use_store", path, expect, **options))
        expected[case_id] = expect
    (tmp_path / "filling").mkdir()
    cases.append(
        call_case("store-disk-fills-mid-session", f"{HERE}:fill_store_mid_session", tmp_path / "filling" / "c.sqlite3")
    )
    newer = tmp_path / "newer" / "conversations.sqlite3"
    newer.parent.mkdir()
    raw = sqlite3.connect(newer)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    cases.append(call_case("store-from-a-newer-llamadesk", f"{HERE}:use_store", newer, "sound"))
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    for path in tmp_path.rglob("*"):  # folders the cases made read-only, writable again for clean-up
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, 0o755)
    newer_result = results.pop("store-from-a-newer-llamadesk")
    assert problems(newer_result, codes=(1,)) is None and "newer llamadesk" in newer_result["stderr"]
    assert_all_refused(results, codes=(0,))
    outcomes: dict[str, int] = {}
    for case_id, result in results.items():
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert len(lines) <= 1 and all(line.startswith("llamadesk: ") for line in lines), (case_id, lines)
        outcome = json.loads(result["stdout"].splitlines()[-1])["outcome"]
        assert bool(lines) == (outcome != "sound"), (case_id, lines)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"stores: {len(results) + 1} cases, outcomes {outcomes}, newer schema refused (exit 1): 1")
    assert outcomes["aside"] >= 20 and outcomes["memory"] >= 5  # the classes were exercised


def test_bad_config_json_is_one_line_naming_the_file_and_the_setting(tmp_path):
    from llamadesk.app.settings.user_config import Config

    valid = {"temperature": 0.2, "theme": "nord"}
    cases = []
    for name, data in json_variants(valid, CONFIG_FIELDS).items():
        path = tmp_path / name / "config.json"
        path.parent.mkdir()
        path.write_bytes(data)
        cases.append(call_case(f"config-{name}", f"{HERE}:read_config", path))
    cases += odd_files(tmp_path, "config.json", f"{HERE}:read_config", "config")
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    unreadable = results.pop("config-unreadable")
    assert problems(unreadable, codes=(1, 2)) is None, problems(unreadable, codes=(1, 2))
    assert_all_refused(results)
    for case_id, result in results.items():
        assert "config.json" in result["stderr"], case_id
        if case_id.startswith("config-field-"):
            field = case_id.removeprefix("config-field-").rsplit("-", 1)[0]
            assert field in result["stderr"], (case_id, result["stderr"])
    assert Config() == Config()  # the defaults themselves pass every check (load_config of "{}")
    print(f"config.json: {len(results) + 1} cases, all refused in one line (exit 2; unreadable: exit 1 or 2)")


def test_bad_load_json_stops_the_cli_with_one_line_before_llama_cpp_sees_it(tmp_path):
    cases = []
    for name, data in json_variants({"ctx": 2048}, LOAD_FIELDS).items():
        home = tmp_path / name
        (home / "config").mkdir(parents=True)
        (home / "config" / "load.json").write_bytes(data)
        cases.append(cli_case(f"load-{name}", "chat", "--max-tokens", "1", "hi", env={"LLAMADESK_HOME": str(home)}))
    for flag, value in (("--threads", "100000"), ("--threads", "0"), ("--ctx", "0"), ("--gpu-layers", "-2")):
        cases.append(cli_case(f"flag{flag}={value}", "chat", flag, value, "hi", env={"LLAMADESK_HOME": str(tmp_path)}))
    for flag, value in (("--temperature", "2.5"), ("--top-p", "1.5"), ("--top-p", "nan"), ("--repeat-penalty", "9")):
        cases.append(cli_case(f"flag{flag}={value}", "chat", flag, value, "hi", env={"LLAMADESK_HOME": str(tmp_path)}))
    for value in ("100000", "0"):  # the engine's own check, for commands that bypass load.json
        cases.append(cli_case(f"rpc-server-threads={value}", "rpc-server", "--threads", value, timeout=10))
    # The children start with what `chat` imports before it reads load.json (~0.5 s each otherwise).
    preload = ("llamadesk.app.cli", "llamadesk.app.commands.chat", "llamadesk.app.engine.llama_engine", CATALOG)
    results = run_cases(cases, tmp_path, preload=preload)
    assert_all_refused(results)
    for case_id, result in results.items():
        if case_id.startswith("load-"):
            assert "load.json" in result["stderr"], case_id
        if case_id.startswith("load-field-"):
            field = case_id.removeprefix("load-field-").rsplit("-", 1)[0]
            assert field in result["stderr"], (case_id, result["stderr"])
    print(f"load.json and flags: {len(results)} cases, all refused in one line (exit 2)")


def odd_files(tmp_path: Path, name: str, target: str, prefix: str) -> list[dict]:
    """A folder, a FIFO, a link to /dev/zero, and an unreadable file where a JSON file belongs."""
    cases = []
    for case_id in ("folder", "fifo", "dev-zero", "unreadable"):
        path = tmp_path / f"{prefix}-{case_id}" / name
        path.parent.mkdir()
        if case_id == "folder":
            path.mkdir()
        elif case_id == "fifo":
            os.mkfifo(path)
        elif case_id == "dev-zero":
            path.symlink_to("/dev/zero")
        else:
            path.write_text("{}")
            os.chmod(path, 0)
        cases.append(call_case(f"{prefix}-{case_id}", target, path, enforce_permissions=case_id == "unreadable"))
    return cases


def test_damaged_sidecars_skip_their_lines_and_never_crash(tmp_path):
    cases = []
    for name, data in sidecar_lines().items():
        path = tmp_path / name / ".out.txt.translation.jsonl"
        path.parent.mkdir()
        path.write_bytes(data)
        cases.append(call_case(f"sidecar-{name}", f"{HERE}:read_sidecar", path))
    refused = []
    for case_id in ("folder", "fifo", "too-large"):
        path = tmp_path / f"sidecar-{case_id}" / ".out.txt.translation.jsonl"
        path.parent.mkdir()
        if case_id == "folder":
            path.mkdir()
        elif case_id == "fifo":
            os.mkfifo(path)
        else:
            with path.open("wb") as handle:  # sparse: refused by its size, never read
                handle.truncate(SIDECAR_MAX_BYTES + 1)
        refused.append(f"sidecar-{case_id}")
        cases.append(call_case(f"sidecar-{case_id}", f"{HERE}:read_sidecar", path))
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused({k: results.pop(k) for k in refused})
    assert_all_refused(results, codes=(0,))
    for case_id, result in results.items():
        done = json.loads(result["stdout"].splitlines()[-1])
        assert done["text"] in ("Bonjour.", ""), (case_id, done)  # the good line kept, the bad one not used
        if case_id not in ("sidecar-first-line-deep", "sidecar-first-line-settings-a-list", "sidecar-all-lines-random"):
            assert done["note"] and "skipped" in done["note"], (case_id, done)
    print(f"sidecars: {len(results)} damaged (lines skipped, exit 0) and {len(refused)} refused (exit 2)")


def test_input_without_end_or_too_large_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(MAX_INPUT_BYTES + 1)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Grüße aus Köln\n".encode("latin-1"))
    home = {"LLAMADESK_HOME": str(tmp_path)}
    cases = [
        cli_case("translate-dev-zero", "translate", "--to", "fr", "/dev/zero", env=home),
        cli_case("translate-too-large", "translate", "--to", "fr", big, env=home),
        cli_case("translate-not-utf8", "translate", "--to", "fr", latin, env=home),
        cli_case("translate-folder", "translate", "--to", "fr", tmp_path, env=home),
        cli_case("translate-glossary-dev-zero", "translate", "--to", "fr", "--glossary", "/dev/zero", latin, env=home),
        call_case("translate-dev-zero-on-stdin", f"{HERE}:translate_dev_zero_on_stdin", env=home),
    ]
    translate = ("llamadesk.app.commands.translate", "llamadesk.app.engine.llama_engine", CATALOG)
    results = run_cases(cases, tmp_path, preload=PRELOAD + translate)
    assert_all_refused(results)
    assert all(r["seconds"] < 10 for r in results.values()), {k: r["seconds"] for k, r in results.items()}
    print(f"translation input: {len(results)} cases, all refused in one line (exit 2)")


def test_a_damaged_library_record_is_one_line_and_never_deletes_outside_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the driver imports huggingface-hub with it
    victim = tmp_path / "victim.gguf"
    victim.write_bytes(b"the user's own file")
    pulled = {"name": "m", "repo": "o/n", "revision": "main", "commit": "a" * 40, "files": ["m.gguf"]}
    pulled |= {"quantization": None, "downloaded": True}
    records = {
        "deep": b'{"pulled": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "huge": b" " * (17 * 1024**2) + b"{}",
        "not-an-object": b"[]",
        "pulled-not-a-list": json.dumps({"pulled": {"name": "m"}}).encode(),
        "record-not-an-object": json.dumps({"pulled": ["m"]}).encode(),
        "record-missing-a-field": json.dumps({"pulled": [{k: v for k, v in pulled.items() if k != "commit"}]}).encode(),
        "record-wrong-types": json.dumps({"pulled": [{**pulled, "files": "m.gguf", "downloaded": "yes"}]}).encode(),
        "commit-traversal": json.dumps({"pulled": [{**pulled, "commit": "../../../../.."}]}).encode(),
        "folders-not-text": json.dumps({"folders": [5]}).encode(),
        "made-wrong-types": json.dumps({"made": [{"path": 5, "origin": []}]}).encode(),
    }
    traversal = json.dumps({"pulled": [{**pulled, "files": ["../../../../../../victim.gguf"]}]}).encode()
    cases = []
    for name, data in {**records, "files-traversal": traversal}.items():
        home = tmp_path / name
        (home / "data").mkdir(parents=True)
        (home / "data" / "library.json").write_bytes(data)
        argv = ("models", "rm", "m", "--yes") if name == "files-traversal" else ("models", "--json")
        cases.append(cli_case(f"library-{name}", *argv, env={"LLAMADESK_HOME": str(home)}))
    results = run_cases(cases, tmp_path, preload=(*PRELOAD, CATALOG, "llamadesk.app.commands.models"))
    assert_all_refused({"library-files-traversal": results.pop("library-files-traversal")})
    assert victim.read_bytes() == b"the user's own file"
    assert_all_refused(results, codes=(1,))  # the record is llamadesk's own: a failure, not the user's input
    assert all("library.json" in r["stderr"] for r in results.values())
    print(f"library.json: {len(results)} damaged (exit 1) and 1 traversal refused (exit 2), nothing deleted")


@pytest.mark.slow
def test_a_rerun_with_a_damaged_sidecar_translates_the_damaged_segment_again(tmp_path, gemma_path):
    """End to end with the real model: the crash came after every other segment was translated."""
    from llamadesk.app.core.gguf_file import open_header, summarize
    from tests.conftest import run_cli

    source = tmp_path / "in.txt"
    source.write_text("Hello.\n\nGood morning.\n")
    output = tmp_path / "out.txt"
    model_file = gemma_path.stat()
    settings = {
        **SIDECAR_SETTINGS,
        "model": summarize(gemma_path, open_header(gemma_path)).name,
        # The model by its file too (path, size, date), and its (no) adapters.
        "model_file": [str(gemma_path.resolve()), model_file.st_size, model_file.st_mtime_ns],
        "adapters": [],
    }
    lines = [
        {"settings": settings},
        {"source": "Hello.", "translation": 5},
        {"source": "Good morning.", "translation": "Bonjour."},
    ]
    sidecar = tmp_path / ".out.txt.translation.jsonl"
    sidecar.write_text("\n".join(json.dumps(line) for line in lines) + "\n" + "[" * 100_000 + "\n")
    done = run_cli(
        "translate",
        "--to",
        "fr",
        "--from",
        "en",
        "--prompt",
        "few-shot",
        "--threads",
        "2",
        str(source),
        "-o",
        str(output),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "2 damaged line(s)" in done.stderr and "Traceback" not in done.stderr
    text = output.read_text()
    assert "Bonjour." in text and text.split("\n\n")[0].strip()  # the damaged segment got a translation
    assert not sidecar.exists()
