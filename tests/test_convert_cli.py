"""`llamadesk convert` as a user runs it: bad input gets one clear line and exit 2, output is atomic."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert import plan_conversion, write_gguf
from tests.conftest import assert_one_clear_line, run_cli, run_cli_process
from tests.fixtures.random_checkpoints import build

# Each test converts into a library of its own (conftest.own_home), not the session's.
pytestmark = pytest.mark.usefixtures("own_home")


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


class RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.slow
def test_pickle_calling_os_system_is_refused_with_exit_2_and_nothing_runs(llama2, tmp_path):
    marker = tmp_path / "pwned"
    (llama2 / "model.safetensors").unlink()
    torch.save(
        {"model.embed_tokens.weight": torch.ones(2, 2), "x": RunsCode(f"touch {marker}")}, llama2 / "pytorch_model.bin"
    )
    result = run_cli("convert", str(llama2), "-o", str(tmp_path / "out.gguf"))
    assert_one_clear_line(result, 2, "refused", "system")
    assert not marker.exists() and not (tmp_path / "out.gguf").exists()


@pytest.mark.slow
def test_truncated_safetensors(llama2, tmp_path):
    weights = llama2 / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_one_clear_line(run_cli("convert", str(llama2), "-o", str(tmp_path / "o.gguf")), 2, "damaged or incomplete")


@pytest.mark.slow
def test_truncated_zip(checkpoints_root, tmp_path):
    folder = Path(shutil.copytree(build("llama2_bin", checkpoints_root), tmp_path / "bin"))
    weights = folder / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size * 2 // 3])
    assert_one_clear_line(run_cli("convert", str(folder), "-o", str(tmp_path / "o.gguf")), 2, "damaged or incomplete")


@pytest.mark.slow
def test_config_with_a_missing_key(llama2, tmp_path):
    _edit_config(llama2, num_hidden_layers=None)
    assert_one_clear_line(
        run_cli("convert", str(llama2), "-o", str(tmp_path / "o.gguf")), 2, "missing 'num_hidden_layers'"
    )


@pytest.mark.slow
@pytest.mark.parametrize("architectures", [None, []])
def test_a_config_naming_no_architecture_says_which_to_add(llama2, tmp_path, architectures):
    # It said "architecture llama is not supported" of a plain Llama checkpoint (its model_type).
    _edit_config(llama2, architectures=architectures)
    result = run_cli("convert", str(llama2), "-o", str(tmp_path / "o.gguf"))
    assert_one_clear_line(
        result, 2, "names no architecture (model_type llama)", '"architectures": ["LlamaForCausalLM"]'
    )


@pytest.mark.slow
def test_tensor_shape_disagreeing_with_config(llama2, tmp_path):
    _edit_config(llama2, intermediate_size=128)
    result = run_cli("convert", str(llama2), "-o", str(tmp_path / "o.gguf"))
    assert_one_clear_line(result, 2, "mlp.down_proj.weight has shape [64, 96]", "config says [64, 128]")


@pytest.mark.slow
def test_unknown_architecture_names_what_is_supported(llama2, tmp_path):
    _edit_config(llama2, architectures=["GPT2LMHeadModel"])
    result = run_cli("convert", str(llama2), "-o", str(tmp_path / "o.gguf"))
    assert_one_clear_line(result, 2, "GPT2LMHeadModel is not supported", "LlamaForCausalLM", "Qwen3ForCausalLM")


@pytest.mark.slow
def test_unknown_pre_tokenizer_says_how_to_proceed(checkpoints_root, tmp_path):
    folder = Path(shutil.copytree(build("llama3", checkpoints_root), tmp_path / "l3"))
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["pre_tokenizer"] = {"type": "Whitespace"}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    result = run_cli("convert", str(folder), "-o", str(tmp_path / "o.gguf"))
    assert_one_clear_line(result, 2, "pre-tokenizer (Whitespace)", "--pre-tokenizer NAME", "--verify")


@pytest.mark.slow
def test_missing_folder_and_missing_weights(tmp_path):
    assert_one_clear_line(run_cli("convert", str(tmp_path / "nope")), 2, "no such folder")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert_one_clear_line(run_cli("convert", str(tmp_path)), 2, "missing 'vocab_size'")


@pytest.mark.slow
def test_existing_output_needs_force(llama2, tmp_path):
    out = tmp_path / "o.gguf"
    out.write_bytes(b"keep me")
    assert_one_clear_line(run_cli("convert", str(llama2), "-o", str(out)), 2, "--force")
    assert out.read_bytes() == b"keep me"
    result = run_cli("convert", str(llama2), "-o", str(out), "--force", "--outtype", "q8_0", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outtype"] == "Q8_0" and out.read_bytes()[:4] == b"GGUF"
    listed = json.loads(run_cli("models", "--json").stdout)
    assert any(Path(m["path"]) == out for m in listed)  # written outside the models folder, still in the library


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_writes_nothing(llama2, tmp_path):
    out = tmp_path / "o.gguf"
    result = run_cli("convert", str(llama2), "-o", str(out), "--dry-run", "--outtype", "f16")
    assert result.returncode == 0, result.stderr
    assert "blk.1.ffn_down.weight" in result.stdout and "F16" in result.stdout and "would write" in result.stdout
    plan = json.loads(run_cli("convert", str(llama2), "-o", str(out), "--dry-run", "--json").stdout)
    assert {t["name"]: t["type"] for t in plan["tensors"]}["output_norm.weight"] == "F32"
    assert not out.exists() and list(tmp_path.glob(".*part")) == []


@pytest.mark.slow
def test_verify_passes_and_the_result_joins_the_library(checkpoints_root, own_home):
    result = run_cli("convert", str(build("llama3", checkpoints_root)), "--verify", "--outtype", "f32")
    assert result.returncode == 0, result.stderr
    assert "verified: tokenizer identical, logits within" in result.stdout
    models = json.loads(run_cli("models", "--json").stdout)
    entry = next(m for m in models if m["name"] == "llama3-F32")
    assert entry["architecture"] == "llama" and entry["source"] == "local"
    assert Path(entry["path"]).parent == own_home / "data" / "models"


@pytest.mark.slow
def test_failed_verification_keeps_no_file(checkpoints_root, tmp_path):
    out = tmp_path / "o.gguf"
    result = run_cli(
        "convert", str(build("llama3", checkpoints_root)), "-o", str(out), "--verify", "--pre-tokenizer", "gpt-2"
    )
    assert result.returncode == 1
    assert "verification failed" in result.stderr and "not kept" in result.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "home"] == []


@pytest.mark.slow
def test_interrupted_conversion_leaves_nothing(llama2, tmp_path):
    plan = plan_conversion(llama2, "f16")
    out = tmp_path / "o.gguf"

    def press_ctrl_c(done: int, total: int) -> None:
        assert done < total
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_gguf(plan, out, progress=press_ctrl_c)
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == ["llama2"]


def test_help_has_examples():
    result = run_cli("convert", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout and "--verify" in result.stdout


# How the help names each family of convert/architectures.py: a family added there fails the test
# below until the help names it too.
FAMILY_IN_HELP = {
    "LlamaForCausalLM": "Llama 1/2/3.x",
    "MistralForCausalLM": "Mistral",
    "Qwen2ForCausalLM": "Qwen2/2.5",
    "Qwen3ForCausalLM": "Qwen3",
    "Phi3ForCausalLM": "Phi-3/3.5 mini and Phi-4-mini",
    "Gemma2ForCausalLM": "Gemma 2",
    "Gemma3ForCausalLM": "Gemma 3",
    "Gemma3ForConditionalGeneration": "multimodal 4B-27B",
}


def test_help_names_every_family_and_says_the_tokenizer_packages_come_with_llamadesk():
    from llamadesk.convert.architectures import HF_ARCHITECTURES

    assert set(FAMILY_IN_HELP) == set(HF_ARCHITECTURES)
    text = " ".join(run_cli("convert", "--help").stdout.split())  # the same words, however wrapped
    for family in FAMILY_IN_HELP.values():
        assert family in text
    assert "both installed with llamadesk" in text and "not llamadesk dependencies" not in text


@pytest.mark.parametrize("qtype", ["IQ2_XS", "iq1_s", "Q2_K_S"])
def test_a_type_that_needs_an_importance_matrix_is_refused_before_converting(llama2, tmp_path, qtype):
    """It converted the whole checkpoint first, then the quantizer refused: minutes for nothing."""
    out = tmp_path / "o.gguf"
    result = run_cli("convert", str(llama2), "-o", str(out), "--quantize", qtype)
    assert_one_clear_line(result, 2, "needs an importance matrix")
    assert "--quantize F16" in result.stderr and "--imatrix" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["llama2"]  # nothing written, not even an intermediate


def test_bad_outtype_is_refused():
    result = run_cli("convert", "x", "--outtype", "q4_0")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_an_empty_source_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("convert", "", "-o", str(tmp_path / "x.gguf"))
    assert result.returncode == 2 and result.stderr.strip() == (
        "llamadesk: SRC is empty; give a checkpoint folder or a Hub repo id (owner/name)"
    )


def test_refusal_is_a_bad_input_error():
    from llamadesk.convert.torch_zip_reader import UnsafePickleError

    assert issubclass(UnsafePickleError, BadInputError)


@pytest.mark.slow
def test_conversion_needs_neither_torch_nor_its_companions(checkpoints_root, tmp_path):
    """With torch, transformers, safetensors and sentencepiece made unimportable, a pickled Meta
    checkpoint and an HF safetensors folder still convert (and --dry-run still plans)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'safetensors', 'sentencepiece', 'tokenizers'):\n"
        "    sys.modules[name] = None\n"
        "from llamadesk.app.cli import main\n"
        "assert main(['convert', sys.argv[1], '-o', sys.argv[3] + '/a.gguf']) == 0\n"
        "assert main(['convert', sys.argv[2], '-o', sys.argv[3] + '/b.gguf', '--outtype', 'q8_0']) == 0\n"
        "assert not any(m in sys.modules and sys.modules[m] for m in ('torch', 'transformers'))\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(build("meta_2shards", checkpoints_root)),
            str(build("llama3", checkpoints_root)),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.gguf").stat().st_size > 0 and (tmp_path / "b.gguf").stat().st_size > 0


