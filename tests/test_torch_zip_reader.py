"""The torch.save zip reader, in process: zip64 end records, lying zips, members and views it refuses.

Files are real torch.save output where torch can write them, and otherwise built byte by byte
with the fuzz builders (tests/fuzz/checkpoint_files.py), so each test names exactly what is wrong.
"""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest
import torch

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.torch_zip_reader import read_torch_zip
from tests.fuzz.checkpoint_files import Member, Storage, Tensor, deflated, pickled, torch_zip, zip_bytes

DAMAGED = "the file is damaged or incomplete (download it again)"


def f32(n: int) -> bytes:
    return np.arange(n, dtype=np.float32).tobytes()


def one_tensor(tensor: Tensor, storages: dict[str, bytes] | None = None, **zip_options) -> bytes:
    return torch_zip(pickled({"w": tensor}), {"0": f32(16)} if storages is None else storages, **zip_options)


def refusal(tmp_path, data: bytes) -> str:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(data)
    with pytest.raises(BadInputError) as err:
        read_torch_zip(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def read(tmp_path, data: bytes) -> dict[str, np.ndarray]:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(data)
    return {t.name: t.read() for t in read_torch_zip(path)}


# -- zip64 end records ------------------------------------------------------------------------


def with_zip64_end(data: bytes, directory_size: int | None = None, record_at: int | None = None) -> bytes:
    """`data` (a zip without a comment) ending as a zip64 writer ends it: a zip64 end record and
    its locator before an end record whose count and size fields say "see zip64"."""
    end = data[-22:]
    assert end[:4] == b"PK\x05\x06"
    entries, size, offset = struct.unpack_from("<HII", end, 10)
    record = struct.pack(
        "<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, directory_size or size, offset
    )
    at = len(data) - 22
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, at if record_at is None else record_at, 1)
    return (
        data[:-22]
        + record
        + locator
        + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 2**32 - 1, 2**32 - 1, 0)
    )


def test_a_zip64_checkpoint_reads_like_any_other(tmp_path):
    values = read(tmp_path, with_zip64_end(one_tensor(Tensor(Storage()))))
    assert list(values) == ["w"] and values["w"].tolist() == np.arange(16, dtype=np.float32).reshape(4, 4).tolist()


def test_a_zip64_directory_size_beyond_any_checkpoint_is_refused_before_zipfile_reads_it(tmp_path):
    data = with_zip64_end(one_tensor(Tensor(Storage())), directory_size=2**40)
    assert refusal(tmp_path, data) == (
        "its zip directory claims 1.0 TiB, more than any checkpoint has; the file is damaged or hostile"
    )


def test_a_zip64_locator_pointing_elsewhere_leaves_the_size_to_zipfile(tmp_path):
    # The locator names offset 0 (a local header, not a zip64 record): the size is unknown, not refused.
    values = read(tmp_path, with_zip64_end(one_tensor(Tensor(Storage())), record_at=0))
    assert values["w"].shape == (4, 4)


def test_an_end_record_saying_zip64_without_a_locator_is_taken_at_its_word(tmp_path):
    data = bytearray(one_tensor(Tensor(Storage())))
    struct.pack_into("<I", data, len(data) - 22 + 12, 2**32 - 1)  # the directory's size: "see zip64"
    assert refusal(tmp_path, bytes(data)) == (
        "its zip directory claims 4.0 GiB, more than any checkpoint has; the file is damaged or hostile"
    )


def test_a_file_cut_inside_its_end_record(tmp_path):
    data = one_tensor(Tensor(Storage()))[:-10]
    assert refusal(tmp_path, data) == f"not a complete PyTorch zip file; {DAMAGED}"


# -- the zip and its small members -------------------------------------------------------------


def test_a_member_listed_twice(tmp_path):
    pkl = pickled({"w": Tensor(Storage())})
    members = [Member("archive/data.pkl", pkl), Member("archive/data/0", f32(16)), Member("archive/data/0", f32(16))]
    assert refusal(tmp_path, zip_bytes(members)) == f"its zip lists the same member twice; {DAMAGED}"


def test_a_big_endian_checkpoint(tmp_path):
    members = [Member("archive/data.pkl", pickled({})), Member("archive/byteorder", b"big")]
    assert refusal(tmp_path, zip_bytes(members)) == "a big-endian checkpoint; llamadesk reads little-endian ones"


