"""Hostile checkpoints fed to `llamadesk convert`: each refused with exit 2 and one line, nothing left.

Every crafted folder runs twice, as `convert DIR --dry-run` and `convert DIR -o out.gguf`, each in a
forked child under an address-space limit and a timeout (tests/fuzz/fork_driver.py): no traceback,
no signal, no hang, and no file in the output folder afterwards. The classes, one test each:
crafted pickles and zips, safetensors headers, configs (config.json, params.json, shard indexes,
mismatched Meta shards), tokenizers, source names; then seeded byte mutations of small valid
checkpoints, which must convert (exit 0) or be refused (exit 2) and nothing else; and one process
that reads a valid checkpoint after each malicious one and must get the same tensors every time.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.family_checkpoints import family_checkpoint
from tests.fixtures.random_checkpoints import build
from tests.fuzz.checkpoint_files import (
    EMBEDDING,
    ENV,
    PROTO2,
    Member,
    Storage,
    Tensor,
    after_proto,
    build_on_global,
    cyclic_dict,
    deep_tuple,
    deep_tuple_key,
    deflated,
    dict_state,
    hostile_safetensors_files,
    mutants,
    nested_dicts,
    op_global,
    op_int,
    op_text,
    pb_field,
    pickled,
    raw_tensor_dict,
    report_outcomes,
    shared_dicts,
    shared_tuple_key,
    torch_zip,
    zeros_bomb,
    zip_bytes,
    zip_members,
)
from tests.fuzz.harness import assert_all_refused, call_case, cli_case, problems, run_cases

pytestmark = pytest.mark.slow

# The driver imports these once; each forked child then starts converting at once.
PRELOAD = (
    "llamadesk.app.cli",
    "llamadesk.app.commands.convert",
    "llamadesk.convert.converter",
    "llamadesk.app.library.registry",
    "rich.progress",
)
MiB = 1024**2


def variant(base: Path, root: Path, case_id: str, files: dict[str, bytes | str | dict | None]) -> Path:
    """A copy of checkpoint folder `base` with `files` replaced (bytes, text, JSON, or None to delete)."""
    folder = root / "cases" / case_id.replace("/", "--")
    # Hard links: hundreds of copies cost no disk, and nothing writes into a checkpoint folder.
    shutil.copytree(base, folder, copy_function=os.link)
    for name, content in files.items():
        target = folder / name
        target.unlink(missing_ok=True)  # a new file, never a write through the link
        if content is None:
            continue
        elif isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content, encoding="utf-8", errors="surrogatepass")
        else:
            target.write_text(json.dumps(content))
    return folder


def sparse(size: int) -> Callable[[Path], None]:
    """Makes a file of `size` zero bytes that takes no disk space (the size check must come first)."""

    def make(path: Path) -> None:
        path.unlink(missing_ok=True)  # it may be a hard link to the base checkpoint's file
        with open(path, "wb") as f:
            f.truncate(size)

    return make


def convert_both_ways(folders: dict[str, Path], tmp_path: Path) -> list[dict]:
    cases = []
    for case_id, folder in folders.items():
        out = tmp_path / "out" / case_id.replace("/", "--")
        out.mkdir(parents=True)
        cases.append(cli_case(f"{case_id} dry-run", "convert", folder, "--dry-run", env=ENV))
        cases.append(cli_case(f"{case_id} -o", "convert", folder, "-o", out / "model.gguf", env=ENV))
    return cases


def assert_refused_leaving_nothing(folders: dict[str, Path], tmp_path: Path) -> None:
    results = run_cases(convert_both_ways(folders, tmp_path), tmp_path, preload=PRELOAD)
    assert_all_refused(results)
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert not left, f"refused conversions left files behind: {left[:5]}"
    report_outcomes(results)


# -- pickles and their zips ---------------------------------------------------------------------


def _f32(n: int) -> bytes:
    return np.arange(n, dtype=np.float32).tobytes()


def _one(tensor, storages: dict[str, bytes] | None = None) -> bytes:
    return torch_zip(pickled({EMBEDDING: tensor}), {"0": _f32(16)} if storages is None else storages)


def _raw(
    offset: bytes = op_int(0),
    size: bytes = op_int(4) + op_int(4) + pickle.TUPLE2,
    stride: bytes = op_int(4) + op_int(1) + pickle.TUPLE2,
    pid: bytes | None = None,
) -> bytes:
    return torch_zip(raw_tensor_dict(EMBEDDING, offset, size, stride, pid), {"0": _f32(16)})


def hostile_pickle_files() -> dict[str, bytes]:
    """Every crafted pytorch_model.bin, by case id (class/what)."""
    import torch

    S = Storage
    half = {EMBEDDING: Tensor(S(kind=torch.HalfStorage), 0, (4, 4), (4, 1))}
    half_storage = {"0": np.arange(16, dtype=np.float16).tobytes()}
    files = {
        # A view reaching outside its storage: as_strided would read the process's own memory.
        "pickle-bounds/stride-past-storage": _one(Tensor(S(), 0, (4, 4), (100, 1))),
        "pickle-bounds/offset-past-storage": _one(Tensor(S(), 1_000_000, (4, 4), (4, 1))),
        "pickle-bounds/offset-near-int64-max": _one(Tensor(S(), 2**62, (2, 2), (2, 1))),
        "pickle-bounds/transposed-one-past-end": _one(Tensor(S(), 1, (4, 4), (1, 4))),
        "pickle-bounds/size-overflowing-int64": _one(Tensor(S(), 0, (2**40, 2**40), (1, 1))),
        "pickle-bounds/more-elements-than-storage": _one(Tensor(S(), 0, (8, 4), (4, 1))),
        "pickle-bounds/broadcast-of-one-value": _one(Tensor(S(numel=1), 0, (10**5, 10**5), (0, 0)), {"0": _f32(1)}),
        "pickle-bounds/storage-larger-than-member": _one(Tensor(S(numel=1 << 40), 0, (4, 4), (4, 1))),
        # Numbers that are negative or not integers.
        "pickle-numbers/negative-numel": _one(Tensor(S(numel=-1))),
        "pickle-numbers/numel-text": _one(Tensor(S(numel="16"))),
        "pickle-numbers/numel-float": _one(Tensor(S(numel=16.0))),
        "pickle-numbers/numel-bool": _one(Tensor(S(numel=True), 0, (1,), (1,))),
        "pickle-numbers/negative-offset": _one(Tensor(S(), -4)),
        "pickle-numbers/offset-float": _one(Tensor(S(), 1.5)),
        "pickle-numbers/offset-text": _one(Tensor(S(), "0")),
        "pickle-numbers/negative-size": _one(Tensor(S(), 0, (-4, 4))),
        "pickle-numbers/size-text": _one(Tensor(S(), 0, ("4", 4))),
        "pickle-numbers/size-float": _one(Tensor(S(), 0, (4.0, 4))),
        "pickle-numbers/size-an-int": _one(Tensor(S(), 0, 16, (1,))),
        "pickle-numbers/negative-stride": _one(Tensor(S(), 12, (4, 4), (-4, 1))),
        "pickle-numbers/stride-float": _one(Tensor(S(), 0, (4, 4), (4.0, 1))),
        "pickle-numbers/fewer-strides-than-dims": _one(Tensor(S(), 0, (4, 4), (4,))),
        "pickle-numbers/nine-dims": _one(Tensor(S(), 0, (1,) * 9, (1,) * 9)),
        # Values nested too deep to print: a message must not repr() them.
        "pickle-numbers/offset-100000-deep-tuple": _raw(offset=deep_tuple(100_000)),
        "pickle-numbers/size-holding-a-deep-tuple": _raw(size=deep_tuple(100_000) + pickle.TUPLE1),
        "pickle-storage/persistent-id-100000-deep-tuple": _raw(pid=deep_tuple(100_000)),
        # Something else where a storage belongs.
        "pickle-storage/int": _one(Tensor(5)),
        "pickle-storage/text": _one(Tensor("0")),
        "pickle-storage/none": _one(Tensor(None)),
        "pickle-storage/dict": _one(Tensor({})),
        "pickle-storage/storage-class": _one(Tensor(torch.FloatStorage)),
        "pickle-storage/short-persistent-id": _one(Tensor(S(pid=("storage", torch.FloatStorage, "0")))),
        "pickle-storage/persistent-id-text": _one(Tensor(S(pid="storage"))),
        "pickle-storage/kind-int": _one(Tensor(S(kind=5))),
        "pickle-storage/kind-tensor-class": _one(Tensor(S(kind=torch.Tensor))),
        "pickle-storage/key-int": _one(Tensor(S(key=0))),
        "pickle-storage/member-missing": _one(Tensor(S()), {}),
        "pickle-storage/member-compressed": torch_zip(
            pickled({EMBEDDING: Tensor(S())}), {}, extra=[Member("archive/data/0", deflated(_f32(16)), method=8)]
        ),
        # Shapes of the pickled object graph.
        "pickle-structure/cyclic-dict": torch_zip(cyclic_dict(), {}),
        "pickle-structure/10000-deep-dicts": torch_zip(nested_dicts(10_000), {}),
        "pickle-structure/billion-laughs-2x40": torch_zip(shared_dicts(40, 2, pickle.EMPTY_DICT), {}),
        "pickle-structure/billion-laughs-1000x3": torch_zip(shared_dicts(3, 1000, pickle.EMPTY_DICT), {}),
        "pickle-structure/100000-deep-tuple-key": torch_zip(deep_tuple_key(100_000), {}),
        "pickle-structure/shared-tuple-key-2^64": torch_zip(shared_tuple_key(64), {}),
        "pickle-structure/2M-objects": torch_zip(
            PROTO2 + (pickle.EMPTY_LIST + pickle.POP) * 1_100_000 + pickle.STOP, {}
        ),
        "pickle-structure/tensor-under-float-key": _one({1.5: Tensor(S())}),
        "pickle-structure/newline-in-name": torch_zip(
            pickled({"model.embed\ntokens.weight": Tensor(S())}), {"0": _f32(16)}
        ),
        "pickle-structure/duplicate-names": torch_zip(
            pickled({"a": {"b": Tensor(S())}, "a.b": Tensor(S())}), {"0": _f32(16)}
        ),
        # Lengths that claim more than the file has.
        "pickle-lengths/binbytes8-terabyte": torch_zip(
            PROTO2 + pickle.BINBYTES8 + struct.pack("<Q", 1 << 40) + b"x", {}
        ),
        "pickle-lengths/binunicode8-terabyte": torch_zip(PROTO2 + pickle.BINUNICODE8 + struct.pack("<Q", 1 << 40), {}),
        "pickle-lengths/binunicode-4GB": torch_zip(PROTO2 + pickle.BINUNICODE + struct.pack("<I", 2**32 - 1), {}),
        "pickle-lengths/long4-2GB": torch_zip(PROTO2 + pickle.LONG4 + struct.pack("<i", 2**31 - 1), {}),
        "pickle-lengths/no-stop": torch_zip(pickled({EMBEDDING: Tensor(S())})[:-1], {"0": _f32(16)}),
        "pickle-lengths/empty": torch_zip(b"", {}),
        # BUILD sets attributes: on an allow-listed stand-in it would change every later load.
        "pickle-build/halfstorage-dtype": torch_zip(
            after_proto(build_on_global("torch", "HalfStorage", dict_state(dtype="F32")), pickled(half)), half_storage
        ),
        "pickle-build/floatstorage-dtype": torch_zip(
            after_proto(build_on_global("torch", "FloatStorage", dict_state(dtype="F16")), pickled(half)), half_storage
        ),
        "pickle-build/storage-slot-state": torch_zip(
            after_proto(
                build_on_global("torch", "HalfStorage", pickle.NONE + dict_state(dtype="F32") + pickle.TUPLE2),
                pickled(half),
            ),
            half_storage,
        ),
        "pickle-build/rebuild-function": torch_zip(
            after_proto(build_on_global("torch._utils", "_rebuild_tensor_v2", dict_state(x="y")), pickled(half)),
            half_storage,
        ),
        "pickle-build/tensor-class": torch_zip(
            after_proto(build_on_global("torch", "Tensor", dict_state(x="y")), pickled(half)), half_storage
        ),
        "pickle-build/ordereddict-class": torch_zip(
            after_proto(build_on_global("collections", "OrderedDict", dict_state(x="y")), pickled(half)), half_storage
        ),
        "pickle-build/tensor-offset": _one(Tensor(S(), state={"offset": 10**6})),
        # Opcodes and globals a state dict never has.
        "pickle-opcodes/protocol-0": torch_zip(pickle.dumps({"a": 1}, protocol=0), {}),
        "pickle-opcodes/inst": torch_zip(b"(i" + b"collections\nOrderedDict\n" + pickle.STOP, {}),
        "pickle-opcodes/newobj": torch_zip(
            PROTO2 + op_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.STOP, {}
        ),
        "pickle-opcodes/ext1": torch_zip(PROTO2 + pickle.EXT1 + b"\x01" + pickle.STOP, {}),
        "pickle-opcodes/stack-global-not-text": torch_zip(
            b"\x80\x04" + pickle.NONE + pickle.NONE + pickle.STACK_GLOBAL + pickle.STOP, {}
        ),
        "pickle-globals/os-system": torch_zip(
            PROTO2
            + op_global("os", "system")
            + op_text("touch /tmp/llamadesk-pwned")
            + pickle.TUPLE1
            + pickle.REDUCE
            + pickle.STOP,
            {},
        ),
        "pickle-globals/builtins-getattr": torch_zip(PROTO2 + op_global("builtins", "getattr") + pickle.STOP, {}),
        "pickle-globals/storage-called": torch_zip(
            PROTO2 + op_global("torch", "FloatStorage") + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.STOP, {}
        ),
    }
    files.update(hostile_zips())
    return files


def hostile_zips() -> dict[str, bytes]:
    """Zip structures around an otherwise valid pickle."""
    state = pickled({EMBEDDING: Tensor(Storage())})
    storage = Member("archive/data/0", _f32(16))
    # A pickle that starts a 1.2 GB bytes value: an unpickler streaming from the member inflates it all.
    start = PROTO2 + pickle.BINBYTES8 + struct.pack("<Q", 1200 * MiB)
    bomb, bomb_crc = zeros_bomb(1200 * MiB, start)
    small_bomb, small_crc = zeros_bomb(50 * MiB, start)
    valid = zip_bytes([Member("archive/data.pkl", state), storage])
    return {
        "zip/bomb-inflating-to-1.2GB": zip_bytes(
            [Member("archive/data.pkl", bomb, 8, len(start) + 1200 * MiB, bomb_crc), storage]
        ),
        "zip/bomb-50MB-at-1000x": zip_bytes(
            [Member("archive/data.pkl", small_bomb, 8, len(start) + 50 * MiB, small_crc), storage]
        ),
        "zip/bomb-declaring-1KB": zip_bytes([Member("archive/data.pkl", small_bomb, 8, 1000, small_crc), storage]),
        "zip/byteorder-bomb": zip_bytes(
            [
                Member("archive/data.pkl", state),
                Member("archive/byteorder", small_bomb, 8, len(start) + 50 * MiB, small_crc),
            ]
        ),
        "zip/directory-claims-2GB": zip_bytes([Member("archive/data.pkl", state), storage], directory_size=2**31),
        "zip/member-twice": zip_bytes([Member("archive/data.pkl", state), storage, storage]),
        "zip/no-data-pkl": zip_bytes([storage]),
        "zip/two-data-pkl": zip_bytes([Member("a/data.pkl", state), Member("b/data.pkl", state), storage]),
        "zip/header-offset-past-end": zip_bytes(
            [Member("archive/data.pkl", state), Member(storage.name, storage.data, header_offset=10**9)]
        ),
        "zip/truncated": valid[: len(valid) // 2],
        "zip/empty-file": b"",
        "zip/random-bytes": bytes(range(256)) * 4,
        "zip/legacy-pickle": pickle.dumps({"a": 1}, protocol=2),
        "zip/big-endian": zip_bytes([Member("archive/data.pkl", state), Member("archive/byteorder", b"big"), storage]),
        "zip/encrypted": zip_bytes([Member("archive/data.pkl", state, flags=1), storage]),
        "zip/unknown-compression": zip_bytes([Member("archive/data.pkl", state, method=99), storage]),
        "zip/name-not-utf8": zip_bytes(
            [Member("archive/data.pkl", state), Member("x", b"", flags=0x800, name_bytes=b"archive/\xff\xfe"), storage]
        ),
        "zip/pickle-crc-wrong": zip_bytes([Member("archive/data.pkl", state, crc=1), storage]),
    }


@pytest.fixture(scope="module")
def pickle_folders(checkpoints_root, tmp_path_factory) -> dict[str, Path]:
    base = build("llama2_bin", checkpoints_root)
    root = tmp_path_factory.mktemp("hostile-pickles")
    return {
        case_id: variant(base, root, case_id, {"pytorch_model.bin": data})
        for case_id, data in hostile_pickle_files().items()
    }


def test_crafted_pickles_and_zips_are_refused(pickle_folders, tmp_path):
    marker = Path("/tmp/llamadesk-pwned")
    marker.unlink(missing_ok=True)
    assert_refused_leaving_nothing(pickle_folders, tmp_path)
    assert not marker.exists(), "a pickle ran code"


def read_valid_after_each_malicious(valid: str, malicious: str) -> None:
    """In one process: the valid checkpoint's tensors, then after each malicious folder again, unchanged.

    Called in a forked child by the test below (a process like the TUI's, which converts one
    checkpoint after another). Raises AssertionError on any difference.
    """
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.convert import plan_conversion
    from llamadesk.convert.gguf_streaming import blocks_of

    def all_values(tensor) -> np.ndarray:
        """All of a tensor's bytes, read to the end (a producer may give them in blocks)."""
        return np.concatenate([np.ravel(block) for block in blocks_of(tensor.produce())])

    def tensors() -> dict[str, np.ndarray]:
        return {t.name: all_values(t) for t in plan_conversion(Path(valid)).tensors}

    before = tensors()
    assert before, "the valid checkpoint has no tensors"
    for folder in json.loads(Path(malicious).read_text()):
        try:
            for tensor in plan_conversion(Path(folder)).tensors:
                all_values(tensor)
        except BadInputError:
            pass
        else:
            raise AssertionError(f"{folder} was converted")
        after = tensors()
        assert after.keys() == before.keys(), f"after {folder}: other tensor names"
        for name, values in before.items():
            assert after[name].dtype == values.dtype and np.array_equal(after[name], values), f"after {folder}: {name}"


