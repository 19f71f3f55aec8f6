"""The Raspberry Pi 5 build, run under emulation beside the x86 build of the same llama.cpp source.

packaging/pi-check.sh cross-compiles llama.cpp with `install.sh pi5`'s flags and a small probe
(packaging/pi-probe.c) for both builds. This script runs them on both starters:

- the same fixed prompt on x86 and under `qemu-aarch64 -cpu cortex-a76` (the Pi 5's core): x86's
  32-token greedy completion, with the aarch64 build's own pick at each of its steps (where they
  differ, each build's lead of its pick over the runner-up shows whether it was a near tie), and
  the largest |logit difference| after the prompt (small but not zero: NEON/dot-product/fp16
  kernels against AVX2 ones);
- a prompt per starter whose answer is decided (no step is a near tie), free-running on both
  builds: the 32 greedy tokens must be identical;
- the SIMD features the emulated build reports, and what `llamadesk doctor` says of that build on
  a Pi 5;
- the settings llamadesk fits for a 4 GB and an 8 GB Pi 5 (faked machine facts, with and without
  the Pi profile that install.sh pi5 installs): loaded under emulation with those threads, context,
  batch and KV type, asked "What is the capital of France?", and their peak memory set against the
  memory budget (under qemu the peak includes the emulator's own; the x86 peak is the Pi's
  estimate);
- llamadesk itself (doctor, chat) on an arm64 Python under the same emulation (pi-python.sh).

Writes the "## pi5 emulation" section of bench/RESULTS.md; exits 1 when the builds part other than
at a near tie, the decided prompts' texts differ, a fitted run does not answer or exceeds the
budget, or doctor calls the build generic.

    .venv/bin/python bench/pi.py [--builds DIR] [--no-record] [--no-python]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from results_file import update_section  # noqa: E402

from llamadesk.app.core.byte_sizes import format_bytes  # noqa: E402
from llamadesk.app.core.errors import LlamadeskError  # noqa: E402
from llamadesk.app.core.gguf_file import inspect_gguf  # noqa: E402
from llamadesk.app.core.machine import MachineFacts, machine_facts  # noqa: E402
from llamadesk.app.core.memory_budget import ram_budget  # noqa: E402
from llamadesk.app.engine.build_info import BuildInfo, parse_system_info  # noqa: E402
from llamadesk.app.engine.devices import BackendDevice  # noqa: E402
from llamadesk.app.engine.fitted_settings import choose_settings  # noqa: E402
from llamadesk.app.engine.types import ActiveSettings, LoadSettings  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402
from llamadesk.app.settings.doctor_report import DoctorFacts, build_report  # noqa: E402
from llamadesk.app.settings.load_config import configured_load_settings  # noqa: E402
from tests import fake_machines  # noqa: E402

GIB = 1024**3
SYSROOT = "/usr/aarch64-linux-gnu"
PI5_CPU = "cortex-a76"
STARTERS = ("smollm2", "gemma3-270m")
# An open-ended continuation: many next words fit, so some steps are near ties that the two
# builds' rounding can settle either way (the texts then part, both correct).
COMPARE_PROMPT = "The Raspberry Pi is a small single-board computer that"
N_COMPARE = 32
# Prompts whose answers are decided: at every one of the 32 greedy steps, x86's pick leads its
# runner-up by more than twice the builds' largest logit difference, so rounding cannot flip a step
# and two correct builds must give the same 32 tokens, free-running. They were chosen on the x86
# build alone, by that margin, before the emulated build ran them; `decided` checks it on every run.
ANSWER_PROMPTS = {
    # SmolLM2 is a chat model: its ChatML template, with the answer begun as a client may prefill it.
    "smollm2": "<|im_start|>user\nCount from 1 to 40, separated by commas.<|im_end|>\n<|im_start|>assistant\n1, 2, 3,",
    "gemma3-270m": "1, 2, 3, 4, 5, 6, 7, 8,",
}
# The comparison is pinned like the tests' PINNED_LOAD: one thread, f16 KV cache, flash attention.
COMPARE_SETTINGS = {"threads": 1, "n_ctx": 512, "n_batch": 512, "kv_type": "f16"}
# The question asked with the fitted settings: SmolLM2 is a chat model (its ChatML template,
# written out), Gemma 3 270M a base model (a completion).
QUESTION = {
    "smollm2": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "gemma3-270m": "Question: What is the capital of France?\nAnswer:",
}
N_ANSWER = 10
# Pi 5 boards' total and available RAM: the firmware keeps some (a 4 GB Pi 5 reports 3.95 GB,
# aidatatools/ollama-benchmark#9), and the available figures assume a freshly booted Raspberry Pi
# OS Lite.
PI_BOARDS = {"4 GB": (3.95 * GIB, 3.4 * GIB), "8 GB": (7.9 * GIB, 7.2 * GIB)}
PI_PROFILE = REPO / "packaging" / "profiles" / "pi5-load.json"


@dataclasses.dataclass(frozen=True)
class ProbeRun:
    """What one build made of a model: see packaging/pi-probe.c."""

    system_info: str
    tokens: list[int]  # what was decoded: the build's picks, or the forced tokens
    picks: list[int]  # the build's own greedy choice at each step
    margins: list[float]  # each greedy token's logit lead over the runner-up
    text: str
    logits: array
    load_seconds: float
    prompt_seconds: float
    generate_seconds: float
    peak_rss: int

    @property
    def seconds(self) -> float:
        """Prompt and generation, without the load."""
        return self.prompt_seconds + self.generate_seconds

    @property
    def cpu_features(self) -> tuple[str, ...]:
        return parse_system_info(self.system_info)[1]


def pi_builds(python: str = sys.executable) -> Path:
    """The folder pi-check.sh builds (or finds cached): pi-probe, pi-probe-x86, cmake-args."""
    done = subprocess.run(
        ["bash", str(REPO / "packaging" / "pi-check.sh"), "--build-only", python], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pi-check.sh failed")
    return Path(done.stdout.strip().splitlines()[-1])


def probe_command(builds: Path, arch: str, cpu: str = PI5_CPU) -> list[str]:
    """The probe of `arch`'s build; aarch64 runs under qemu as `cpu` (qemu faults on instructions it lacks)."""
    if arch == "aarch64":
        return ["qemu-aarch64", "-cpu", cpu, "-L", SYSROOT, str(builds / "pi-probe")]
    return [str(builds / "pi-probe-x86")]


