"""The engine: one thread owns the model and decodes every request's sequences together.

Each completion is a sequence in one of `slots` rows of a key/value cache (models/generation.py's
Sequences). A sequence that arrives is prefilled into a free row and joins the next step; every
step is one forward over the rows in use, each at its own position in the cache, then each row's
next token is drawn with that request's options from the sequence's own random generator
(spawned from the request's seed). A row's logits do not depend on the other rows (the products
of a step sum each row on its own, in a fixed order, up to nn.layers.FEW_ROWS rows), so a seeded
request gives the same tokens alone or beside others. A sequence that ends, or whose client has
gone, frees its row at once.

The request handlers run on the server's event loop and never touch the model or the tokenizer
(whose kernels must not run from two threads at once): they `submit` a checked request and read
its events, which the engine hands over through the loop:

    ("start", [prompt tokens of each prompt])    the prompts were accepted
    ("error", APIError)                          they were not (or the model failed)
    ("text", index, text, logprobs or None)      completion `index` grew
    ("end", index, finish reason, tokens made)   completion `index` ended: "stop" or "length"
"""
import queue
import threading
from collections import deque

import numpy as np

from ..models.generation import Sequences, sample_next
from ..nn.layers import FEW_ROWS
from .errors import APIError
from .text import TextStream
from .vocabulary import Vocabulary

SHUTDOWN = object()
STOPPING = APIError(503, "the server is shutting down")


class Job:
    """One request inside the engine."""

    def __init__(self, request, emit):
        self.request, self.emit = request, emit
        self.cancelled = False  # set by the handler when its client has gone


class Sequence:
    """One completion: its prompt, its generator, its text so far, and its row once it has one."""

    def __init__(self, job, index, prompt, rng, text, offset):
        self.job, self.index, self.prompt, self.rng, self.text = job, index, prompt, rng, text
        self.offset = offset  # where the next token's text starts in the completion (logprobs' text_offset)
        self.row, self.token, self.made = None, None, 0