def test_a_valid_checkpoint_reads_the_same_after_each_malicious_one(pickle_folders, checkpoints_root, tmp_path):
    listing = tmp_path / "malicious.json"
    listing.write_text(json.dumps([str(f) for f in pickle_folders.values()]))
    for valid in ("llama2_bin", "meta_2shards"):  # half- and single-precision storages
        folder = build(valid, checkpoints_root)
        results = run_cases(
            [
                call_case(
                    valid,
                    "tests.fuzz.test_checkpoints:read_valid_after_each_malicious",
                    str(folder),
                    str(listing),
                    env=ENV,
                    timeout=120,
                )
            ],
            tmp_path,
            preload=PRELOAD,
        )
        assert not problems(results[valid], codes=(0,)), results[valid]


# -- safetensors --------------------------------------------------------------------------------


def test_crafted_safetensors_are_refused(checkpoints_root, tmp_path):
    base = build("llama2_spm", checkpoints_root)
    folders = {
        case_id: variant(base, tmp_path, case_id, {"model.safetensors": data})
        for case_id, data in hostile_safetensors_files().items()
    }
    assert_refused_leaving_nothing(folders, tmp_path)


# -- configs, shard indexes, Meta shards --------------------------------------------------------

DEEP_JSON = '{"a":' + "[" * 10_000 + "]" * 10_000 + "}"


