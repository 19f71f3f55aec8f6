"""Where a batched step pads its logits rows to whole output tiles (engine/output_tiles.py)."""

from __future__ import annotations

import pytest
from gguf import GGMLQuantizationType

from llamadesk.app.core.gguf_header import read_gguf_header
from llamadesk.app.engine.output_tiles import AVX512_TILE, output_matrix_type, output_row_tile, padded_rows

AVX512_BUILD = ("AVX", "AVX2", "AVX512", "LLAMAFILE", "OPENMP")


@pytest.mark.parametrize(
    ("rows", "padded"),
    # 2-4 rows: one sweep already (and 2 or 3 cost less than 4); 6-7: a second sweep for the rest, so 8;
    # 5: the one row left over costs about what a fourth more in the first sweep would.
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 8), (7, 8), (8, 8), (9, 9), (10, 12), (11, 12), (13, 13)],
)
def test_rows_round_up_to_whole_tiles_past_the_first(rows, padded):
    assert padded_rows(rows, AVX512_TILE) == padded


def test_a_tile_of_one_pads_nothing():
    assert [padded_rows(rows, 1) for rows in range(10)] == list(range(10))


def test_the_tile_is_four_only_where_it_was_measured():
    q8 = GGMLQuantizationType.Q8_0
    assert output_row_tile(q8, AVX512_BUILD, output_on_cpu=True) == 4
    assert output_row_tile(GGMLQuantizationType.Q4_0, AVX512_BUILD, output_on_cpu=True) == 4
    # Types llama.cpp's llamafile kernels do not take, an AVX2 build, no llamafile, or a GPU: no padding.
    assert output_row_tile(GGMLQuantizationType.Q6_K, AVX512_BUILD, output_on_cpu=True) == 1
    assert output_row_tile(GGMLQuantizationType.F16, AVX512_BUILD, output_on_cpu=True) == 1
    assert output_row_tile(q8, ("AVX", "AVX2", "LLAMAFILE"), output_on_cpu=True) == 1
    assert output_row_tile(q8, ("AVX", "AVX2", "AVX512"), output_on_cpu=True) == 1
    assert output_row_tile(q8, AVX512_BUILD, output_on_cpu=False) == 1
    assert output_row_tile(None, AVX512_BUILD, output_on_cpu=True) == 1


def test_the_output_matrix_of_the_starters_is_their_tied_embedding(smollm2_path, gemma_path):
    # Both tie their output to the token embedding, stored as Q8_0 in these files.
    assert output_matrix_type(read_gguf_header(smollm2_path)) == GGMLQuantizationType.Q8_0
    assert output_matrix_type(read_gguf_header(gemma_path)) == GGMLQuantizationType.Q8_0


def test_the_engine_takes_its_tile_from_its_build_and_model(smollm2_engine):
    from llamadesk.app.engine.build_info import build_info

    expected = 4 if {"AVX512", "LLAMAFILE"} <= set(build_info().cpu_features) else 1
    assert smollm2_engine.output_tile == expected
