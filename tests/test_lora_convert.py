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
# Gemma at f32: llama.cpp's CPU GELU reads an f16 table (ggml-cpu/vec.h defines GGML_GELU_FP16
# unconditionally), so an f32 Gemma cannot come within 1e-3 of transformers. Measured on these
# checkpoints and adapters: the table alone moves transformers + peft's logits by 0.0070; llama.cpp's
# base alone is 0.0072 from transformers, base + adapter 0.0053 (Gemma 2) and 0.0055 (Gemma 3) from
# transformers + peft (0.011 for Gemma 3 at scale 0.5). With the table emulated in transformers,
# Gemma 2 comes to 5e-4 but Gemma 3 stays at 1.9e-3, and a 1e-7 relative jitter of the GELU inputs
# (float32's own reordering noise) moves that emulated reference itself by 1.9e-3: an input on an
# f16 rounding boundary goes the other way. So what the adapter does is held against the same
# engine and conversion, llama.cpp running peft's own merge of the adapter converted like any
# checkpoint: 1e-3 for Gemma 2 (measured 2.4e-4); Gemma 3 gets 5.4e-4 at scale 1 but 1.9e-3 at 0.5
# (W·x + 0.5·B·(A·x) and (W + 0.5·B·A)·x round differently, then the table flips), its floor, so
# its bound is that floor with a margin. Against transformers + peft the bound is about twice the
# table's effect. The merged weights themselves are compared with peft's in test_lora_merge.py.
GELU_TABLE_FAMILIES = ("gemma2", "gemma3")
GELU_TABLE_BOUND = 0.02
SAME_ENGINE_TOLERANCE = {"gemma3": 5e-3}
# The multimodal Gemma 3's text model is the Gemma 3 above under other names (checked here: its
# tensors, --verify). Its tiny checkpoint's base alone, whose conversion equals convert_hf_to_gguf.py's
# byte for byte, is 0.116 (f16) and 0.014 (f32) from transformers on IDS (measured), more than the
# bounds leave for an adapter, so its logits are compared against the same engine in test_lora_merge.py.
LOGIT_FAMILIES = [family for family in FAMILIES if family != "gemma3-multimodal"]


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


@pytest.mark.parametrize("name", ["plain", "patterns", "mistral", *LOGIT_FAMILIES])
@pytest.mark.parametrize("outtype, tolerance", [("f32", 1e-3), ("f16", 0.1)])
def test_base_plus_adapter_matches_peft(name, outtype, tolerance, adapter, base_gguf, tmp_path):
    folder, base = adapter(name)
    path = _ours(folder, outtype, tmp_path / "adapter.gguf")
    model = base_gguf(name, outtype)
    moved = np.abs(lora_adapters.peft_logits(base, folder, IDS) - transformers_logits(base, IDS)).max()
    assert moved > 20 * tolerance  # the adapter matters far more than the conversion's error
    for scale in (1.0, 0.5):
        got = logits_with_adapters(model, [(str(path), scale)], IDS)
        expected = lora_adapters.peft_logits(base, folder, IDS, scale=scale)
        if outtype == "f32" and name in GELU_TABLE_FAMILIES:
            assert np.abs(got - expected).max() < GELU_TABLE_BOUND, scale
            expected = logits_with_adapters(_peft_merged_gguf(name, scale, tmp_path), [], IDS)
            tolerance = SAME_ENGINE_TOLERANCE.get(name, tolerance)
        assert np.abs(got - expected).max() < tolerance, scale
    off = logits_with_adapters(model, [(str(path), 0.0)], IDS)
    assert np.array_equal(off, logits_with_adapters(model, [], IDS))


def _peft_merged_gguf(name: str, scale: float, tmp_path: Path) -> Path:
    """peft's merge of adapter `name` at `scale`, converted to f32 by llamadesk (the base's conversion)."""
    merged = lora_adapters.peft_merged_checkpoint(name, scale)
    return convert_checkpoint(merged, tmp_path / f"peft-merged-{scale:g}.gguf", "f32")


@pytest.mark.slow
@pytest.mark.parametrize("outtype, tolerance", [("f32", 1e-3), ("f16", 0.15)])
def test_smollm2_adapter_matches_peft(outtype, tolerance, adapter, base_gguf, tmp_path):
    """The real SmolLM2 checkpoint. At f16 the reference is peft with the weights rounded to f16 as the
    files store them: that rounding alone moves peft's own logits by 0.11 here (this adapter moves
    them by 27), so no f16 file, llama.cpp's converter's included (ours equals it tensor for tensor),
    comes within 0.1 of fp32 peft. Measured: f16 base + f16 adapter 0.15 from fp32 peft (the f16
    base alone is 0.05 from transformers, the f16 adapter on the f32 base 0.08 from peft) and 0.08
    from peft with the f16 weights. That 0.08 is llama.cpp's f16 matmuls rounding their inputs to
    f16: with that rounding emulated too, a 1e-7 relative jitter of the inputs moves the reference
    itself by 0.06-0.12 (an input on a rounding boundary goes the other way), so it is the floor.
    The floor moves with the host's kernels: 0.08 on an AVX2 host, 0.106 on an AVX-512 one
    (2026-12-02), hence 0.15, still far below the adapter's own effect."""
    folder, base = adapter("smollm2")
    path = _ours(folder, outtype, tmp_path / "adapter.gguf")
    model = base_gguf("smollm2", outtype)
    ids = [1, 504, 3458, 282, 4649, 314, 2113, 30, 2, 216, 1326, 17, 1007]
    expected = lora_adapters.peft_logits(base, folder, ids, f16_weights=outtype == "f16")
    got = logits_with_adapters(model, [(str(path), 1.0)], ids)
    assert np.abs(got - expected).max() < tolerance
    assert np.abs(expected - transformers_logits(base, ids)).max() > 20 * tolerance
    off = logits_with_adapters(model, [(str(path), 0.0)], ids)
    assert np.array_equal(off, logits_with_adapters(model, [], ids))


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
        # Adapters that work only on the base peft changed for them: applied to the original, they
        # gave another model (PiSSA: no top-1 token in common with peft's), and --verify passed.
        ([], _edited_copy(folder, tmp_path / "pissa", init_lora_weights="pissa_niter_4"), ("path_initial_model",)),
        ([], _edited_copy(folder, tmp_path / "olora", init_lora_weights="olora"), ("path_initial_model",)),
        ([], _edited_copy(folder, tmp_path / "loftq", init_lora_weights="loftq"), ("path_initial_model",)),
        ([], _edited_copy(folder, tmp_path / "bd", use_bdlora={"nblocks": 2}), ("block-diagonal",)),
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


def test_info_describes_an_adapter_instead_of_calling_it_damaged(adapter, tmp_path):
    folder, _ = adapter("plain")
    out = tmp_path / "adapter.gguf"
    assert run_cli("convert", str(folder), "-o", str(out)).returncode == 0
    shown = run_cli("info", str(out))
    assert shown.returncode == 0 and "LoRA adapter for llama" in shown.stdout and "adapted weights" in shown.stdout
    described = json.loads(run_cli("info", str(out), "--json").stdout)
    assert described["type"] == "adapter" and described["architecture"] == "llama" and described["adapted_weights"] > 0
