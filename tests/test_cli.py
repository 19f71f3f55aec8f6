"""The `llamadesk` console script as a user runs it: answers, listings and bad input."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from llamadesk.app.engine.fitted_settings import reply_context
from llamadesk.app.engine.llama_engine import ONE_REPLY_SLACK
from tests.conftest import PINNED_FLAGS, PINNED_SAMPLING_FLAGS, assert_one_clear_line, run_cli


def test_chat_answers_paris_greedily():
    result = run_cli("chat", "-m", "smollm2", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


def test_chat_reads_a_piped_prompt_and_prints_stats():
    result = run_cli(
        "chat", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "8", "--stats", input="Say hello.\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "tok/s" in result.stderr and "context" in result.stderr


def _stats_context(stderr: str) -> tuple[int, int]:
    used, n_ctx = re.search(r"context (\d+)/(\d+);", stderr).groups()
    return int(used), int(n_ctx)


def test_a_one_shot_reply_gets_a_context_sized_for_it_and_says_the_same():
    """chat PROMPT holds only its prompt and reply: the context is sized for them, counted in the
    model's tokens (less KV cache to allocate, a shorter V cache to read per token without flash
    attention, the CPU's default) and the reply is the one the full context gives."""
    question = ("Write a long story about a dragon who learns to cook.",)
    flags = (*PINNED_FLAGS, "--flash-attn", "off", *PINNED_SAMPLING_FLAGS, "--stats", "--max-tokens", "300")
    sized = run_cli("chat", *flags, *question)
    full = run_cli("chat", *flags, "--ctx", "8192", *question)
    assert sized.returncode == 0 and full.returncode == 0, sized.stderr + full.stderr
    used, n_ctx = _stats_context(sized.stderr)
    prompt = int(re.search(r"prompt (\d+) tokens", sized.stderr).group(1))
    # The prompt's tokens, prompt lookup's slack and the reply, in steps of 256: 512 cells here,
    # where the rendered prompt's bytes (the bound before the vocabulary is loaded) gave 768.
    assert n_ctx == reply_context(prompt + ONE_REPLY_SLACK + 300) == 512, sized.stderr
    assert used <= n_ctx and "300 tokens" in sized.stderr, sized.stderr
    assert _stats_context(full.stderr) == (used, 8192)
    assert sized.stdout == full.stdout, "the same 300-token reply in either context"
    # A long piped prompt: room for all of it and the reply (every token covers a byte or more).
    long_text = "Summarize in one word: " + "the quick brown fox jumps over the lazy dog. " * 150
    piped = run_cli("chat", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--stats", "--max-tokens", "4", input=long_text)
    used, n_ctx = _stats_context(piped.stderr)
    assert piped.returncode == 0 and used > 1500 and used + 4 <= n_ctx < 8192, piped.stderr


def test_a_reply_cut_short_by_a_full_context_says_so():
    """Exit 0 and the reply's text either way; without a note (and without --stats) a reply that
    ran out of context read as one that was complete."""
    flags = (*PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--ctx", "256", "--max-tokens", "1000")
    cut = run_cli("chat", *flags, "Write a long story about a dragon who learns to cook.")
    assert cut.returncode == 0 and cut.stdout.strip(), cut.stderr
    assert cut.stderr.strip() == (
        "llamadesk: note: the reply stopped where the context (256 tokens) is full; a larger --ctx gives it room"
    )
    whole = run_cli("chat", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "8", "Say hello.")
    assert whole.returncode == 0 and whole.stderr == "", whole.stderr


def test_models_lists_both_starters_as_json():
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert entries["smollm2"]["architecture"] == "llama"
    assert entries["smollm2"]["quantization"] == "Q4_1"
    assert entries["smollm2"]["has_chat_template"] is True
    assert entries["gemma3-270m"]["architecture"] == "gemma3"
    assert entries["gemma3-270m"]["quantization"] == "Q4_K_M"
    assert entries["gemma3-270m"]["context_length"] == 32768
    for entry in entries.values():
        assert entry["file_size"] > 50_000_000 and entry["parameters"] > 100_000_000


def test_models_table_is_human_readable():
    result = run_cli("models")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].split()[:4] == ["NAME", "ARCH", "PARAMS", "QUANT"]


def test_info_shows_metadata(smollm2_path):
    result = run_cli("info", str(smollm2_path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["metadata"]["llama.block_count"] == 30
    assert info["tensor_types"]["Q4_1"] > 100
    assert info["metadata"]["tokenizer.ggml.tokens"] == "[49152 strings]"
    human = run_cli("info", "smollm2")
    assert "llama.context_length = 8192" in human.stdout


def test_bench_json_reports_both_tests():
    result = run_cli("bench", "-m", "smollm2", "-p", "32", "-n", "4", "-r", "1", "--batched", "2", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["test"] for r in rows] == ["pp32", "tg4", "pp64+tg64x2"]
    assert all(r["avg_ts"] > 0 and r["backend"] == "CPU" for r in rows)
    generation = rows[1]
    # SmolLM2 ties its output to the embedding: every tensor is read per token.
    assert 0.95 * generation["model_size"] < generation["weight_bytes_per_token"] < generation["model_size"]
    assert (
        generation["bandwidth_limit_ts"]
        == generation["read_bandwidth_bytes_per_s"] / generation["weight_bytes_per_token"]
    )
    assert 0 < generation["bandwidth_share"] < 2  # a share of a limit (a little over 1 only from cache effects)
    assert rows[2]["n_sequences"] == 2 and rows[2]["speed_pp"] > 0 and rows[2]["speed_tg"] > 0


def test_bench_batched_line_with_a_context_of_one_token():
    # `-p 0 -n 1` sizes the context, and with it the batch, to one token: the batched decoder's
    # context then failed llama.cpp's assert (n_outputs_max) and the process aborted, exit 134.
    result = run_cli("bench", "-m", "smollm2", "-p", "0", "-n", "1", "-r", "1", "--batched", "2", "--json")
    assert result.returncode == 0, result.stderr[-500:]
    assert [r["test"] for r in json.loads(result.stdout)] == ["tg1", "pp64+tg64x2"]


def test_bench_with_nothing_to_measure_is_refused():
    # `-p 0 -n 0 --batched 0` printed an empty table, exit 0.
    result = run_cli("bench", "-m", "smollm2", "-p", "0", "-n", "0", "--batched", "0", "--threads", "1")
    assert_one_clear_line(result, 2, "nothing to measure")


def test_bench_depth_sizes_the_context_and_names_the_test():
    result = run_cli("bench", "-m", "smollm2", "-p", "0", "-n", "4", "-d", "300", "-r", "1", "--batched", "0", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["test"] == "tg4 @ d300" and row["n_depth"] == 300 and row["avg_ts"] > 0
    assert_one_clear_line(run_cli("bench", "-m", "smollm2", "-d", "-1"), 2, "-d")
    # A context smaller than llama.cpp's 256-cell padding is the size that holds, for -d and -p alike.
    for test in (("-p", "0", "-n", "4", "-d", "100"), ("-p", "100", "-n", "0")):
        too_small = run_cli("bench", "-m", "smollm2", *test, "--ctx", "64", "-r", "1", "--batched", "0")
        assert_one_clear_line(too_small, 2, "context of at least")


def test_an_untied_model_reads_one_embedding_row_per_token():
    from llamadesk.app.core.gguf_header import GGUFHeader, TensorInfo
    from llamadesk.app.core.memory_bandwidth import weight_bytes_per_token

    def tensor(name, n_bytes, shape):
        return TensorInfo(name, shape, None, 0, 0, n_bytes)

    embedding = tensor("token_embd.weight", 1000 * 64, (64, 1000))
    layers = [tensor("blk.0.ffn_up.weight", 5000, (64, 80)), tensor("output_norm.weight", 256, (64,))]
    tied = GGUFHeader(3, {}, [embedding, *layers], 32, 0, 0, {})
    untied = GGUFHeader(3, {}, [embedding, *layers, tensor("output.weight", 64000, (64, 1000))], 32, 0, 0, {})
    assert weight_bytes_per_token(tied) == 64000 + 5256
    assert weight_bytes_per_token(untied) == 64 + 5256 + 64000


def test_missing_path(tmp_path):
    assert_one_clear_line(run_cli("chat", "-m", str(tmp_path / "nothing.gguf"), "hi"), 2, "no such file")


def test_unknown_model_name_lists_what_exists():
    assert_one_clear_line(run_cli("chat", "-m", "no-such-model", "hi"), 2, "smollm2")


def test_file_that_is_not_gguf(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("hello, I am a text file\n" * 10)
    assert_one_clear_line(run_cli("chat", "-m", str(path), "hi"), 2, "not a GGUF file")


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_gguf(tmp_path, smollm2_path, fraction):
    path = tmp_path / "cut.gguf"
    data = smollm2_path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    assert_one_clear_line(run_cli("chat", "-m", str(path), "hi"), 2, "truncated")


def test_corrupted_gguf_header(tmp_path, smollm2_path):
    path = tmp_path / "corrupt.gguf"
    shutil.copy(smollm2_path, path)
    with path.open("r+b") as handle:
        handle.seek(24)  # the first key's length: now absurdly long
        handle.write(b"\xff" * 8)
    assert_one_clear_line(run_cli("chat", "-m", str(path), "hi"), 2, "damaged")


def test_context_larger_than_memory():
    assert_one_clear_line(run_cli("chat", "--ctx", "500000000", "hi"), 2, "use --ctx")


def test_bad_option_values():
    assert_one_clear_line(run_cli("chat", "--temperature", "-1", "hi"), 2, "temperature")
    # llama.cpp's seed is 32-bit: 2**32 wrapped to seed 0, and 4294967295 (what -1 becomes) means
    # "random": a seed that looked fixed and did not reproduce.
    for seed in ("4294967296", "4294967295", "-1"):
        assert_one_clear_line(
            run_cli("chat", "--seed", seed, "hi"), 2, f"--seed must be a whole number from 0 to 4294967294, not {seed}"
        )
    assert run_cli("chat", "--ctx", "lots").returncode == 2  # argparse's own usage error


def test_control_characters_in_a_message_are_shown_not_sent_to_the_terminal():
    # A model name from another app's store, quoted in "unknown model ...; available: ...", set the
    # terminal's title (ESC ] 0 ; ... BEL).
    done = run_cli("chat", "-m", "evil\x1b]0;pwned\x07x", "hi")
    assert done.returncode == 2 and "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "evil^[]0;pwned^Gx" in done.stderr


def test_empty_piped_prompt():
    assert_one_clear_line(run_cli("chat", input=""), 2, "nothing to answer")


def test_endless_or_undecodable_piped_prompts_are_refused_without_reading_them_all(tmp_path):
    # `chat < /dev/zero` read until the kernel killed it at 21 GB. A memory limit keeps a return of
    # that from taking the machine with it: the refusal needs far less.
    import resource
    import subprocess

    from tests.conftest import LLAMADESK

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))

    env = {"LLAMADESK_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run(
            [str(LLAMADESK), "chat", "--threads", "1"],
            stdin=zeros, capture_output=True, text=True, timeout=120, preexec_fn=limited, env=env,
        )  # fmt: skip
    assert_one_clear_line(done, 2, "the piped prompt is larger than 8.0 MiB")
    done = subprocess.run([str(LLAMADESK), "chat"], input=b"\xff\xfe hi", capture_output=True, timeout=120, env=env)
    done = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
    assert_one_clear_line(done, 2, "the piped prompt is not UTF-8 text")


def test_package_installs_under_one_namespace():
    import importlib.util

    assert importlib.util.find_spec("llamadesk.app") is not None
    assert importlib.util.find_spec("llamadesk.convert") is not None
    assert importlib.util.find_spec("llamadesk.quantize") is not None
    result = run_cli("--help")
    assert result.returncode == 0 and "chat" in result.stdout


def test_every_command_module_is_listed_and_shown_in_help():
    from pathlib import Path

    from llamadesk.app.cli import COMMAND_MODULES

    folder = Path(__file__).resolve().parents[1] / "app" / "commands"
    with_register = {p.stem for p in folder.glob("*.py") if "\ndef register(" in p.read_text()}
    assert set(COMMAND_MODULES.values()) == with_register
    result = run_cli("--help")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line[4] != " "]
    assert listed == list(COMMAND_MODULES)


@pytest.mark.parametrize("name", ["quantize", "fit", "chat", "models", "rpc-server"])
def test_each_command_parses_alone(name):
    from llamadesk.app.cli import build_parser

    parser = build_parser(name)
    assert set(parser._subparsers._group_actions[0].choices) == {name}
    result = run_cli(name, "--help")
    assert result.returncode == 0 and f"usage: llamadesk {name}" in result.stdout


def test_a_light_command_imports_only_what_it_uses():
    """`llamadesk quantize` in a script loop should not pay for the Hub client, Textual or numpy."""
    import subprocess
    import sys

    probe = (
        "import sys; from llamadesk.app.cli import main; main(['quantize', '--list-types']); "
        "print(sorted(m for m in ('numpy', 'gguf', 'huggingface_hub', 'textual', 'llama_cpp') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["quantize", "x.gguf", "--memory", "-5GB"],
            "argument --memory: expected one argument; see `llamadesk quantize --help`",
        ),
        (["convert", "a", "--outtype", "zz"], "invalid choice: 'zz'"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        (["models", "rm"], "see `llamadesk models rm --help`"),
    ],
)
def test_a_usage_error_is_one_line(argv, says):
    # argparse printed its usage block and then the error: 2 to 30 lines for one mistake.
    assert_one_clear_line(run_cli(*argv), 2, says)