def run_probe(
    command: list[str],
    model: Path,
    prompt: str,
    n_predict: int,
    threads: int,
    n_ctx: int,
    n_batch: int,
    kv_type: str,
    timeout: float = 600,
    forced: list[int] | None = None,
    flash_attn: bool = True,
) -> ProbeRun:
    """Runs the probe once and reads its JSON, its logits file and its peak resident memory."""
    env = {**os.environ, "PI_PROBE_FLASH_ATTN": "on" if flash_attn else "off"}
    with tempfile.TemporaryDirectory() as tmp:
        logits_path, out_path, err_path = (Path(tmp) / name for name in ("logits.f32", "stdout", "stderr"))
        args = [str(model), prompt, str(n_predict), str(threads), str(n_ctx), str(n_batch), kv_type, str(logits_path)]
        if forced is not None:
            args.append(",".join(map(str, forced)))
        with open(out_path, "w") as stdout, open(err_path, "w") as stderr:
            process = subprocess.Popen([*command, *args], stdout=stdout, stderr=stderr, env=env)
        status, peak_rss = _wait_with_rusage(process, timeout)
        if status != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({status}): {err_path.read_text().strip()[-500:]}")
        logits = array("f")
        logits.frombytes(logits_path.read_bytes())
        result = json.loads(out_path.read_text())
    return ProbeRun(
        system_info=result["system_info"],
        tokens=result["tokens"],
        picks=result["picks"],
        margins=result["margins"],
        text=result["text"],
        logits=logits,
        load_seconds=result["load_seconds"],
        prompt_seconds=result["prompt_seconds"],
        generate_seconds=result["generate_seconds"],
        peak_rss=peak_rss,
    )


