"""Hostile PEFT adapters fed to `llamadesk convert ADAPTER_DIR`, and hostile GGUF adapters to `chat --lora`.

Each case runs in a forked child under a memory limit and a timeout (tests/fuzz/fork_driver.py):
exit 2 with one `llamadesk: ` line, no traceback, no signal, no hang, and no file left behind.
Classes: adapter_config.json values (types, ranges, PEFT features llama.cpp cannot apply, patterns
that would make a regular expression backtrack forever), adapter safetensors (the generic header
attacks of the checkpoint fuzzer plus LoRA-specific ones: unpaired halves, ranks that disagree,
shapes of another model), seeded byte mutations of a valid adapter (convert or refuse, nothing
else), and seeded header mutations of a converted GGUF adapter given to `chat --lora`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import lora_adapters
from tests.fuzz.checkpoint_files import ENV, hostile_safetensors_files, mutants, report_outcomes, safetensors_bytes
from tests.fuzz.harness import assert_all_refused, cli_case, run_cases
from tests.gguf_samples import write_out

pytestmark = pytest.mark.slow

PRELOAD = (
    "llamadesk.app.cli",
    "llamadesk.app.commands.convert",
    "llamadesk.app.commands.convert_adapter",
    "llamadesk.convert.lora",
    "llamadesk.app.library.registry",
    "rich.progress",
)
Q = "base_model.model.model.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def plain() -> Path:
    return lora_adapters.make_adapter("plain")


def variant(base: Path, root: Path, case_id: str, files: dict[str, bytes | dict]) -> Path:
    folder = root / "cases" / case_id.replace("/", "--")
    shutil.copytree(base, folder, copy_function=os.link)
    for name, content in files.items():
        (folder / name).unlink(missing_ok=True)  # a new file, never a write through the hard link
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (folder / name).write_bytes(data)
    return folder


def refused_leaving_nothing(folders: dict[str, Path], tmp_path: Path, codes=(2,)) -> dict:
    cases = []
    for case_id, folder in folders.items():
        out = tmp_path / "out" / case_id.replace("/", "--")
        out.mkdir(parents=True)
        cases.append(cli_case(f"{case_id} dry-run", "convert", folder, "--dry-run", env=ENV))
        cases.append(cli_case(f"{case_id} -o", "convert", folder, "-o", out / "a.gguf", env=ENV))
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused(results, codes)
    if codes == (2,):
        left = sorted(str(p) for p in (tmp_path / "out").rglob("*") if p.is_file())
        assert not left, f"refused conversions left files behind: {left[:5]}"
    report_outcomes(results)
    return results


def _config_changes() -> dict[str, dict]:
    catastrophic = {"(a+)+$": 2, "(a|aa)*b": 2, "(.*)*x": 2, "x{1,100000}": 2}
    return {
        "config/r-zero": {"r": 0},
        "config/r-negative": {"r": -8},
        "config/r-text": {"r": "8"},
        "config/r-float": {"r": 8.0},
        "config/r-boolean": {"r": True},
        "config/r-huge": {"r": 10**12},
        "config/alpha-text": {"lora_alpha": "16"},
        "config/alpha-zero": {"lora_alpha": 0},
        "config/alpha-infinite": {"lora_alpha": float("inf")},
        "config/alpha-nan": {"lora_alpha": float("nan")},
        "config/rslora-text": {"use_rslora": "yes"},
        "config/rank-pattern-list": {"rank_pattern": [1, 2]},
        "config/rank-pattern-value-text": {"rank_pattern": {"q_proj": "2"}},
        "config/rank-pattern-value-zero": {"rank_pattern": {"q_proj": 0}},
        "config/rank-pattern-wrong-rank": {"rank_pattern": {"q_proj": 3}},
        "config/rank-pattern-invalid-regex": {"rank_pattern": {"q_proj(": 2}},
        "config/rank-pattern-empty-key": {"rank_pattern": {"": 2}},
        "config/rank-pattern-long-key": {"rank_pattern": {"a" * 10_000: 2}},
        "config/rank-pattern-newline-key": {"rank_pattern": {"q_proj\nx": 2}},
        "config/rank-pattern-100k-keys": {"rank_pattern": {f"k{i}": 2 for i in range(100_000)}},
        **{
            f"config/alpha-pattern-backtracking-{i}": {"alpha_pattern": {k: v}}
            for i, (k, v) in enumerate(catastrophic.items())
        },
        "config/dora": {"use_dora": True},
        "config/bias-all": {"bias": "all"},
        "config/modules-to-save": {"modules_to_save": ["lm_head"]},
        "config/layer-replication": {"layer_replication": [[0, 2], [0, 2]]},
        "config/fan-in-fan-out": {"fan_in_fan_out": True},
        "config/alora": {"alora_invocation_tokens": [1, 2]},
        "config/prefix-tuning": {"peft_type": "PREFIX_TUNING"},
        "config/base-a-list": {"base_model_name_or_path": ["x"]},
        "config/base-missing-folder": {"base_model_name_or_path": "/nowhere/at/all"},
        "config/base-newline": {"base_model_name_or_path": "a\nb"},
        "config/base-is-the-adapter": {"base_model_name_or_path": "."},
    }


def test_hostile_adapter_configs_are_refused(plain, tmp_path):
    config = json.loads((plain / "adapter_config.json").read_text())
    folders = {
        case_id: variant(plain, tmp_path, case_id, {"adapter_config.json": {**config, **changes}})
        for case_id, changes in _config_changes().items()
    }
    deep = '{"a":' + "[" * 10_000 + "]" * 10_000 + "}"
    for case_id, raw in {
        "config-json/not-json": b"{not json",
        "config-json/an-array": b"[1, 2]",
        "config-json/deep": deep.encode(),
        "config-json/not-utf8": b'{"r": "\xff"}',
        "config-json/empty": b"",
    }.items():
        folders[case_id] = variant(plain, tmp_path, case_id, {"adapter_config.json": raw})
    refused_leaving_nothing(folders, tmp_path)


def _lora_safetensors() -> dict[str, bytes]:
    def tensors(entries: dict[str, tuple[str, list[int]]]) -> bytes:
        header, offset = {}, 0
        for name, (dtype, shape) in entries.items():
            size = int(np.prod(shape)) * (2 if dtype in ("F16", "BF16") else 4)
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        return safetensors_bytes(header, bytes(offset))

    a, b = f"{Q}.lora_A.weight", f"{Q}.lora_B.weight"
    return {
        "lora/only-a": tensors({a: ("F32", [8, 64])}),
        "lora/only-b": tensors({b: ("F32", [128, 8])}),
        "lora/rank-disagrees": tensors({a: ("F32", [8, 64]), b: ("F32", [128, 4])}),
        "lora/rank-not-the-config": tensors({a: ("F32", [4, 64]), b: ("F32", [128, 4])}),
        "lora/a-is-a-vector": tensors({a: ("F32", [64]), b: ("F32", [128, 8])}),
        "lora/b-is-3d": tensors({a: ("F32", [8, 64]), b: ("F32", [128, 8, 1])}),
        "lora/rank-zero": tensors({a: ("F32", [0, 64]), b: ("F32", [128, 0])}),
        "lora/another-width": tensors({a: ("F32", [8, 96]), b: ("F32", [128, 8])}),
        "lora/another-height": tensors({a: ("F32", [8, 64]), b: ("F32", [64, 8])}),
        "lora/int32": tensors({a: ("I32", [8, 64]), b: ("I32", [128, 8])}),
        "lora/layer-99": tensors(
            {
                a.replace("layers.0", "layers.99"): ("F32", [8, 64]),
                b.replace("layers.0", "layers.99"): ("F32", [128, 8]),
            }
        ),
        "lora/embedding": tensors({"base_model.model.model.embed_tokens.lora_embedding_A": ("F32", [8, 400])}),
        "lora/dora-magnitude": tensors({f"{Q}.lora_magnitude_vector": ("F32", [128])}),
        "lora/saved-module": tensors({"base_model.model.lm_head.weight": ("F32", [400, 64])}),
        "lora/no-prefix": tensors({"model.layers.0.self_attn.q_proj.lora_A.weight": ("F32", [8, 64])}),
        "lora/unknown-module": tensors(
            {
                "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight": ("F32", [8, 64]),
                "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight": ("F32", [192, 8]),
            }
        ),
        "lora/empty": safetensors_bytes({}),
        "lora/name-with-newline": tensors({f"{Q}\n.lora_A.weight": ("F32", [8, 64])}),
    }


def test_hostile_adapter_weights_are_refused(plain, tmp_path):
    files = {**_lora_safetensors(), **hostile_safetensors_files()}
    folders = {
        case_id: variant(plain, tmp_path, case_id, {"adapter_model.safetensors": data})
        for case_id, data in files.items()
    }
    refused_leaving_nothing(folders, tmp_path)


def test_mutated_adapters_convert_or_are_refused(plain, tmp_path):
    data = (plain / "adapter_model.safetensors").read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    folders = {
        f"mutant-safetensors/{i}": variant(plain, tmp_path, f"mutant-safetensors/{i}", {"adapter_model.safetensors": m})
        for i, m in enumerate(mutants(data, range(header_end), 30, seed=16))
    }
    config = (plain / "adapter_config.json").read_bytes()
    for i, m in enumerate(mutants(config, range(len(config)), 20, seed=17)):
        folders[f"mutant-config/{i}"] = variant(plain, tmp_path, f"mutant-config/{i}", {"adapter_config.json": m})
    results = refused_leaving_nothing(folders, tmp_path, codes=(0, 2))
    assert any(r["code"] == 2 for r in results.values())


def test_mutated_gguf_adapters_are_refused_by_chat(plain, tmp_path):
    """Header mutations of a converted adapter, applied to its real base: run, or exit 2; never a crash."""
    from llamadesk.convert import convert_checkpoint
    from llamadesk.convert.lora import plan_adapter, write_adapter

    base = convert_checkpoint(lora_adapters.base_folder("tiny_llama"), tmp_path / "base.gguf", "f16")
    adapter = write_adapter(plan_adapter(plain, None, "f16"), tmp_path / "adapter.gguf")
    data = adapter.read_bytes()
    header_end = data.index(b"blk.0.attn_q.weight.lora_a") + 400  # the metadata and the first tensor infos
    cases = []
    for i, mutant in enumerate(mutants(data, range(8, header_end), 30, seed=18)):
        path = tmp_path / "mutants" / f"{i}.gguf"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(mutant)
        cases.append(
            cli_case(
                f"mutant-gguf/{i}",
                "chat",
                "-m",
                base,
                "--lora",
                path,
                "--max-tokens",
                "2",
                "--threads",
                "1",
                "--temperature",
                "0",
                "hi",
                env=ENV,
            )
        )
    results = run_cases(
        cases,
        tmp_path,
        preload=("llamadesk.app.cli", "llamadesk.app.commands.chat", "llamadesk.app.engine.llama_engine"),
    )
    assert_all_refused(results, codes=(0, 2))
    report_outcomes(results)


def rewritten_adapter(source: Path, target: Path, keys=None, tensors=None, extra=()) -> Path:
    """A copy of the GGUF adapter `source` with some keys ((value, type) by name) and tensors (a
    function of the data by name) changed, and `extra` tensors added."""
    import gguf

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value, value_type = (keys or {}).get(key, (field.contents(), field.types[0]))
        writer.add_key_value(key, value, value_type)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, (tensors or {}).get(tensor.name, lambda d: d)(np.array(tensor.data)))
    for name, data in extra:
        writer.add_tensor(name, data)
    write_out(writer)
    return target


def test_adapters_that_crashed_llama_cpp_are_refused_by_chat_in_one_line(plain, tmp_path):
    """Each passed llamadesk's checks and then killed the process (a segfault on an integer or
    float64 tensor, GGML_ASSERT on an alpha that is not a float32 or a rank of 0), or was a
    traceback (a pair on a norm), or said "64x64 in the adapter but 64x64" (ranks that differ)."""
    import gguf

    from llamadesk.convert import convert_checkpoint
    from llamadesk.convert.lora import plan_adapter, write_adapter

    base = convert_checkpoint(lora_adapters.base_folder("tiny_llama"), tmp_path / "base.gguf", "f16")
    adapter = write_adapter(plan_adapter(plain, None, "f16"), tmp_path / "adapter.gguf")
    q, kinds = "blk.0.attn_q.weight", gguf.GGUFValueType
    crafted = {
        "i8-tensor": ({"tensors": {q + ".lora_b": lambda d: d.astype(np.int8)}}, "is I8, which is not a weight type"),
        "f64-tensor": (
            {"tensors": {q + ".lora_b": lambda d: d.astype(np.float64)}},
            "is F64, which is not a weight type",
        ),
        "alpha-uint32": ({"keys": {"adapter.lora.alpha": (16, kinds.UINT32)}}, "is a uint32, not a float32"),
        "alpha-float64": ({"keys": {"adapter.lora.alpha": (16.0, kinds.FLOAT64)}}, "is a float64, not a float32"),
        "rank-0": (
            {
                "tensors": {
                    q + ".lora_a": lambda d: np.zeros((0, d.shape[1]), d.dtype),
                    q + ".lora_b": lambda d: np.zeros((d.shape[0], 0), d.dtype),
                }
            },
            "has no rows or columns",
        ),
        "pair-on-a-norm": (
            {
                "extra": [
                    ("blk.0.attn_norm.weight.lora_a", np.zeros((8, 1), np.float16)),
                    ("blk.0.attn_norm.weight.lora_b", np.zeros((64, 8), np.float16)),
                ]
            },
            "adapts blk.0.attn_norm.weight, which is not a matrix",
        ),
        "ranks-differ": (
            {"tensors": {q + ".lora_b": lambda d: np.zeros((d.shape[0], d.shape[1] // 2), d.dtype)}},
            "lora_a has rank",
        ),
    }
    assert_chat_refuses_each(crafted, adapter, base, tmp_path)


def assert_chat_refuses_each(crafted: dict, adapter: Path, base: Path, tmp_path: Path) -> None:
    """`chat --lora` with each crafted copy of `adapter` (case -> (rewritten_adapter's changes, the
    words its one line must hold)), each in a child: exit 2 and that line."""
    cases = []
    for case_id, (change, _) in crafted.items():
        path = rewritten_adapter(adapter, tmp_path / f"{case_id}.gguf", **change)
        chat = ("chat", "-m", base, "--lora", path, "--max-tokens", "2", "--threads", "1", "--temperature", "0", "hi")
        cases.append(cli_case(case_id, *chat, env=ENV))
    results = run_cases(
        cases,
        tmp_path,
        preload=("llamadesk.app.cli", "llamadesk.app.commands.chat", "llamadesk.app.engine.llama_engine"),
    )
    assert_all_refused(results, codes=(2,))
    for case_id, (_, message) in crafted.items():
        assert message in results[case_id]["stderr"], (case_id, results[case_id]["stderr"])


def _with_value(value):
    def change(data):
        data = data.copy()
        data.flat[data.size // 2] = value
        return data

    return change


def test_adapters_whose_values_empty_every_reply_are_refused_by_chat_in_one_line(plain, tmp_path):
    """A NaN or an infinity in one lora tensor, or an alpha that overflows alpha / rank, passed every
    check, and llama.cpp applied them: each reply came out empty, exit 0."""
    import gguf

    from llamadesk.convert import convert_checkpoint
    from llamadesk.convert.lora import plan_adapter, write_adapter

    base = convert_checkpoint(lora_adapters.base_folder("tiny_llama"), tmp_path / "base.gguf", "f16")
    adapter = write_adapter(plan_adapter(plain, None, "f16"), tmp_path / "adapter.gguf")
    q, v = "blk.0.attn_q.weight", "blk.1.attn_v.weight"
    crafted = {
        "nan-in-lora-b": ({"tensors": {q + ".lora_b": _with_value(np.nan)}}, f"{q}.lora_b holds NaN or infinite"),
        "inf-in-lora-a": ({"tensors": {v + ".lora_a": _with_value(np.inf)}}, f"{v}.lora_a holds NaN or infinite"),
        "alpha-1e38": (
            {"keys": {"adapter.lora.alpha": (1e38, gguf.GGUFValueType.FLOAT32)}},
            "adapter.lora.alpha is 1e+38, far above",
        ),
    }
    assert_chat_refuses_each(crafted, adapter, base, tmp_path)


def test_a_q8_0_adapter_is_read_for_its_values_too(tmp_path):
    """The values check reads quantized adapters through gguf's dequantizer: a clean Q8_0 pair passes,
    one whose block scale is NaN is named."""
    import gguf

    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.core.gguf_adapter import check_adapter_values
    from llamadesk.app.core.gguf_file import open_header

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((64, 64)).astype(np.float32)
    packed = gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0)
    for damaged in (False, True):
        data = packed.copy()
        if damaged:
            data[3, 34:36] = np.frombuffer(np.float16(np.nan).tobytes(), np.uint8)  # block scale of row 3
        writer = gguf.GGUFWriter(tmp_path / f"{damaged}.gguf", "llama")
        writer.add_tensor("blk.0.attn_q.weight.lora_a", data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor("blk.0.attn_q.weight.lora_b", data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        write_out(writer)
        path = tmp_path / f"{damaged}.gguf"
        if damaged:
            with pytest.raises(BadInputError, match="attn_q.weight.lora_a holds NaN"):
                check_adapter_values(path, open_header(path))
        else:
            check_adapter_values(path, open_header(path))
