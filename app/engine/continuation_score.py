"""How likely the model finds a given continuation of a prompt: log p(each token | all before it).

Generation asks the model for its own next token; choosing among translations someone already
has (candidates of a segment, or a source sentence as the back-translation of a candidate) asks
instead how probable a fixed text is. That needs the logits at every position of the
continuation, not only the last, so the continuation is decoded as one batch with an output
requested at each of its positions, and each row is turned into a log-probability as the
translation's confidence does (token_sampler.token_logprob). The prompt before it is decoded as a
reply's would be, reusing whatever prefix the context holds: candidates of one segment share
their few-shot prompt, so only the text that differs is decoded again.
"""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp

from llamadesk.app.engine.token_loop import decode_prompt
from llamadesk.app.engine.token_sampler import token_logprob


def continuation_logprobs(llama: llama_cpp.Llama, prompt: Sequence[int], continuation: Sequence[int]) -> list[float]:
    """log p(continuation[i] | prompt + continuation[:i]) for each i, on `llama`'s own context.

    Leaves the context holding prompt + continuation[:-1] (and llama's record of it up to date),
    so a next call that starts the same way reuses it. The caller checks that both are non-empty
    and that together they fit the context.
    """
    continuation = list(continuation)
    decode_prompt(llama, prompt)
    context, n_vocab = llama.ctx, llama.n_vocab()
    scores = [token_logprob(context, -1, n_vocab, continuation[0])]
    rest = continuation[:-1]  # each of these predicts the token after it
    step = max(1, llama.n_batch)
    batch = llama_cpp.llama_batch_init(min(step, max(1, len(rest))), 0, 1)
    try:
        for start in range(0, len(rest), step):
            chunk = rest[start : start + step]
            position = llama.n_tokens
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = position + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1
            batch.n_tokens = len(chunk)
            status = llama_cpp.llama_decode(context, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
            llama.input_ids[position : position + len(chunk)] = chunk
            llama.n_tokens = position + len(chunk)
            nexts = continuation[start + 1 : start + 1 + len(chunk)]
            scores += [token_logprob(context, i, n_vocab, token) for i, token in enumerate(nexts)]
    finally:
        llama_cpp.llama_batch_free(batch)
    return scores