def _wait_with_rusage(process: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """The exit code and peak resident bytes of this one child (wait4 reports them per process)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss * 1024  # Linux reports KiB
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise TimeoutError(f"{process.args[0]} ran past {timeout:.0f} s")
        time.sleep(0.05)


@dataclasses.dataclass(frozen=True)
class Comparison:
    model: str
    prompt: str
    x86: ProbeRun
    arm: ProbeRun

    @property
    def disagreements(self) -> list[int]:
        """The steps where the aarch64 build, fed x86's tokens, would have picked another token.

        Free-running, only the first of them is meaningful: where the two texts part.
        """
        pairs = zip(self.x86.tokens, self.arm.picks, strict=False)  # free-running replies may end apart
        found = [i for i, (ours, theirs) in enumerate(pairs) if ours != theirs]
        if not found and len(self.x86.tokens) != len(self.arm.picks):
            # Free-running, one build ended its reply (an end-of-generation token) before the other.
            found = [min(len(self.x86.tokens), len(self.arm.picks))]
        return found

    @property
    def same_text(self) -> bool:
        return not self.disagreements

    @property
    def first_free_difference(self) -> int | None:
        """Where free-running greedy texts would part: the first disagreement (None: they do not)."""
        return self.disagreements[0] if self.disagreements else None

    def near_tie(self, step: int) -> bool:
        """Whether the builds' picks at `step` differ within the kernels' noise.

        Both builds decoded the same tokens up to `step`, so their logits there differ only by the
        kernels' rounding; each logit moves by up to about the largest difference measured after
        the prompt, so a lead of less than twice that can flip.
        """
        if self.reply_ended(step):
            return False  # a reply that ended is not a tie between two tokens
        noise = 2 * self.max_logit_difference
        return min(self.x86.margins[step], self.arm.margins[step]) <= noise

    def reply_ended(self, step: int) -> bool:
        """Whether a free-running build had ended its reply (an end-of-generation token) by `step`."""
        return step >= min(len(self.x86.margins), len(self.arm.margins))

    @property
    def decided(self) -> bool:
        """Whether x86's pick leads by more than the kernels' noise at every step: no step is a near tie."""
        return bool(self.x86.margins) and min(self.x86.margins) > 2 * self.max_logit_difference

    @property
    def max_logit_difference(self) -> float:
        return max(abs(a - b) for a, b in zip(self.x86.logits, self.arm.logits, strict=True))

    @property
    def mean_logit_difference(self) -> float:
        return sum(abs(a - b) for a, b in zip(self.x86.logits, self.arm.logits, strict=True)) / len(self.x86.logits)

    @property
    def logit_range(self) -> float:
        return max(self.x86.logits) - min(self.x86.logits)


def compare(
    builds: Path,
    model: str,
    n_predict: int = N_COMPARE,
    kv_type: str = "f16",
    flash_attn: bool = True,
    prompt: str = COMPARE_PROMPT,
    free_running: bool = False,
) -> Comparison:
    """The same prompt, greedy, on the x86 build and the emulated Pi 5 build.

    By default the aarch64 build is fed x86's tokens (teacher forcing), so each of the steps
    compares the two builds' picks on the same context: one near tie early on would otherwise send
    the free-running texts apart and leave the rest of the steps comparing different sentences.
    `free_running`: each build decodes its own picks, as a user's greedy reply would.
    """
    path = starter_path(model)
    settings = {**COMPARE_SETTINGS, "kv_type": kv_type, "flash_attn": flash_attn}
    x86 = run_probe(probe_command(builds, "x86_64"), path, prompt, n_predict, **settings)
    forced = None if free_running else x86.tokens
    arm = run_probe(probe_command(builds, "aarch64"), path, prompt, n_predict, **settings, forced=forced)
    return Comparison(model, prompt, x86, arm)


def compare_answer(builds: Path, model: str, n_predict: int = N_COMPARE) -> Comparison:
    """The model's decided prompt (ANSWER_PROMPTS), free-running on both builds."""
    return compare(builds, model, n_predict, prompt=ANSWER_PROMPTS[model], free_running=True)


def pi5(board: str) -> MachineFacts:
    """A Raspberry Pi 5 with `board`'s memory, as llamadesk reads it (tests/fake_machines.py's files)."""
    total, available = PI_BOARDS[board]
    probe = dataclasses.replace(fake_machines.PI5, memory=lambda: (int(total), int(available), 100 * 1024**2))
    return machine_facts(probe)


@dataclasses.dataclass(frozen=True)
class FittedRun:
    board: str
    profile: str
    model: str
    settings: ActiveSettings
    budget: int
    arm: ProbeRun
    x86_peak_rss: int

    @property
    def answered(self) -> bool:
        return "Paris" in self.arm.text

    @property
    def within_budget(self) -> bool:
        return self.x86_peak_rss <= self.budget


def fitted_runs(builds: Path) -> list[FittedRun]:
    """Each model with the settings llamadesk fits on each Pi, loaded under emulation and asked a question."""
    profiles = {"pi5-load.json": configured_load_settings(PI_PROFILE), "none": LoadSettings()}
    runs: list[FittedRun] = []
    done: dict[tuple, tuple[ProbeRun, int]] = {}
    for board in PI_BOARDS:
        machine = pi5(board)
        for profile, requested in profiles.items():
            for model in STARTERS:
                path = starter_path(model)
                settings = choose_settings(inspect_gguf(path), machine, None, requested)
                key = (model, settings.n_threads, settings.n_ctx, settings.n_batch, settings.kv_cache_type)
                if key not in done:  # the boards often fit a small model alike: run each setting once
                    args = (path, QUESTION[model], N_ANSWER, *key[1:])
                    arm = run_probe(probe_command(builds, "aarch64"), *args)
                    done[key] = (arm, run_probe(probe_command(builds, "x86_64"), *args).peak_rss)
                arm, x86_peak = done[key]
                runs.append(FittedRun(board, profile, model, settings, ram_budget(machine), arm, x86_peak))
    return runs


# llamadesk's CLI under the arm64 Python: argv after `-c CODE` is the command line.
CLI = "import sys; from llamadesk.app.cli import main; sys.exit(main(sys.argv[1:]))"
PINNED_CHAT = ("--threads", "1", "--batch", "512", "--kv-type", "f16", "--gpu-layers", "0", "--flash-attn", "on")
PINNED_CHAT += ("--ctx", "512", "--temperature", "0", "--seed", "0")


@dataclasses.dataclass(frozen=True)
class PythonRun:
    doctor: dict
    doctor_seconds: float
    answer: str
    chat_seconds: float


def arm64_python_run() -> PythonRun:
    """llamadesk itself on an arm64 Python under qemu (packaging/pi-python.sh): doctor, then a chat."""
    done = subprocess.run(
        ["bash", str(REPO / "packaging" / "pi-python.sh"), sys.executable], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pi-python.sh failed")
    launcher = done.stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LLAMADESK_HOME": home}
        timed = []
        for args in (("doctor", "--json"), ("chat", "-m", "smollm2", *PINNED_CHAT, "What is the capital of France?")):
            started = time.monotonic()
            run = subprocess.run([launcher, "-c", CLI, *args], capture_output=True, text=True, env=env, timeout=1200)
            if run.returncode != 0:
                raise RuntimeError(f"llamadesk {args[0]} under the arm64 Python failed: {run.stderr.strip()[-500:]}")
            timed.append((run.stdout, time.monotonic() - started))
    (doctor, doctor_seconds), (answer, chat_seconds) = timed
    return PythonRun(json.loads(doctor), doctor_seconds, answer.strip(), chat_seconds)


# The models llamadesk would pick for a Pi 5's memory (library/fit.py's memory_for_weights: a
# 4 GB board takes up to ~2.2 GiB of weights, an 8 GB one ~4.9 GiB), at Q4_0, the type llama.cpp
# repacks for the A76's dot-product kernels; described by their GGUF shapes, not downloaded.
PICKED_MODELS = (
    fake_machines.summary_of(
        fake_machines.ModelShape("Llama-3.2-3B", int(1.78 * GIB), 0.85, 28, 8, 128, 131072, "Q4_0")
    ),
    fake_machines.summary_of(
        fake_machines.ModelShape("Llama-3.1-8B", int(4.34 * GIB), 0.88, 32, 8, 128, 131072, "Q4_0")
    ),
)


def picked_model_settings() -> list[str]:
    """Table rows: the settings fitted for each picked model on each board, or why it does not fit."""
    rows = []
    profiles = {"pi5-load.json": configured_load_settings(PI_PROFILE), "none": LoadSettings()}
    for board in PI_BOARDS:
        machine = pi5(board)
        for summary in PICKED_MODELS:
            for profile, requested in profiles.items():
                try:
                    s = choose_settings(summary, machine, None, requested)
                except LlamadeskError:
                    rows.append(f"| {board} | {summary.name} Q4_0 | {profile} | does not fit | | |")
                    continue
                rows.append(
                    f"| {board} | {summary.name} Q4_0 | {profile} | {s.n_threads} | {s.n_ctx} | {s.kv_cache_type} |"
                )
    return rows


def doctor_warnings(arm: ProbeRun, board: str, model: str) -> list[str]:
    """What `llamadesk doctor` says on a Pi 5 whose llama.cpp is the emulated build."""
    backends, features = parse_system_info(arm.system_info)
    machine = pi5(board)
    facts = DoctorFacts(
        python_version=sys.version.split()[0],
        python_executable="/home/pi/.venv/bin/python",
        build=BuildInfo("pi-check", backends or ("CPU",), False, features, arm.system_info),
        devices=(BackendDevice("CPU", machine.cpu_model, "cpu", machine.available_ram, machine.total_ram),),
        machine=machine,
        models_dir=Path("/home/pi/.local/share/llamadesk/models"),
        disk_free=20 * GIB,
        model=inspect_gguf(starter_path(model)),
        requested=configured_load_settings(PI_PROFILE),
    )
    return [warning["problem"] for warning in build_report(facts).data["warnings"]]


def agreement(c: Comparison) -> str:
    if c.same_text:
        return f"{len(c.x86.tokens)} of {len(c.x86.tokens)}"
    steps = ", ".join(
        f"{i} (one build's reply ended)"
        if c.reply_ended(i)
        else f"{i} ({'near tie' if c.near_tie(i) else 'NOT a tie'}: leads x86 {c.x86.margins[i]:.3f}, "
        f"aarch64 {c.arm.margins[i]:.3f})"
        for i in c.disagreements
    )
    return f"{len(c.x86.tokens) - len(c.disagreements)} of {len(c.x86.tokens)}; differs at step {steps}"


def report(
    builds: Path,
    comparisons: list[Comparison],
    answers: list[Comparison],
    fitted: list[FittedRun],
    warnings: list[str],
    python_run: PythonRun | None,
) -> str:
    arm = comparisons[0].arm
    lines = [
        "Command: `.venv/bin/python bench/pi.py` (builds with `packaging/pi-check.sh`; the check alone: "
        "`packaging/pi-check.sh`).",
        "",
        f"llama.cpp from the llama-cpp-python sdist, cross-built with `{(builds / 'cmake-args').read_text().strip()}` "
        "(the flags of `install.sh pi5`) and run under `qemu-aarch64 -cpu cortex-a76`; the x86 side is the same "
        "source built with `-DGGML_NATIVE=ON` (bench/build_llama_tools.sh).",
        "",
        f"SIMD paths of the emulated build: `{' '.join(arm.cpu_features)}` (llama.cpp's system info: "
        f"`{arm.system_info.strip()}`).",
        "",
        f'Greedy, {N_COMPARE} tokens after "{COMPARE_PROMPT}", 1 thread, f16 KV cache, flash attention:',
        "",
        "| model | aarch64 picks x86's token | max / mean abs logit difference | logit range | x86 s | qemu s |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.model} | {agreement(c)} | {c.max_logit_difference:.3f} / {c.mean_logit_difference:.3f} "
            f"| {c.logit_range:.1f} | {c.x86.seconds:.2f} | {c.arm.seconds:.1f} |"
        )
    lines += [
        "",
        "The aarch64 build is fed x86's tokens, so every step compares the two on the same context; a lead is a "
        "build's top logit minus its runner-up, and a difference within twice the largest logit difference is a "
        "near tie. Free-running, the greedy texts are identical up to the first difference. x86's completions:",
        "",
    ]
    lines += [f"- {c.model}: {json.dumps(c.x86.text)}" for c in comparisons]
    lines += [
        "",
        f"Greedy, {N_COMPARE} tokens, free-running on both builds (each decodes its own picks), after prompts whose "
        "answers are decided: every step's lead on x86 is more than twice the largest logit difference between the "
        "builds, so rounding cannot flip a step and two correct builds must agree on every token (same settings):",
        "",
        "| model | prompt | identical tokens | smallest lead (x86) | twice the max logit difference | x86 s | qemu s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in answers:
        identical = f"{len(c.x86.tokens)} of {len(c.x86.tokens)}" if c.same_text else agreement(c)
        lines.append(
            f"| {c.model} | {json.dumps(c.prompt)} | {identical} | {min(c.x86.margins, default=0):.2f} "
            f"| {2 * c.max_logit_difference:.2f} | {c.x86.seconds:.2f} | {c.arm.seconds:.1f} |"
        )
    lines += ["", "Their completions, the same on both builds where the row says so (aarch64's):", ""]
    lines += [f"- {c.model}: {json.dumps(c.arm.text)}" for c in answers]
    lines += [
        "",
        "Settings llamadesk fits on a Raspberry Pi 5 (faked machine facts; `pi5-load.json` is the profile "
        "`install.sh pi5` installs), loaded under emulation and asked the capital of France "
        f"({N_ANSWER} tokens). Peak memory: x86 process with the same settings (the Pi's estimate) and the qemu "
        "process (guest plus emulator):",
        "",
        "| Pi 5 | load.json | model | threads | context | batch | KV | budget | peak x86 | peak qemu | answer |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in fitted:
        s = r.settings
        lines.append(
            f"| {r.board} | {r.profile} | {r.model} | {s.n_threads} | {s.n_ctx} | {s.n_batch} | {s.kv_cache_type} "
            f"| {format_bytes(r.budget)} | {format_bytes(r.x86_peak_rss)} | {format_bytes(r.arm.peak_rss)} "
            f"| {json.dumps(r.arm.text.strip())} |"
        )
    lines += [
        "",
        "Settings fitted (not run) for the models llamadesk would pick for each board's memory, at Q4_0:",
        "",
        "| Pi 5 | model | load.json | threads | context | KV |",
        "|---|---|---|---|---|---|",
        *picked_model_settings(),
    ]
    lines += ["", "`llamadesk doctor` on a 4 GB Pi 5 with this build and SmolLM2 (Q4_1) warns:", ""]
    lines += [f"- {w}" for w in warnings] or ["- nothing"]
    if python_run is not None:
        build = python_run.doctor["build"]
        lines += [
            "",
            "llamadesk itself on Debian 12's arm64 Python 3.11 under the same qemu, with llama-cpp-python's code over "
            "the cross-built libllama (`packaging/pi-python.sh`):",
            "",
            f"- `llamadesk doctor --json` ({python_run.doctor_seconds:.0f} s): arch "
            f"`{python_run.doctor['machine']['arch']}`, build `{' '.join(build['cpu_features'])}`",
            f'- `llamadesk chat -m smollm2` greedy, "What is the capital of France?" ({python_run.chat_seconds:.0f} s, '
            f"load included): {json.dumps(python_run.answer)}",
        ]
    return "\n".join(lines)


def failures(
    comparisons: list[Comparison],
    answers: list[Comparison],
    fitted: list[FittedRun],
    warnings: list[str],
    python_run: PythonRun | None,
) -> list[str]:
    problems = [
        f"{c.model}: at step {i} the aarch64 build picks {c.arm.picks[i]}, x86 {c.x86.tokens[i]}, and it is no near tie"
        for c in comparisons
        for i in c.disagreements
        if not c.near_tie(i)
    ]
    problems += [
        f"{c.model}: the decided prompt's greedy texts differ ({agreement(c)})" for c in answers if not c.same_text
    ]
    problems += [
        f"{c.model}: the answer prompt is no longer decided (smallest lead {min(c.x86.margins, default=0):.2f}, noise "
        f"{2 * c.max_logit_difference:.2f}); choose another in ANSWER_PROMPTS"
        for c in answers
        if not c.decided
    ]
    problems += [
        f"{c.model}: the answer is {len(c.x86.tokens)} tokens, not {N_COMPARE}"
        for c in answers
        if len(c.x86.tokens) != N_COMPARE
    ]
    problems += [
        f"{r.model} on a {r.board} Pi ({r.profile}): no answer ({r.arm.text!r})" for r in fitted if not r.answered
    ]
    problems += [
        f"{r.model} on a {r.board} Pi ({r.profile}): peak {format_bytes(r.x86_peak_rss)} over the budget"
        for r in fitted
        if not r.within_budget
    ]
    problems += [f"doctor: {w}" for w in warnings if "generic build" in w]
    if python_run is not None and "Paris" not in python_run.answer:
        problems.append(f"llamadesk chat under the arm64 Python answered {python_run.answer!r}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=Path, help="pi-check.sh's build folder (default: build or find it)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--no-python", action="store_true", help="skip llamadesk on the arm64 Python (~3 min)")
    parser.add_argument(
        "--compare-kv",
        choices=("f16", "q8_0", "f32"),
        help="only compare the two builds' greedy picks and logits with this KV cache type; print, record nothing",
    )
    parser.add_argument(
        "--flash-attn",
        choices=("on", "off"),
        default="on",
        help="with --compare-kv: flash attention on (as llamadesk loads models) or off; off also prints how far"
        " the x86 build alone moves when flash attention is switched, a yardstick for the builds' difference",
    )
    args = parser.parse_args()
    builds = args.builds or pi_builds()
    if args.compare_kv:
        flash_attn = args.flash_attn == "on"
        for model in STARTERS:
            c = compare(builds, model, kv_type=args.compare_kv, flash_attn=flash_attn)
            print(
                f"{model}, {args.compare_kv} KV cache, flash attention {args.flash_attn}: aarch64 picks x86's token"
                f" at {N_COMPARE - len(c.disagreements)} of {N_COMPARE} steps (differs at {c.disagreements});"
                f" max / mean abs logit difference {c.max_logit_difference:.3f} / {c.mean_logit_difference:.3f}"
            )
            if not flash_attn:
                settings = {**COMPARE_SETTINGS, "kv_type": args.compare_kv}
                with_fa = run_probe(probe_command(builds, "x86_64"), starter_path(model), COMPARE_PROMPT, 0, **settings)
                moved = max(abs(a - b) for a, b in zip(c.x86.logits, with_fa.logits, strict=True))
                print(f"{model}: the x86 build alone, flash attention on vs off: max abs logit difference {moved:.3f}")
        return
    comparisons = [compare(builds, model) for model in STARTERS]
    answers = [compare_answer(builds, model) for model in STARTERS]
    fitted = fitted_runs(builds)
    warnings = doctor_warnings(comparisons[0].arm, "4 GB", "smollm2")
    python_run = None if args.no_python else arm64_python_run()
    text = report(builds, comparisons, answers, fitted, warnings, python_run)
    print(text)
    if not args.no_record:
        update_section("pi5 emulation", text)
    problems = failures(comparisons, answers, fitted, warnings, python_run)
    for problem in problems:
        print(f"pi: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
