"""Translating with a Seq2SeqTransformer: `translate` (texts in, texts out) over greedy search and
beam search, both stopping at end-of-sequence.

Both encode the source once and then grow the target one token per step, re-running the decoder
over the whole prefix each step (no key/value cache: simpler, and the prefixes here are short).
PAD and BOS are never proposed: they are not tokens a target can contain.

Beam search keeps the `beam_width` best prefixes per source by total log-probability. A prefix
that ends in EOS is finished and scored with the length normalisation of Wu et al. (2016, GNMT)

    score(Y) = log P(Y | X) / lp(Y),    lp(Y) = ((5 + |Y|) / 6) ** alpha

(|Y| counts the generated tokens, EOS included; alpha = 0 is the raw log-probability, which
favours short outputs, since every token multiplies in a probability < 1). A source is done once
it has beam_width finished hypotheses (the usual early stop) or the maximum length is reached,
when unfinished ones compete too. With beam_width = 1 this is exactly greedy decoding.
"""
import numpy as np

from .. import kernels as K
from ..data.sequences import in_batches, pad_batch
from ..data.text import short
from ..nn.context import Memory
from ..util.config import ConfigError, is_int, is_number


def _excluded(config):
    return [config.pad_id, config.bos_id]


def _max_steps(config, max_len):
    if max_len is None:
        return config.max_tgt_len
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return min(max_len, config.max_tgt_len)  # the decoder's input (BOS + prefix) must fit its positions


def _strip(row, eos_id):
    """Tokens before the first EOS."""
    ends = np.flatnonzero(row == eos_id)
    return row[:ends[0]] if ends.size else row


def greedy_decode(model, src, max_len=None):
    """src (B, S) token ids -> list of B int64 arrays, the most likely token at every step, up to
    (not including) EOS; at most max_len tokens (default and ceiling: the model's max_tgt_len)."""
    c = model.config
    steps = _max_steps(c, max_len)
    with model.evaluating():
        memory = model.encode(src)
        B = memory.values.shape[0]
        seqs = np.full((B, 1), c.bos_id, dtype=np.int64)
        done = np.zeros(B, dtype=bool)
        for _ in range(steps):
            logits = model.logits(seqs, memory)[:, -1, :].astype(np.float64)
            logits[:, _excluded(c)] = -np.inf
            nxt = np.argmax(logits, axis=1)
            nxt[done] = c.pad_id  # finished rows just wait
            seqs = np.concatenate([seqs, nxt[:, None]], axis=1)
            done |= nxt == c.eos_id
            if done.all():
                break
    return [_strip(row, c.eos_id) for row in seqs[:, 1:]]


def length_penalty(length, alpha):
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


def check_beam_args(beam_width, alpha):
    """beam_width an integer >= 1 and alpha a finite number >= 0, or a ConfigError naming them."""
    if not is_int(beam_width) or beam_width < 1:
        raise ConfigError("beam_search", "beam_width", "must be an integer >= 1", beam_width)
    if not is_number(alpha) or alpha < 0:
        raise ConfigError("beam_search", "alpha", "must be a finite number >= 0", alpha)