def _config_changes() -> dict[str, dict]:
    return {
        "config/vocab-1e8-float": {"vocab_size": 1e8},
        "config/vocab-1e8": {"vocab_size": 100_000_000},
        "config/heads-zero": {"num_attention_heads": 0},
        "config/hidden-text": {"hidden_size": "64"},
        "config/hidden-float": {"hidden_size": 64.0},
        "config/layers-boolean": {"num_hidden_layers": True},
        "config/ffn-negative": {"intermediate_size": -96},
        "config/hidden-not-divisible-by-heads": {"num_attention_heads": 5, "num_key_value_heads": 5, "head_dim": None},
        "config/heads-not-multiple-of-kv": {"num_key_value_heads": 3},
        "config/layers-billion": {"num_hidden_layers": 10**9},
        "config/layers-513": {"num_hidden_layers": 513},
        "config/context-2^40": {"max_position_embeddings": 2**40},
        "config/eps-text": {"rms_norm_eps": "small"},
        "config/eps-infinite": {"rms_norm_eps": float("inf")},
        "config/eps-nan": {"rms_norm_eps": float("nan")},
        "config/theta-negative": {"rope_theta": -1},
        "config/theta-1e300": {"rope_theta": 1e300},
        "config/rope-scaling-text": {"rope_scaling": "linear"},
        "config/rope-scaling-list": {"rope_scaling": [["type", "linear"]]},
        "config/rope-type-list": {"rope_scaling": {"rope_type": ["linear"]}},
        "config/rope-linear-without-factor": {"rope_scaling": {"rope_type": "linear"}},
        "config/rope-llama3-factor-zero": {"rope_scaling": {"rope_type": "llama3", "factor": 0}},
        "config/rope-llama3-bands-inverted": {
            "rope_scaling": {"rope_type": "llama3", "low_freq_factor": 4.0, "high_freq_factor": 1.0}
        },
        "config/architectures-text": {"architectures": "LlamaForCausalLM"},
        "config/architectures-number": {"architectures": [5]},
        "config/architectures-object": {"architectures": {"LlamaForCausalLM": 1}},
        "config/tie-text": {"tie_word_embeddings": "yes"},
        "config/head-dim-odd": {"head_dim": 15},
    }