class Engine:
    def __init__(self, model, tokenizer, slots):
        if not 1 <= slots <= FEW_ROWS:
            # more rows switch the products to the tiled matmul, whose sums round differently: a
            # sequence's tokens would then depend on how many others run beside it
            raise ValueError(f"slots must be in [1, {FEW_ROWS}], got {slots}")
        self.model = model
        self.vocabulary = Vocabulary(tokenizer, model.config.block_size)
        self.sequences = Sequences(model, slots, model.config.block_size)
        self.rows = [None] * slots  # the sequence in each row of the cache
        self.waiting = deque()       # accepted sequences without a row yet
        self.inbox = queue.SimpleQueue()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="transformer-jit engine", daemon=True)
        self.thread.start()

    def submit(self, request, emit):
        """Queue a checked CompletionRequest; emit(event) receives its events (from this engine's
        thread). Returns the Job, to cancel."""
        job = Job(request, emit)
        if self.closed:
            _emit(job, ("error", STOPPING))
        else:
            self.inbox.put(job)
        return job

    def cancel(self, job):
        """The client has gone: its sequences give their rows back before the next step."""
        job.cancelled = True

    def close(self):
        """End every request (503) and stop the thread."""
        if not self.closed:
            self.closed = True
            self.inbox.put(SHUTDOWN)
        self.thread.join()

    # -- the engine's thread ------------------------------------------------------------------

    def _run(self):
        with self.model.evaluating():
            while True:
                idle = not self.waiting and not any(self.rows)
                try:
                    item = self.inbox.get(block=idle)
                    while True:
                        if item is SHUTDOWN:
                            return self._shut_down()
                        try:
                            self._accept(item)
                        except Exception as e:  # the model failed on an echoed prompt: this request ends
                            _emit(item, ("error", _failure(e)))
                            item.cancelled = True
                        item = self.inbox.get_nowait()
                except queue.Empty:
                    pass
                self._free_cancelled()
                self._admit()
                self._step()

    def _accept(self, job):
        request = job.request
        try:
            prompts = [np.asarray(self.vocabulary.encode(p), dtype=np.int64) for p in request.prompts]
        except APIError as e:
            return _emit(job, ("error", e))
        if not _emit(job, ("start", [len(p) for p in prompts])):
            return
        seeds = np.random.SeedSequence(request.seed).spawn(request.choices)
        for index in range(request.choices):
            text, prompt = request.prompts[index // request.n], prompts[index // request.n]
            sequence = Sequence(job, index, prompt, np.random.default_rng(seeds[index]),
                                TextStream(self.vocabulary.token_bytes, request.stop), len(text) if request.echo else 0)
            if request.echo:
                echoed = self._prompt_logprobs(prompt, request.logprobs) if request.logprobs is not None else None
                _emit(job, ("text", index, text, echoed))
            if request.max_tokens == 0:
                _emit(job, ("end", index, "length", 0))
            else:
                self.waiting.append(sequence)

    def _admit(self):
        """Prefill waiting sequences into free rows; each draws its first token."""
        while self.waiting and None in self.rows:
            sequence = self.waiting.popleft()
            if sequence.job.cancelled:
                continue
            sequence.row = self.rows.index(None)
            self.rows[sequence.row] = sequence
            self._guarded(sequence, lambda: self.sequences.fill(sequence.row, sequence.prompt))

    def _step(self):
        """One forward over the rows up to the last in use, then each sequence's next token."""
        used = [row for row, sequence in enumerate(self.rows) if sequence is not None]
        if not used:
            return
        n = used[-1] + 1
        tokens = np.zeros(n, dtype=np.int64)
        for row in range(n):
            if self.rows[row] is None:
                self.sequences.cache.lengths[row] = 0  # an empty row in between: a throwaway token at position 0
            else:
                tokens[row] = self.rows[row].token
        try:
            logits = self.sequences.step(tokens)
        except Exception as e:  # the model failed: every request in the step gets the error, the server goes on
            for row in used:
                self._fail(self.rows[row], e)
            return
        for row in used:
            sequence = self.rows[row]
            self._guarded(sequence, lambda: logits[row])

    def _guarded(self, sequence, logits):
        """Draw `sequence`'s next token from logits() (a row of logits); an error there ends its
        request with a 500, not the engine."""
        try:
            self._advance(sequence, logits())
        except Exception as e:
            self._fail(sequence, e)

    def _advance(self, sequence, logits):
        """Draw the next token, hand out its text, and end the sequence if it is done."""
        if not np.isfinite(logits).all():
            raise FloatingPointError("the model's logits are not finite: its weights hold inf or NaN")
        request = sequence.job.request
        top_p = request.top_p if request.top_p < 1 else None
        token = int(sample_next(logits[None, :], request.temperature, None, top_p, [sequence.rng])[0])
        sequence.made += 1
        if token == self.vocabulary.end_token:
            return self._end(sequence, "stop")
        text = sequence.text.add(token)
        logprobs = None
        if request.logprobs is not None:
            logprobs = self._logprobs([token], logits[None, :], request.logprobs, sequence.offset)
            sequence.offset += len(logprobs["tokens"][0])
        if text or logprobs:
            _emit(sequence.job, ("text", sequence.index, text, logprobs))
        if sequence.text.stopped:
            self._end(sequence, "stop")
        elif sequence.made == request.max_tokens:
            self._end(sequence, "length")
        else:
            sequence.token = token

    def _end(self, sequence, reason):
        rest = sequence.text.finish()
        if rest:
            _emit(sequence.job, ("text", sequence.index, rest, None))
        _emit(sequence.job, ("end", sequence.index, reason, sequence.made))
        self._free(sequence)

    def _fail(self, sequence, error):
        _emit(sequence.job, ("error", _failure(error)))
        sequence.job.cancelled = True  # its other sequences stop too
        self._free(sequence)

    def _free(self, sequence):
        if sequence.row is not None and self.rows[sequence.row] is sequence:
            self.rows[sequence.row] = None
        sequence.row = None

    def _free_cancelled(self):
        for sequence in self.rows:
            if sequence is not None and sequence.job.cancelled:
                self._free(sequence)

    def _shut_down(self):
        ending = {s.job for s in list(self.rows) + list(self.waiting) if s is not None}
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                ending.add(item)
        for job in ending:
            _emit(job, ("error", STOPPING))

    # -- log probabilities --------------------------------------------------------------------

    def _prompt_logprobs(self, prompt, top):
        """The prompt's tokens with their log probabilities (the first has none): a forward over the
        whole prompt, for echo with logprobs (how tools score a text)."""
        logits, _ = self.model.forward(prompt[None, :])
        first = self.vocabulary.token_text(int(prompt[0]))
        entries = {"tokens": [first], "token_logprobs": [None], "top_logprobs": [None], "text_offset": [0]}
        rest = self._logprobs(prompt[1:], logits[0, :-1], top, len(first))
        for key in entries:
            entries[key] += rest[key]
        return entries

    def _logprobs(self, tokens, logits, top, offset):
        """OpenAI's logprobs object for `tokens`, each drawn from the model's distribution in a
        row of `logits` (before temperature and top_p, as OpenAI reports them), with the `top`
        most likely tokens at each position; the first token's text starts at `offset`."""
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for row, token in zip(logits, tokens):
            z = row.astype(np.float64)
            z -= z.max()
            logp = z - np.log(np.exp(z).sum())
            k = min(top, len(logp))
            best = np.argpartition(-logp, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
            best = best[np.argsort(-logp[best], kind="stable")]
            text = self.vocabulary.token_text(int(token))
            out["tokens"].append(text)
            out["token_logprobs"].append(float(logp[token]))
            out["top_logprobs"].append({self.vocabulary.token_text(int(t)): float(logp[t]) for t in best})
            out["text_offset"].append(offset)
            offset += len(text)
        return out


def _emit(job, event):
    """Hand `event` to the job's handler; False (and the job cancelled) if it cannot take it any
    more (its event loop has closed)."""
    if job.cancelled:
        return False
    try:
        job.emit(event)
    except RuntimeError:
        job.cancelled = True
        return False
    return True


def _failure(error):
    return APIError(500, f"the model failed: {type(error).__name__}: {error}")
