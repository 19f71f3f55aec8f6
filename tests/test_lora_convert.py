"""PEFT LoRA adapters to GGUF adapters: the same tensors as llama.cpp's converter, the same logits as peft.

Adapters are made by real peft with random non-zero A and B (tests/fixtures/lora_adapters.py); the
references are llama.cpp's convert_lora_to_gguf.py (needs torch) and transformers + peft merged
in fp32. llama.cpp runs with an f32 KV cache, as in the other logits tests.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from llamadesk.convert import convert_checkpoint
from llamadesk.convert.lora import plan_adapter, write_adapter
from tests.conftest import run_cli
from tests.fixtures import lora_adapters
from tests.fixtures.logits_reference import transformers_logits
from tests.fixtures.lora_reference import gguf_tensors, llama_cpp_adapter, logits_with_adapters
from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

IDS = [1, 5, 9, 30, 44, 100, 7, 12, 3, 250, 17, 60]
FAMILIES = list(lora_adapters.FAMILY_BASES)
# llama.cpp's CPU GELU reads an f16 table, so an f32 Gemma differs from transformers by more than
# rounding (shown in test_convert_families.py); its f32 bound is that file's, not 1e-3.
F32_TOLERANCE = {"gemma3": 0.05}


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def smollm2_folder(smollm2_path) -> Path:
    return smollm2_hf_checkpoint(smollm2_path)


@pytest.fixture(scope="session")
def adapter(smollm2_folder):
    """name -> (adapter folder, base checkpoint folder)."""

    def get(name: str) -> tuple[Path, Path]:
        folder = lora_adapters.make_adapter(name, smollm2_folder)
        return folder, lora_adapters.base_folder(lora_adapters.ADAPTERS[name]["base"], smollm2_folder)

    return get


@pytest.fixture(scope="session")
def base_gguf(tmp_path_factory, adapter):
    """(base name, outtype) -> the base converted by llamadesk (cached for the session)."""
    made: dict[tuple[str, str], Path] = {}
    root = tmp_path_factory.mktemp("lora-bases")

    def get(name: str, outtype: str) -> Path:
        if (name, outtype) not in made:
            _, base = adapter(name)
            made[(name, outtype)] = convert_checkpoint(base, root / f"{name}-{outtype}.gguf", outtype)
        return made[(name, outtype)]

    return get


def _ours(adapter_folder: Path, outtype: str, target: Path) -> Path:
    return write_adapter(plan_adapter(adapter_folder, None, outtype), target)


@pytest.mark.parametrize("name", ["plain", "smollm2", *FAMILIES])
def test_tensors_equal_llama_cpp_converter_at_f16(name, adapter, tmp_path):
    folder, base = adapter(name)
    ours = gguf_tensors(_ours(folder, "f16", tmp_path / "ours.gguf"))
    theirs = gguf_tensors(llama_cpp_adapter(folder, base, "f16", tmp_path / "theirs.gguf"))
    assert ours.keys() == theirs.keys()
    for tensor, (qtype, shape, values) in theirs.items():
        assert ours[tensor][:2] == (qtype, shape), tensor
        assert np.array_equal(ours[tensor][2], values), tensor


@pytest.mark.parametrize("name", ["patterns", "mistral"])
def test_per_module_rank_and_alpha_go_into_b(name, adapter, tmp_path):
    """llama.cpp's converter writes the global alpha only; ours folds PEFT's per-module scaling into B."""
    folder, base = adapter(name)
    plan = plan_adapter(folder, None, "f32")
    ours = gguf_tensors(write_adapter(plan, tmp_path / "ours.gguf"))
    theirs = gguf_tensors(llama_cpp_adapter(folder, base, "f32", tmp_path / "theirs.gguf"))
    assert ours.keys() == theirs.keys()
    ranks = set()
    for target in plan.targets:
        a, b = target.weight + ".lora_a", target.weight + ".lora_b"
        assert np.array_equal(ours[a][2], theirs[a][2]), a
        factor = target.scale * target.pair.rank / plan.alpha  # PEFT's scaling / llama.cpp's alpha / rank
        np.testing.assert_allclose(ours[b][2], theirs[b][2] * factor, rtol=1e-6, err_msg=b)
        ranks.add(target.pair.rank)
    if name == "patterns":
        assert ranks == {2, 4, 6}  # rank_pattern gave some modules their own rank
        assert "output.weight.lora_a" in ours  # lm_head is adapted too


@pytest.mark.parametrize("name", ["plain", "patterns", "mistral", *FAMILIES])
@pytest.mark.parametrize("outtype, tolerance", [("f32", 1e-3), ("f16", 0.1)])
def test_base_plus_adapter_matches_peft(name, outtype, tolerance, adapter, base_gguf, tmp_path):
    folder, base = adapter(name)
    if outtype == "f32":
        tolerance = F32_TOLERANCE.get(name, tolerance)
    path = _ours(folder, outtype, tmp_path / "adapter.gguf")
    model = base_gguf(name, outtype)
    expected = lora_adapters.peft_logits(base, folder, IDS)
    moved = np.abs(expected - transformers_logits(base, IDS)).max()
    got = logits_with_adapters(model, [(str(path), 1.0)], IDS)
    assert np.abs(got - expected).max() < tolerance
    assert moved > 20 * tolerance  # the adapter matters far more than the conversion's error
    half = logits_with_adapters(model, [(str(path), 0.5)], IDS)
    assert np.abs(half - lora_adapters.peft_logits(base, folder, IDS, scale=0.5)).max() < tolerance
    off = logits_with_adapters(model, [(str(path), 0.0)], IDS)
    assert np.array_equal(off, logits_with_adapters(model, [], IDS))


@pytest.mark.slow
def test_smollm2_adapter_matches_peft(adapter, base_gguf, tmp_path):
    folder, base = adapter("smollm2")
    path = _ours(folder, "f32", tmp_path / "adapter.gguf")
    ids = [1, 504, 3458, 282, 4649, 314, 2113, 30, 2, 216, 1326, 17, 1007]
    expected = lora_adapters.peft_logits(base, folder, ids)
    got = logits_with_adapters(base_gguf("smollm2", "f32"), [(str(path), 1.0)], ids)
    assert np.abs(got - expected).max() < 1e-3
    assert np.abs(expected - transformers_logits(base, ids)).max() > 2.0


def test_cli_writes_adapter_and_dry_run_writes_nothing(adapter, tmp_path):
    folder, base = adapter("plain")
    out = tmp_path / "a.gguf"
    dry = run_cli("convert", str(folder), "--dry-run", "--json", "-o", str(out))
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["base"] == "tiny_llama" and plan["alpha"] == 16 and len(plan["tensors"]) == 28
    assert not out.exists()
    done = run_cli("convert", str(folder), "--base", str(base), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["base"] == "tiny_llama" and out.is_file()
    again = run_cli("convert", str(folder), "-o", str(out))
    assert again.returncode != 0 and "--force" in again.stderr


def _one_line(result, *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llamadesk: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _edited_copy(folder: Path, tmp_path: Path, **changes) -> Path:
    copy = Path(shutil.copytree(folder, tmp_path / "edited"))
    config = json.loads((copy / "adapter_config.json").read_text())
    config.update(changes)
    (copy / "adapter_config.json").write_text(json.dumps(config))
    return copy


def _renamed_copy(folder: Path, tmp_path: Path, old: str, new: str) -> Path:
    from safetensors.numpy import load_file, save_file

    copy = Path(shutil.copytree(folder, tmp_path / "renamed"))
    weights = load_file(copy / "adapter_model.safetensors")
    save_file({k.replace(old, new): v for k, v in weights.items()}, copy / "adapter_model.safetensors")
    return copy


def test_bad_adapters_are_refused_in_one_line_and_write_nothing(adapter, gemma_path, tmp_path):
    folder, _ = adapter("plain")
    _, llama2 = adapter("patterns")
    _, smollm2 = adapter("smollm2")
    out = tmp_path / "out.gguf"
    cases = [
        (["--base", str(llama2)], folder, ("another width",)),
        (["--base", str(smollm2)], folder, ("another width",)),
        (["--base", str(gemma_path)], folder, ("gemma3",)),
        ([], _edited_copy(folder, tmp_path, r=4), ("rank mismatch",)),
        ([], _renamed_copy(folder, tmp_path, "self_attn.q_proj", "attn.c_attn"), ("not a linear layer",)),
        ([], _edited_copy(folder, tmp_path / "d", use_dora=True), ("DoRA",)),
        ([], _edited_copy(folder, tmp_path / "n", base_model_name_or_path="/nowhere/model"), ("--base",)),
        ([], _edited_copy(folder, tmp_path / "p", rank_pattern={"(a+)+$": 2}), ("rank_pattern",)),
    ]
    for extra, source, needles in cases:
        _one_line(run_cli("convert", str(source), "-o", str(out), *extra), *needles)
        assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("name, base_name", [("qwen2", "qwen3"), ("qwen3", "gemma3"), ("gemma3", "plain")])
def test_adapter_for_another_family_is_refused(name, base_name, adapter, tmp_path):
    """Whether the widths differ or not (tiny Qwen3 and Gemma 3 share theirs), one line, exit 2, nothing written."""
    folder, _ = adapter(name)
    _, other = adapter(base_name)
    out = tmp_path / "out.gguf"
    line = _one_line(run_cli("convert", str(folder), "--base", str(other), "-o", str(out)), "trained on a")
    assert f"trained on a {name} model" in line, line
    assert not out.exists()


@pytest.mark.parametrize("name", FAMILIES)
def test_verify_passes_on_each_family(name, adapter, tmp_path):
    folder, _ = adapter(name)
    result = run_cli("convert", str(folder), "--verify", "-o", str(tmp_path / "a.gguf"), "--json")
    assert result.returncode == 0, result.stderr
    assert "with the adapter applied" in json.loads(result.stdout)["verified"]


def test_trained_qwen2_biases_are_refused(adapter, tmp_path):
    """Qwen2's Q/K/V biases are the base's; an adapter that trained them would be applied without them."""
    folder, _ = adapter("qwen2")
    for bias in ("all", "lora_only"):
        edited = _edited_copy(folder, tmp_path / bias, bias=bias)
        _one_line(run_cli("convert", str(edited), "-o", str(tmp_path / "out.gguf")), "bias")
    assert not (tmp_path / "out.gguf").exists()


def test_rank_patterns_match_as_peft_matches():
    from llamadesk.convert.lora.adapter_config import LoraConfig

    config = LoraConfig(rank=8, alpha=16, rank_pattern={"down_proj": 4, "layers.[0-1].self_attn.q_proj": 2})
    assert config.module_rank("model.layers.3.mlp.down_proj") == 4
    assert config.module_rank("model.layers.1.self_attn.q_proj") == 2
    assert config.module_rank("model.layers.2.self_attn.q_proj") == 8
    assert config.module_rank("model.layers.1.mlp.xdown_proj") == 8  # a whole name part, not a suffix
    assert math.isclose(LoraConfig(rank=4, alpha=8, use_rslora=True).module_scale("x"), 4.0)


def test_verify_checks_the_adapter_against_a_numpy_forward_pass(adapter, tmp_path, monkeypatch):
    folder, _ = adapter("patterns")
    out = tmp_path / "a.gguf"
    good = run_cli("convert", str(folder), "--verify", "-o", str(out), "--json")
    assert good.returncode == 0, good.stderr
    assert "with the adapter applied" in json.loads(good.stdout)["verified"]
    # An adapter whose B misses the base's Q/K reordering: llama.cpp applies it, the reference disagrees.
    from llamadesk.convert.lora import adapter_plan

    monkeypatch.setattr(adapter_plan, "weight_transform", lambda kind, config: lambda w: w)
    broken = tmp_path / "broken.gguf"
    bad = run_cli("convert", str(adapter("plain")[0]), "--verify", "-o", str(broken))
    assert bad.returncode == 1 and "verification failed" in bad.stderr and "not kept" in bad.stderr
    assert not broken.exists()


@pytest.mark.slow
def test_base_named_by_hub_repo_id_fetches_only_its_config(adapter, tmp_path):
    from tests.conftest import run_cli_process
    from tests.hub_standin import HubStandin

    folder, base = adapter("plain")
    files = {p.name: p.read_bytes() for p in base.iterdir()}
    named = _edited_copy(folder, tmp_path, base_model_name_or_path="someone/tiny-llama")
    out = tmp_path / "a.gguf"
    with HubStandin() as hub:
        hub.add_repo("someone/tiny-llama", files)
        env = hub.env(tmp_path / "hf-home")
        result = run_cli_process("convert", str(named), "-o", str(out), "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert hub.file_requests("config.json") and not hub.file_requests("model.safetensors")
        missing = run_cli_process("convert", str(named), "--base", "someone/no-such-model", "--dry-run", env=env)
    assert json.loads(result.stdout)["base"] == "someone/tiny-llama"
    _one_line(missing, "no such repo")