def _params_changes() -> dict[str, dict]:
    return {
        "params/dim-text": {"dim": "64"},
        "params/heads-zero": {"n_heads": 0},
        "params/layers-negative": {"n_layers": -1},
        "params/vocab-1e8-float": {"vocab_size": 1e8},
        "params/vocab-1e8": {"vocab_size": 100_000_000},
        "params/scaled-rope-text": {"use_scaled_rope": "yes"},
        "params/rope-factor-zero": {"use_scaled_rope": True, "rope_scaling_factor": 0},
        "params/eps-text": {"norm_eps": "small"},
        "params/dim-not-divisible": {"n_heads": 5, "n_kv_heads": 5},
    }


def _meta_shard_changes(folder: Path) -> dict[str, bytes]:
    """consolidated.01.pth variants that do not belong with consolidated.00.pth."""
    import io

    import torch

    shard = torch.load(folder / "consolidated.01.pth", weights_only=True)

    def saved(state: dict) -> bytes:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    wq = "layers.0.attention.wq.weight"
    return {
        "meta-shards/other-keys": saved({**shard, "extra.weight": torch.ones(2)}),
        "meta-shards/norm-shape-differs": saved({**shard, "norm.weight": torch.ones(3)}),
        "meta-shards/split-matrix-other-width": saved({**shard, wq: torch.ones(shard[wq].shape[0], 7)}),
        "meta-shards/dtype-differs": saved({**shard, wq: shard[wq].half()}),
        "meta-shards/dims-differ": saved({**shard, wq: torch.ones(shard[wq].shape[0])}),
    }


