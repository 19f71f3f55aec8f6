"""logits_row: the numpy view of a logits row, made once per address and always current."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from llamadesk.app.engine.logits_row import logits_row


def decode_one(llama, token: int, position: int) -> None:
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    try:
        batch.n_tokens, batch.token[0], batch.pos[0] = 1, token, position
        batch.n_seq_id[0], batch.seq_id[0][0], batch.logits[0] = 1, 0, 1
        assert llama_cpp.llama_decode(llama.ctx, batch) == 0
    finally:
        llama_cpp.llama_batch_free(batch)


def test_a_row_is_the_logits_llama_cpp_wrote_and_follows_each_decode(smollm2_engine):
    llama = smollm2_engine._llama
    n_vocab = llama.n_vocab()
    llama.reset()
    llama.eval([1, 2, 3, 4])
    decode_one(llama, 500, 4)
    row = logits_row(llama.ctx, -1, n_vocab)
    reference = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(n_vocab,))
    assert row.dtype == np.float32 and row.shape == (n_vocab,)
    assert np.array_equal(row, reference)
    first = row.copy()
    decode_one(llama, 900, 5)
    again = logits_row(llama.ctx, -1, n_vocab)
    assert again is row  # the same address: the view made once is reused
    assert not np.array_equal(again, first)  # and it reads what the new decode wrote
    assert np.array_equal(again, np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(n_vocab,)))
    llama.reset()


def test_a_position_without_logits_is_an_error_not_a_view_of_nothing(smollm2_engine):
    llama = smollm2_engine._llama
    llama.reset()
    llama.eval([1, 2, 3])
    decode_one(llama, 500, 3)
    with pytest.raises(RuntimeError, match="no logits for batch position 7"):
        logits_row(llama.ctx, 7, llama.n_vocab())  # the batch had one position
    llama.reset()
