"""`llamadesk doctor`: on this machine through the CLI, and on faked machines through its report."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import psutil
import pytest

from llamadesk.app.core.machine import MachineFacts, machine_facts
from llamadesk.app.engine.fitted_settings import ALL_LAYERS
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.settings.doctor_report import DoctorFacts, build_report, format_report
from tests import fake_machines as fm
from tests.conftest import run_cli

PYTHON = "/home/me/.venv/bin/python"


def facts(probe, build, devices, model, requested=LoadSettings(), machine: MachineFacts | None = None) -> DoctorFacts:
    return DoctorFacts(
        python_version="3.11.9",
        python_executable=PYTHON,
        build=build,
        devices=devices,
        machine=machine or machine_facts(probe),
        models_dir=Path("/home/me/.local/share/llamadesk/models"),
        disk_free=100 * fm.GIB,
        model=model,
        requested=requested,
    )


def problems(report) -> str:
    return "\n".join(w["problem"] + " => " + w["fix"] for w in report.data["warnings"])


# -- this machine (CPU build) ---------------------------------------------------------------


@pytest.mark.slow
def test_doctor_json_on_this_machine_reads_the_real_build_and_machine() -> None:
    import llama_cpp

    done = run_cli("doctor", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["llama_cpp_python"] == llama_cpp.__version__
    assert report["build"]["backend"] == "CPU" and report["build"]["gpu_offload"] is False
    system_info = llama_cpp.llama_print_system_info().decode()
    for feature in report["build"]["cpu_features"]:
        assert f"{feature} = 1" in system_info
    assert "AVX2" in report["build"]["cpu_features"]  # this machine's build uses it
    assert [d["name"] for d in report["build"]["devices"]] == ["CPU"]
    assert report["build"]["rpc"] is False  # the plain build
    m = report["machine"]
    usable = len(os.sched_getaffinity(0))
    assert m["physical_cores"] == min(psutil.cpu_count(logical=False), usable)
    assert m["total_ram"] == psutil.virtual_memory().total and 0 < m["available_ram"] <= m["total_ram"]
    assert m["gpus"] == [] and m["cpu_model"]
    assert report["models_dir"]["disk_free"] > 0
    settings = report["settings"]
    # One per physical core, less those other programs kept busy (this machine is shared).
    assert settings["reasons"]["n_threads"].startswith("one per physical core")
    busy = int(m["busy_cores"] + 0.25)
    assert settings["n_threads"] == max(1, m["physical_cores"] - busy) and settings["n_gpu_layers"] == 0
    # smollm2's trained context; flash attention off on a CPU with the memory to spare
    assert settings["n_ctx"] == 8192 and settings["flash_attn"] is False
    assert set(settings["reasons"]) >= {"n_threads", "n_gpu_layers", "n_ctx", "flash_attn"}
    # No GPU, SIMD or memory problem here; only the shared machine's load may be reported.
    assert report["warnings"] == []


@pytest.mark.slow
def test_doctor_text_shows_each_setting_with_its_reason() -> None:
    done = run_cli("doctor", "--threads", "1", "--ctx", "1024")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("llama-cpp-python", "compiled backend", "SIMD", "CPU", "RAM", "models folder"):
        assert label in out
    assert "threads           1       requested" in out
    assert "context           1024    requested" in out
    assert "GPU layers        0       CPU-only build" in out
    assert "no problems found" in out and "cores busy now" in out


@pytest.mark.slow
def test_doctor_follows_load_json_and_flags_win(tmp_path) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "load.json").write_text('{"ctx": 2048, "threads": 1, "kv_type": "q8_0"}')
    done = run_cli("doctor", "--json", "--threads", "2", env={"LLAMADESK_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)["settings"]
    assert (settings["n_ctx"], settings["n_threads"], settings["kv_cache_type"]) == (2048, 2, "q8_0")
    (home / "config" / "load.json").write_text('{"context": 2048}')
    bad = run_cli("doctor", env={"LLAMADESK_HOME": str(home)})
    assert bad.returncode == 2 and "unknown setting 'context'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_doctor_with_a_missing_model_is_bad_input() -> None:
    done = run_cli("doctor", "-m", "/nonexistent/model.gguf")
    assert done.returncode == 2 and "no such file" in done.stderr and "Traceback" not in done.stderr


def test_doctor_shows_the_prompt_cache_its_budget_and_use(tmp_path) -> None:
    from llamadesk.app.chat.prompt_cache import CacheUsage

    base = facts(fm.CUDA_LAPTOP, fm.LAPTOP_CPU_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B)
    folder = tmp_path / "prompt-cache"
    usage = CacheUsage(folder, 4 * 1024**3, 300 * 1024**2, 3)
    used = build_report(dataclasses.replace(base, prompt_cache=usage, prompt_cache_mb=4096))
    assert used.data["prompt_cache"] == {
        "path": str(folder),
        "budget": 4 * 1024**3,
        "budget_from": "config.json",
        "used": 300 * 1024**2,
        "files": 3,
    }
    assert (
        f"prompt cache      {folder} (300.0 MiB of 4.0 GiB in 3 files; config.json's prompt_cache_mb"
        in format_report(used)
    )
    sized = format_report(build_report(dataclasses.replace(base, prompt_cache=usage)))
    assert "in 3 files; a tenth of the free disk, at most 4 GiB" in sized, sized
    off = build_report(dataclasses.replace(base, prompt_cache=CacheUsage(folder, 0, 0, 0), prompt_cache_mb=0))
    assert "prompt cache      off (config.json's prompt_cache_mb is 0)" in format_report(off)
    # With no config.json, a budget of 0 is a full disk, which was called config.json's doing.
    full = build_report(dataclasses.replace(base, prompt_cache=CacheUsage(folder, 0, 0, 0), disk_free=0))
    assert "prompt cache      off (its disk has no free space)" in format_report(full)
    assert "has 0 B free: conversations are kept in memory only" in problems(full)
    # On this machine: sized from the free disk unless config.json says otherwise.
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.json").write_text('{"prompt_cache_mb": 5}')
    done = run_cli("doctor", "--json", env={"LLAMADESK_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    cache = json.loads(done.stdout)["prompt_cache"]
    assert (cache["budget"], cache["used"], cache["files"]) == (5 * 1024**2, 0, 0)


def test_a_prompt_cache_folder_that_cannot_be_written_is_a_warning(tmp_path) -> None:
    # A file in the folder's place: every --continue read the whole conversation again, and doctor
    # said "no problems found".
    from llamadesk.app.chat.prompt_cache import CacheUsage

    base = facts(fm.CUDA_LAPTOP, fm.LAPTOP_CPU_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B)
    blocked = tmp_path / "prompt-cache"
    blocked.write_text("not a folder")
    report = build_report(dataclasses.replace(base, prompt_cache=CacheUsage(blocked, 4 * 1024**3, 0, 0)))
    assert f"the prompt cache's folder {blocked} is not a folder" in format_report(report)
    fine = build_report(dataclasses.replace(base, prompt_cache=CacheUsage(tmp_path / "new", 4 * 1024**3, 0, 0)))
    assert "prompt cache's folder" not in format_report(fine)


def test_a_bad_config_json_value_is_a_problem_not_a_default_shown_as_the_files(tmp_path) -> None:
    # With {"prompt_cache_mb": 0, "temperature": 9} doctor said "no problems found" and showed the
    # 4 GiB default as config.json's budget, while the file turns the cache off.
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.json").write_text('{"prompt_cache_mb": 0, "temperature": 9}')
    (home / "data" / "prompt-cache").mkdir(parents=True)
    (home / "data" / "prompt-cache" / "notes.kvc").write_bytes(b"not a cache file" * 64)
    done = run_cli("doctor", "--json", env={"LLAMADESK_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [problem] = [w for w in report["warnings"] if "config.json" in w["problem"]]
    assert "temperature must be a number from 0 to 2, not 9" in problem["problem"] and "exit 2" in problem["fix"]
    assert report["config_problem"] == problem["problem"]
    # Something else named *.kvc in the cache's folder is not a cache file: it was counted as one.
    assert (report["prompt_cache"]["used"], report["prompt_cache"]["files"]) == (0, 0)
    text = run_cli("doctor", env={"LLAMADESK_HOME": str(home)}).stdout
    assert "no problems found" not in text and "the default size: config.json has a problem" in text


# -- a CUDA gaming laptop -------------------------------------------------------------------


def test_cuda_laptop_with_a_cpu_only_build_warns_with_the_exact_reinstall_command() -> None:
    report = build_report(facts(fm.CUDA_LAPTOP, fm.LAPTOP_CPU_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B))
    (warning,) = report.data["warnings"]
    assert "NVIDIA GeForce RTX 4070 Laptop GPU" in warning["problem"] and "CPU only" in warning["problem"]
    assert warning["fix"].endswith(
        f'CMAKE_ARGS="-DGGML_CUDA=on" {PYTHON} -m pip install --force-reinstall --no-cache-dir --no-deps '
        "llama-cpp-python==0.3.36"
    )
    assert "CUDA toolkit" in warning["fix"]
    settings = report.data["settings"]
    assert settings["n_gpu_layers"] == 0 and settings["n_threads"] == 6  # 6 P-cores of 14
    assert "performance core" in settings["reasons"]["n_threads"]
    text = format_report(report)
    assert "RTX 4070 Laptop GPU (8.0 GiB, 7.5 GiB free)" in text and "(6 performance)" in text


def test_cuda_laptop_with_a_cuda_build_offloads_what_fits() -> None:
    devices = (fm.CPU_DEVICE, fm.CUDA_DEVICE)
    small = build_report(facts(fm.CUDA_LAPTOP, fm.LAPTOP_CUDA_BUILD, devices, fm.LLAMA_8B))
    assert small.data["warnings"] == []
    assert small.data["build"]["backend"] == "CUDA"
    assert small.data["settings"]["n_gpu_layers"] == ALL_LAYERS
    assert (
        "all 32 layers fit in 7.5 GiB free on NVIDIA GeForce RTX 4070"
        in small.data["settings"]["reasons"]["n_gpu_layers"]
    )
    big = build_report(facts(fm.CUDA_LAPTOP, fm.LAPTOP_CUDA_BUILD, devices, fm.LLAMA_13B))
    assert 0 < big.data["settings"]["n_gpu_layers"] < 40
    assert "of 40 layers" in big.data["settings"]["reasons"]["n_gpu_layers"]
    assert "GPU layers" in format_report(big)


def test_a_gpu_build_that_finds_no_gpu_is_reported() -> None:
    laptop = machine_facts(fm.CUDA_LAPTOP)
    report = build_report(facts(None, fm.LAPTOP_CUDA_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B, machine=laptop))
    assert "built with CUDA but found no GPU" in problems(report)


def test_a_model_too_big_for_the_laptop_is_a_warning_not_a_crash() -> None:
    report = build_report(facts(fm.CUDA_LAPTOP, fm.LAPTOP_CUDA_BUILD, (fm.CPU_DEVICE, fm.CUDA_DEVICE), fm.LLAMA_70B))
    assert report.settings is None and "Llama-3.1-70B needs" in problems(report)
    assert "warnings" in format_report(report)


# -- an M-series Mac ------------------------------------------------------------------------


def test_m2_mac_with_metal_uses_performance_cores_and_the_gpu() -> None:
    report = build_report(facts(fm.M2_MAC, fm.MAC_METAL_BUILD, (fm.METAL_DEVICE,), fm.LLAMA_13B))
    assert report.data["warnings"] == []
    s = report.data["settings"]
    assert (s["n_threads"], s["n_gpu_layers"], s["n_ctx"], s["flash_attn"]) == (8, ALL_LAYERS, 4096, True)
    assert report.data["build"]["backend"] == "Metal"
    assert report.data["machine"]["cpu_model"] == "Apple M2 Pro"
    assert "shares RAM" in format_report(report)


def test_m2_mac_with_a_cpu_only_build_gets_the_metal_command() -> None:
    report = build_report(facts(fm.M2_MAC, fm.MAC_CPU_BUILD, (), fm.LLAMA_8B))
    text = problems(report)
    assert "Apple M2 Pro GPU" in text and 'CMAKE_ARGS="-DGGML_METAL=on"' in text
    assert report.data["settings"]["n_gpu_layers"] == 0


# -- a Raspberry Pi 5 -----------------------------------------------------------------------


def test_pi5_profile_settings_and_advice() -> None:
    report = build_report(
        facts(fm.PI5, fm.PI_NATIVE_BUILD, (fm.PI_DEVICE,), fm.LLAMA_1B_Q4_0, requested=LoadSettings(n_ctx=2048))
    )
    m = report.data["machine"]
    assert m["board"] == "Raspberry Pi 5 Model B Rev 1.0" and m["cpu_model"] == "Cortex-A76"
    s = report.data["settings"]
    assert (s["n_threads"], s["n_gpu_layers"], s["n_ctx"]) == (4, 0, 2048)
    (swap,) = report.data["warnings"]  # Q4_0 and a native build: only the swap advice
    assert "swap" in swap["problem"] and "CONF_SWAPSIZE=2048" in swap["fix"].replace(" to ", "=")


def test_doctor_says_how_many_segments_translate_at_once_and_why() -> None:
    pi = build_report(facts(fm.PI5, fm.PI_NATIVE_BUILD, (fm.PI_DEVICE,), fm.LLAMA_1B_Q4_0))
    assert pi.data["settings"]["translate_parallel"] == 8  # 7 GiB free: room for the decoder's own KV cache
    assert "translating       8       segments translated at once" in format_report(pi)
    # A 2 GB board with 1.5 GiB free and a 0.72 GiB model: one at a time.
    short = dataclasses.replace(machine_facts(fm.PI5), total_ram=2 * fm.GIB, available_ram=int(1.5 * fm.GIB))
    tight = build_report(facts(fm.PI5, fm.PI_NATIVE_BUILD, (fm.PI_DEVICE,), fm.LLAMA_1B_Q4_0, machine=short))
    assert tight.data["settings"]["translate_parallel"] == 1
    assert "translating       1       segment at a time: too little memory" in format_report(tight)


def test_pi5_with_a_k_quant_and_a_generic_build_is_told_about_q4_0_and_dotprod() -> None:
    report = build_report(facts(fm.PI5, fm.PI_GENERIC_BUILD, (fm.PI_DEVICE,), fm.LLAMA_1B_Q4_K))
    text = problems(report)
    assert "Q4_0" in text and "repacks" in text
    assert "DOTPROD" in text and "FP16_VA" in text
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in text
    assert not any("GPU" in w["problem"] for w in report.data["warnings"])


def test_every_report_is_json_serialisable() -> None:
    for case in (
        facts(fm.CUDA_LAPTOP, fm.LAPTOP_CPU_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B),
        facts(fm.M2_MAC, fm.MAC_METAL_BUILD, (fm.METAL_DEVICE,), None),
        facts(fm.PI5, fm.PI_GENERIC_BUILD, (fm.PI_DEVICE,), fm.LLAMA_70B),
    ):
        json.dumps(build_report(case).data)


def test_a_single_file_build_is_told_to_rebuild_the_executable_not_to_pip_install() -> None:
    frozen = dataclasses.replace(facts(fm.CUDA_LAPTOP, fm.LAPTOP_CPU_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B), frozen=True)
    fix = build_report(frozen).data["warnings"][0]["fix"]
    assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in fix and "pyinstaller.sh" in fix and "pip install" not in fix


def test_a_busy_machine_gets_fewer_threads_with_the_reason() -> None:
    busy = dataclasses.replace(machine_facts(fm.PI5, measure_busy=False), busy_cores=2.1)
    report = build_report(facts(None, fm.PI_NATIVE_BUILD, (fm.PI_DEVICE,), fm.LLAMA_1B_Q4_0, machine=busy))
    assert report.data["settings"]["n_threads"] == 2
    assert "less 2 kept busy by other programs" in report.data["settings"]["reasons"]["n_threads"]
    assert "2.1 cores busy now" in format_report(report)


def test_a_gpu_too_full_for_one_layer_is_reported_unless_the_user_chose_zero() -> None:
    full = dataclasses.replace(fm.CUDA_DEVICE, free_memory=300 * fm.MIB)
    report = build_report(facts(fm.CUDA_LAPTOP, fm.LAPTOP_CUDA_BUILD, (fm.CPU_DEVICE, full), fm.LLAMA_13B))
    assert report.data["settings"]["n_gpu_layers"] == 0 and "not one layer" in problems(report)
    chosen = build_report(
        facts(
            fm.CUDA_LAPTOP,
            fm.LAPTOP_CUDA_BUILD,
            (fm.CPU_DEVICE, full),
            fm.LLAMA_13B,
            requested=LoadSettings(n_gpu_layers=0),
        )
    )
    assert chosen.data["warnings"] == []


def test_doctor_names_a_cache_link_to_nothing_and_a_models_folder_it_cannot_make(tmp_path) -> None:
    from llamadesk.app.chat.prompt_cache import CacheUsage

    base = facts(fm.CUDA_LAPTOP, fm.LAPTOP_CPU_BUILD, (fm.CPU_DEVICE,), fm.LLAMA_8B)
    link = tmp_path / "prompt-cache"
    link.symlink_to(tmp_path / "nowhere" / "x")  # "0 B of 4.0 GiB" and "no problems found"; nothing was ever written
    report = build_report(dataclasses.replace(base, prompt_cache=CacheUsage(link, 4 * 1024**3, 0, 0)))
    assert f"{link} is a link to nothing" in problems(report)
    unmade = build_report(dataclasses.replace(base, models_dir_problem="cannot create llamadesk's models folder X"))
    assert problems(unmade).startswith("cannot create llamadesk's models folder X")


@pytest.mark.slow
def test_doctor_on_a_read_only_data_folder_reports_instead_of_stopping(tmp_path) -> None:
    # It ended on "llamadesk cannot create its models folder" (exit 1) with no report at all.
    from tests.permissions import permissions_enforced

    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data").chmod(0o555)
    try:
        with permissions_enforced():
            done = run_cli("doctor", "--json", env={"LLAMADESK_HOME": str(home)})
    finally:
        (home / "data").chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert any("models folder" in w["problem"] for w in json.loads(done.stdout)["warnings"])