def test_hostile_configs_indexes_and_meta_shards_are_refused(checkpoints_root, tmp_path):
    spm, meta, sharded = (build(name, checkpoints_root) for name in ("llama2_spm", "meta_2shards", "llama2_sharded"))
    config = json.loads((spm / "config.json").read_text())
    params = json.loads((meta / "params.json").read_text())
    folders = {
        case_id: variant(spm, tmp_path, case_id, {"config.json": {**config, **changes}})
        for case_id, changes in _config_changes().items()
    }
    folders |= {
        case_id: variant(meta, tmp_path, case_id, {"params.json": {**params, **changes}})
        for case_id, changes in _params_changes().items()
    }
    folders |= {
        case_id: variant(meta, tmp_path, case_id, {"consolidated.01.pth": data})
        for case_id, data in _meta_shard_changes(meta).items()
    }
    raw = {
        "config/10000-deep": DEEP_JSON,
        "config/an-array": "[]",
        "config/not-utf8": b'{"a": "\xff"}',
        "config/syntax-error": '{"vocab_size": }',
    }
    folders |= {case_id: variant(spm, tmp_path, case_id, {"config.json": text}) for case_id, text in raw.items()}
    folders["config/20MB"] = variant(spm, tmp_path, "config/20MB", {})
    sparse(20 * MiB)(folders["config/20MB"] / "config.json")
    folders["config/a-folder"] = variant(spm, tmp_path, "config/a-folder", {"config.json": None})
    (folders["config/a-folder"] / "config.json").mkdir()
    folders["params/10000-deep"] = variant(meta, tmp_path, "params/10000-deep", {"params.json": DEEP_JSON})
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    one_shard = next(iter(index["weight_map"].values()))
    index_changes = {
        "index/weight-map-list": {**index, "weight_map": list(index["weight_map"])},
        "index/file-names-numbers": {**index, "weight_map": {k: 1 for k in index["weight_map"]}},
        "index/parent-path": {
            **index,
            "weight_map": {**index["weight_map"], EMBEDDING: f"../{sharded.name}/{one_shard}"},
        },
        "index/absolute-path": {**index, "weight_map": {**index["weight_map"], EMBEDDING: "/etc/passwd"}},
        "index/missing-shard": {**index, "weight_map": {**index["weight_map"], EMBEDDING: "model-9-of-9.safetensors"}},
        "index/not-an-object": [],
    }
    folders |= {
        case_id: variant(sharded, tmp_path, case_id, {"model.safetensors.index.json": content})
        for case_id, content in index_changes.items()
    }
    folders["index/10000-deep"] = variant(
        sharded, tmp_path, "index/10000-deep", {"model.safetensors.index.json": DEEP_JSON}
    )
    assert_refused_leaving_nothing(folders, tmp_path)