def test_a_byteorder_member_that_claims_more_than_a_word(tmp_path):
    members = [Member("archive/data.pkl", pickled({})), Member("archive/byteorder", b"little" + b" " * 11)]
    assert refusal(tmp_path, zip_bytes(members)) == (
        "archive/byteorder claims 17 B, more than a checkpoint's 16 B; the file is damaged or hostile"
    )


def test_a_pickle_that_inflates_like_a_zip_bomb_is_not_inflated(tmp_path):
    data = torch_zip(bytes(200_000), {}, pickle_method=8)
    assert refusal(tmp_path, data) == "archive/data.pkl inflates more than 100 times (a zip bomb); refused"


@pytest.mark.parametrize(
    "member, why",
    [
        (Member("archive/data.pkl", pickled({}), crc=0), "Bad CRC-32 for file 'archive/data.pkl'"),
        (Member("archive/data.pkl", b"\xff" * 8, method=8, size=16), "Error -3 while decompressing data"),
    ],
    ids=["bad-crc", "not-deflate"],
)
def test_a_pickle_member_that_cannot_be_read(tmp_path, member, why):
    message = refusal(tmp_path, zip_bytes([member]))
    assert message.startswith(f"archive/data.pkl cannot be read ({why}")
    assert message.endswith(f"); {DAMAGED}")


# -- storages ----------------------------------------------------------------------------------


def test_a_storage_whose_local_header_is_not_where_the_directory_says(tmp_path):
    pkl = pickled({"w": Tensor(Storage())})
    members = [Member("archive/data.pkl", pkl), Member("archive/data/0", f32(16), header_offset=1)]
    assert refusal(tmp_path, zip_bytes(members)) == f"archive/data/0 has no local header; {DAMAGED}"


def test_a_storage_member_that_is_missing(tmp_path):
    assert refusal(tmp_path, one_tensor(Tensor(Storage()), {})) == f"storage 0 is missing; {DAMAGED}"


def test_a_storage_member_that_is_compressed(tmp_path):
    data = one_tensor(Tensor(Storage()), {}, extra=[Member("archive/data/0", deflated(f32(16)), method=8)])
    assert refusal(tmp_path, data) == "tensor data is compressed, which torch never writes; re-save the checkpoint"


def test_a_storage_member_shorter_than_its_storage(tmp_path):
    assert refusal(tmp_path, one_tensor(Tensor(Storage()), {"0": f32(15)})) == f"storage 0 is cut short; {DAMAGED}"


# -- views -------------------------------------------------------------------------------------


def test_a_broadcast_view_torch_saves_is_refused(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(1).expand(1000)}, path)
    with pytest.raises(BadInputError) as err:
        read_torch_zip(path)
    assert str(err.value) == (
        f"{path}: tensor w claims 1,000 elements but its storage holds 1 (a broadcast view, or a damaged file);"
        " llamadesk converts weights stored in full"
    )


def test_a_transposed_view_reads_up_to_the_last_element_of_its_storage(tmp_path):
    values = read(tmp_path, one_tensor(Tensor(Storage(), 0, (4, 4), (1, 4))))
    assert values["w"].tolist() == np.arange(16, dtype=np.float32).reshape(4, 4).T.tolist()


def test_a_view_one_element_past_its_storage_is_refused(tmp_path):
    assert refusal(tmp_path, one_tensor(Tensor(Storage(), 1, (4, 4), (1, 4)))) == (
        "tensor w reaches past the end of its storage (offset 1, shape [4, 4], stride [1, 4], storage of 16);"
        " the file is damaged or hostile"
    )


def test_released_pages_are_read_again_from_the_file(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    weight = torch.randn(64, 1024)
    torch.save({"w": weight, "b": weight[:, 1:3]}, path)
    (w, b) = sorted(read_torch_zip(path), key=lambda t: t.name, reverse=True)
    b.release(1.0)  # nothing mapped yet: nothing to drop
    first = w.read().copy()
    w.release(0.5)
    w.release(1.0)
    assert np.array_equal(w.read(), first) and np.array_equal(first, weight.numpy())
    assert np.array_equal(b.read(), weight[:, 1:3].numpy())
    with zipfile.ZipFile(path) as archive:  # what was released is a file map: the file is unchanged
        assert archive.testzip() is None