@pytest.mark.slow
def test_hub_repo_id_downloads_only_what_conversion_needs(checkpoints_root, tmp_path):
    from llamadesk.app.core.gguf_file import inspect_gguf
    from tests.hub_standin import HubStandin

    folder = build("llama3", checkpoints_root)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    files["pytorch_model.bin"] = b"an older copy of the weights; never needed next to safetensors"
    files["onnx/model.onnx"] = b"not for llama.cpp"
    out = tmp_path / "o.gguf"
    with HubStandin() as hub:
        hub.add_repo("someone/tiny-llama3", files)
        env = hub.env(tmp_path / "hf-home")
        result = run_cli_process("convert", "someone/tiny-llama3", "-o", str(out), "--outtype", "f32", env=env)
        assert result.returncode == 0, result.stderr
        assert hub.file_requests("model.safetensors") and hub.file_requests("tokenizer.json")
        assert not hub.file_requests("pytorch_model.bin") and not hub.file_requests("model.onnx")
        missing = run_cli_process("convert", "someone/no-such-model", "-o", str(tmp_path / "x.gguf"), env=env)
    assert inspect_gguf(out).metadata["general.name"] == "tiny-llama3"
    assert_one_clear_line(missing, 2, "no such repo")


@pytest.mark.parametrize(
    ("source", "folder_named"),
    [("llama2_spm", "model-00001.safetensors"), ("meta_2shards", "consolidated.02.pth")],
)
def test_a_folder_where_a_weight_file_is_expected_is_bad_input(checkpoints_root, tmp_path, source, folder_named):
    # It was opened as a file: "Is a directory", exit 1.
    folder = Path(shutil.copytree(build(source, checkpoints_root), tmp_path / "src"))
    if source == "llama2_spm":
        for weights in folder.glob("*.safetensors"):
            weights.unlink()
    (folder / folder_named).mkdir()
    out = tmp_path / "out.gguf"
    result = run_cli("convert", str(folder), "-o", str(out))
    assert_one_clear_line(result, 2, f"{folder_named} is not a regular file, where a weight file is expected")
    assert not out.exists()