def test_a_model_name_from_the_config_cannot_escape_the_output_folder(checkpoints_root, tmp_path):
    spm = build("llama2_spm", checkpoints_root)
    config = json.loads((spm / "config.json").read_text())
    names = {"name/newline": "evil\nname", "name/parent": "..", "name/nul": "a\x00b", "name/long": "x" * 5000}
    cases = [
        cli_case(
            case_id,
            "convert",
            variant(spm, tmp_path, case_id, {"config.json": {**config, "_name_or_path": name}}),
            "--dry-run",
            "--json",
            env=ENV,
        )
        for case_id, name in names.items()
    ]
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused(results, codes=(0,))
    for case_id, result in results.items():
        output = Path(json.loads(result["stdout"])["output"])
        assert output.name == f"{case_id.replace('/', '--')}-F16.gguf", (case_id, output)


# -- tokenizers ---------------------------------------------------------------------------------


def _tokenizer_json_changes(tokenizer: dict) -> dict[str, dict | str]:
    model, vocab = tokenizer["model"], tokenizer["model"]["vocab"]
    first = next(iter(vocab))

    def with_model(**changes) -> dict:
        return {**tokenizer, "model": {**model, **changes}}

    def with_vocab(value) -> dict:
        return with_model(vocab={**vocab, first: value})

    added = tokenizer["added_tokens"][0]
    return {
        "tokenizer-json/model-a-list": {**tokenizer, "model": [model]},
        "tokenizer-json/vocab-a-list": with_model(vocab=list(vocab)),
        "tokenizer-json/vocab-empty": with_model(vocab={}),
        "tokenizer-json/id-text": with_vocab("5"),
        "tokenizer-json/id-negative": with_vocab(-5),
        "tokenizer-json/id-10^12": with_vocab(10**12),
        "tokenizer-json/id-float": with_vocab(5.0),
        "tokenizer-json/token-surrogate": with_model(vocab={**vocab, "\ud800": len(vocab) - 1}),
        "tokenizer-json/added-not-a-list": {**tokenizer, "added_tokens": {"a": 1}},
        "tokenizer-json/added-id-text": {**tokenizer, "added_tokens": [{**added, "id": "1"}]},
        "tokenizer-json/added-id-10^12": {**tokenizer, "added_tokens": [{**added, "id": 10**12}]},
        "tokenizer-json/added-content-number": {**tokenizer, "added_tokens": [{**added, "content": 5}]},
        "tokenizer-json/added-special-text": {**tokenizer, "added_tokens": [{**added, "special": "yes"}]},
        "tokenizer-json/added-not-objects": {**tokenizer, "added_tokens": [5]},
        # a token twice: convert wrote it (exit 0), then info refused it and llama.cpp's quantizer aborted
        "tokenizer-json/added-repeats-a-vocab-token": {  # the vocabulary's last id, now an added token
            **with_model(vocab={text: i for text, i in vocab.items() if i != max(vocab.values())}),
            "added_tokens": [{**added, "id": max(vocab.values()), "content": first}],
        },
        "tokenizer-json/vocab-token-equal-up-to-a-zero-byte": with_model(  # llama.cpp reads "a\0x" as "a"
            vocab={
                (first + "\0x" if token_id == max(vocab.values()) else text): token_id
                for text, token_id in vocab.items()
            }
        ),
        "tokenizer-json/merges-numbers": with_model(merges=[1, 2, 3]),
        "tokenizer-json/merges-mixed": with_model(merges=["a b", 5]),
        "tokenizer-json/merges-nested": with_model(merges=[[["a"]]]),
        "tokenizer-json/pre-tokenizer-a-list": {**tokenizer, "pre_tokenizer": [1]},
        "tokenizer-json/pre-tokenizer-split-pattern-list": {
            **tokenizer,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": ["x"]}, "behavior": "Isolated"},
        },
        "tokenizer-json/decoder-a-list": {**tokenizer, "decoder": ["ByteLevel"]},
        "tokenizer-json/normalizer": {**tokenizer, "normalizer": {"type": "NFKC"}},
        "tokenizer-json/post-processor-garbage": {
            **tokenizer,
            "post_processor": {"type": "TemplateProcessing", "single": [5, 6], "pair": []},
        },
        "tokenizer-json/10000-deep": DEEP_JSON,
        "tokenizer-json/an-array": "[]",
    }