def beam_search(model, src, beam_width=4, alpha=0.6, max_len=None, return_scores=False):
    """src (B, S) -> list of B int64 arrays: the best finished hypothesis per source (without EOS).

    beam_width >= 1 prefixes are kept per source, batched together through the decoder
    (B * beam_width rows). alpha >= 0 is the length-normalisation exponent. With
    return_scores=True also returns the list of their normalised scores.
    """
    c = model.config
    check_beam_args(beam_width, alpha)
    steps = _max_steps(c, max_len)
    Kw = int(beam_width)
    with model.evaluating():
        memory = model.encode(src)
        B = memory.values.shape[0]
        # every beam of source b attends to the same memory: rows b*Kw ... b*Kw + Kw-1
        memory = Memory(np.repeat(memory.values, Kw, axis=0), np.repeat(memory.mask, Kw, axis=0))
        seqs = np.full((B * Kw, 1), c.bos_id, dtype=np.int64)
        # Start with one live beam per source: the others are -inf until the first expansion fills
        # them, so the Kw copies of BOS do not yield Kw copies of the same hypothesis.
        scores = np.full((B, Kw), -np.inf)
        scores[:, 0] = 0.0
        finished = [[] for _ in range(B)]  # (normalised score, tokens) per source
        done = np.zeros(B, dtype=bool)
        for step in range(steps):
            logits = model.logits(seqs, memory)[:, -1, :].astype(np.float64)
            V = logits.shape[1]
            logp = np.empty_like(logits)
            K.log_softmax_forward(logp, logits)
            logp[:, _excluded(c)] = -np.inf
            # total log-probability of every (beam, next token) extension, per source
            cand = (scores[:, :, None] + logp.reshape(B, Kw, V)).reshape(B, Kw * V)
            # The 2 Kw best: even if Kw of them end in EOS, Kw remain to continue.
            top = np.argsort(-cand, axis=1, kind="stable")[:, :2 * Kw]
            parents = np.zeros((B, Kw), dtype=np.int64)
            tokens = np.full((B, Kw), c.pad_id, dtype=np.int64)
            new_scores = np.full((B, Kw), -np.inf)
            for b in range(B):
                if done[b]:
                    continue
                n_live = 0
                for j in top[b]:
                    s = cand[b, j]
                    if s == -np.inf:
                        break
                    k, tok = divmod(int(j), V)
                    if tok == c.eos_id:
                        # tokens: the parent's prefix without BOS; |Y| = step + 1 with the EOS
                        finished[b].append((s / length_penalty(step + 1, alpha), seqs[b * Kw + k, 1:].copy()))
                        if len(finished[b]) == Kw:
                            break
                    else:
                        parents[b, n_live], tokens[b, n_live], new_scores[b, n_live] = k, tok, s
                        n_live += 1
                        if n_live == Kw:
                            break
                done[b] = len(finished[b]) >= Kw or n_live == 0
            rows = (np.arange(B)[:, None] * Kw + parents).reshape(-1)
            seqs = np.concatenate([seqs[rows], tokens.reshape(-1, 1)], axis=1)
            scores = new_scores
            if done.all():
                break
        # Sources that ran out of length: their live hypotheses compete unfinished.
        for b in range(B):
            if done[b]:
                continue
            for k in range(Kw):
                if scores[b, k] > -np.inf:
                    length = seqs.shape[1] - 1
                    finished[b].append((scores[b, k] / length_penalty(length, alpha), seqs[b * Kw + k, 1:].copy()))
    best = [max(f, key=lambda item: item[0]) for f in finished]
    outputs = [_strip(tokens, c.eos_id) for _, tokens in best]
    if return_scores:
        return outputs, [score for score, _ in best]
    return outputs


def translate(model, src_tok, tgt_tok, texts, beam_width=1, alpha=0.6, batch_size=256, progress=False):
    """Decode each text with the seq2seq model: greedy for beam_width 1, else beam search.

    Characters outside the source vocabulary and texts longer than the model's max_src_len raise
    a ValueError that names the text.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("nothing to translate: no input texts")
    max_len = model.config.max_src_len
    encoded = []
    for number, text in enumerate(texts, 1):
        if not text:
            raise ValueError(f"input {number} of {len(texts)} is empty: there is nothing to translate")
        try:
            ids = src_tok.encode(text)
        except ValueError as e:
            raise ValueError(f"{short(text)}: {e}") from None
        if len(ids) > max_len:
            raise ValueError(f"{short(text)} has {len(ids):,} characters; this model reads at most {max_len}")
        encoded.append(ids)
    outputs = []
    for chunk in in_batches(encoded, batch_size, "decoding", progress):
        src = pad_batch(chunk)
        tokens = greedy_decode(model, src) if beam_width == 1 else beam_search(model, src, beam_width, alpha)
        outputs.extend(tgt_tok.decode(t) for t in tokens)
    return outputs