def _sentencepiece_changes(model: bytes) -> dict[str, bytes]:
    piece = pb_field(1, pb_field(1, b"x") + pb_field(2, 0, wire=5) + pb_field(3, 1))
    return {
        "tokenizer-model/truncated": model[: len(model) // 2 + 3],
        "tokenizer-model/random-bytes": bytes(range(7, 256)) * 8,
        "tokenizer-model/piece-text-a-terabyte-varint": model + pb_field(1, pb_field(1, 10**12)),
        "tokenizer-model/piece-type-99": model + pb_field(1, pb_field(1, b"x") + pb_field(3, 99)),
        "tokenizer-model/piece-score-bytes": model + pb_field(1, pb_field(1, b"x") + pb_field(2, b"abcd")),
        "tokenizer-model/piece-not-a-message": model + pb_field(1, 5),
        "tokenizer-model/bos-id-beyond-pieces": model + pb_field(2, pb_field(3, 2) + pb_field(41, 10**6)),
        "tokenizer-model/more-pieces-than-vocab": model + piece * 500,
        "tokenizer-model/model-type-bytes": model + pb_field(2, pb_field(3, b"bpe")),
        "tokenizer-model/empty": b"",
        "tokenizer-model/tiktoken-text": b"IQ== 0\nIg== 1\n" * 50,
    }


def test_hostile_tokenizers_are_refused(checkpoints_root, tmp_path):
    llama3, spm = build("llama3", checkpoints_root), build("llama2_spm", checkpoints_root)
    tokenizer = json.loads((llama3 / "tokenizer.json").read_text())
    folders = {
        case_id: variant(llama3, tmp_path, case_id, {"tokenizer.json": content})
        for case_id, content in _tokenizer_json_changes(tokenizer).items()
    }
    model = (spm / "tokenizer.model").read_bytes()
    folders |= {
        case_id: variant(spm, tmp_path, case_id, {"tokenizer.model": data})
        for case_id, data in _sentencepiece_changes(model).items()
    }
    spm_config = json.loads((spm / "tokenizer_config.json").read_text())
    folders["tokenizer-config/added-repeats-bos"] = variant(
        spm,
        tmp_path,
        "tokenizer-config/added-repeats-bos",
        {"tokenizer_config.json": {**spm_config, "added_tokens_decoder": {"5": {"content": "<s>", "special": True}}}},
    )
    tokenizer_config = json.loads((llama3 / "tokenizer_config.json").read_text())
    folders |= {
        case_id: variant(llama3, tmp_path, case_id, {"tokenizer_config.json": content})
        for case_id, content in {
            "tokenizer-config/10000-deep": DEEP_JSON,
            "tokenizer-config/template-list-of-numbers": {**tokenizer_config, "chat_template": [1, 2]},
            "tokenizer-config/template-surrogate": {**tokenizer_config, "chat_template": "\ud800"},
            "tokenizer-config/not-utf8": b'{"chat_template": "\xff"}',
        }.items()
    }
    for case_id, base, name, size in (
        ("tokenizer-json/70MB", llama3, "tokenizer.json", 70 * MiB),
        ("tokenizer-model/70MB", spm, "tokenizer.model", 70 * MiB),
        ("tokenizer-config/70MB", llama3, "tokenizer_config.json", 70 * MiB),
        ("tokenizer-config/chat-template-jinja-70MB", llama3, "chat_template.jinja", 70 * MiB),
    ):
        folders[case_id] = variant(base, tmp_path, case_id, {})
        sparse(size)(folders[case_id] / name)
    assert_refused_leaving_nothing(folders, tmp_path)


def test_hostile_source_names_are_refused(checkpoints_root, tmp_path):
    spm = build("llama2_spm", checkpoints_root)
    sources = {
        "source/no-such-user": "~no-such-user-llamadesk/model",
        "source/nul-byte": "model\x00dir",
        "source/5000-chars": "m" * 5000,
        "source/dot-dot-repo-id": "owner/..",
        "source/double-dash-repo-id": "owner/a--b",
        "source/a-file": str(spm / "config.json"),
    }
    results = run_cases(
        [cli_case(case_id, "convert", source, "--dry-run", env=ENV) for case_id, source in sources.items()],
        tmp_path,
        preload=PRELOAD,
    )
    assert_all_refused(results)


# -- mutations of valid checkpoints -------------------------------------------------------------


def _mutated_folders(checkpoints_root: Path, root: Path) -> dict[str, Path]:
    """Seeded byte mutations of the parts of small valid checkpoints that readers parse."""
    folders: dict[str, Path] = {}
    st_base = build("llama2_spm", checkpoints_root)
    weights = (st_base / "model.safetensors").read_bytes()
    (header_len,) = struct.unpack("<Q", weights[:8])
    for i, data in enumerate(mutants(weights, range(0, 8 + header_len), 120, seed=1)):
        folders[f"mutant-safetensors/{i}"] = variant(
            st_base, root, f"mutant-safetensors/{i}", {"model.safetensors": data}
        )
    bin_base = build("llama2_bin", checkpoints_root)
    zipped = (bin_base / "pytorch_model.bin").read_bytes()
    members = zip_members(zipped)
    at = next(i for i, m in enumerate(members) if m.name.endswith("data.pkl"))
    for i, data in enumerate(mutants(members[at].data, range(len(members[at].data)), 120, seed=2)):
        rebuilt = zip_bytes([*members[:at], Member(members[at].name, data), *members[at + 1 :]])
        folders[f"mutant-pickle/{i}"] = variant(bin_base, root, f"mutant-pickle/{i}", {"pytorch_model.bin": rebuilt})
    directory = zipped.find(b"PK\x01\x02")  # the central directory and the end record
    for i, data in enumerate(mutants(zipped, range(directory, len(zipped)), 30, seed=3)):
        folders[f"mutant-zip/{i}"] = variant(bin_base, root, f"mutant-zip/{i}", {"pytorch_model.bin": data})
    model = (st_base / "tokenizer.model").read_bytes()
    for i, data in enumerate(mutants(model, range(len(model)), 40, seed=4)):
        folders[f"mutant-tokenizer-model/{i}"] = variant(
            st_base, root, f"mutant-tokenizer-model/{i}", {"tokenizer.model": data}
        )
    config = (st_base / "config.json").read_bytes()
    for i, data in enumerate(mutants(config, range(len(config)), 40, seed=5)):
        folders[f"mutant-config/{i}"] = variant(st_base, root, f"mutant-config/{i}", {"config.json": data})
    # The other families' paths: Qwen2's biases and tokenizer (NFC, qwen2 split), Qwen3's Q/K norms.
    qwen2, qwen3 = family_checkpoint("qwen2"), family_checkpoint("qwen3")
    config = (qwen2 / "config.json").read_bytes()
    for i, data in enumerate(mutants(config, range(len(config)), 30, seed=6)):
        folders[f"mutant-qwen2-config/{i}"] = variant(qwen2, root, f"mutant-qwen2-config/{i}", {"config.json": data})
    weights = (qwen3 / "model.safetensors").read_bytes()
    (header_len,) = struct.unpack("<Q", weights[:8])
    for i, data in enumerate(mutants(weights, range(0, 8 + header_len), 30, seed=7)):
        folders[f"mutant-qwen3-safetensors/{i}"] = variant(
            qwen3, root, f"mutant-qwen3-safetensors/{i}", {"model.safetensors": data}
        )
    # Gemma 3: (w - 1) norms, layer_types, added_tokens_decoder, generation_config's stop tokens; the
    # multimodal checkpoint's config with its text_config; Gemma 2's soft-caps; Phi-3's LongRoPE lists;
    # Phi-4-mini's partial rotary and its GPT-4o split.
    parts = [("gemma3", "config.json", 9), ("gemma3", "tokenizer_config.json", 10)]
    parts += [("gemma3", "generation_config.json", 11), ("gemma3-multimodal", "config.json", 12)]
    parts += [("gemma2", "config.json", 13), ("phi3", "config.json", 14)]
    parts += [("phi4-mini", "config.json", 15)]  # partial_rotary_factor, tied, 12 LongRoPE factors
    for family, name, seed in parts:
        base = family_checkpoint(family)
        data = (base / name).read_bytes()
        for i, mutant in enumerate(mutants(data, range(len(data)), 20, seed=seed)):
            case_id = f"mutant-{family}-{name.split('.')[0].replace('_', '-')}/{i}"
            folders[case_id] = variant(base, root, case_id, {name: mutant})
    tokenizer = (qwen2 / "tokenizer.json").read_bytes()
    head = tokenizer.find(b'"model"')  # the normalizer, pre-tokenizer and decoder come before the vocabulary
    for i, data in enumerate(mutants(tokenizer, range(head), 30, seed=8)):
        folders[f"mutant-qwen2-tokenizer/{i}"] = variant(
            qwen2, root, f"mutant-qwen2-tokenizer/{i}", {"tokenizer.json": data}
        )
    phi4 = family_checkpoint("phi4-mini")
    tokenizer = (phi4 / "tokenizer.json").read_bytes()
    head = tokenizer.find(b'"model"')
    for i, data in enumerate(mutants(tokenizer, range(head), 20, seed=16)):
        case_id = f"mutant-phi4-mini-tokenizer/{i}"
        folders[case_id] = variant(phi4, root, case_id, {"tokenizer.json": data})
    return folders


def test_mutated_checkpoints_convert_or_are_refused(checkpoints_root, tmp_path):
    folders = _mutated_folders(checkpoints_root, tmp_path)
    cases = []
    for case_id, folder in folders.items():
        out = tmp_path / "out" / case_id.replace("/", "--")
        out.mkdir(parents=True)
        cases.append(cli_case(case_id, "convert", folder, "-o", out / "model.gguf", env=ENV))
    results = run_cases(cases, tmp_path, preload=PRELOAD)
    assert_all_refused(results, codes=(0, 2))
    for case_id, result in results.items():
        written = list((tmp_path / "out" / case_id.replace("/", "--")).iterdir())
        expected = ["model.gguf"] if result["code"] == 0 else []
        assert [p.name for p in written] == expected, (case_id, result["code"], written)
    report_outcomes(results)
    assert any(r["code"] == 0 for r in results.values()) and any(r["code"] == 2 for r in results.values())
