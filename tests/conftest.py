import os

import numba
import numpy as np
import pytest

from transformer_jit.kernels import set_adaptive_threads
from transformer_jit.kernels._jit import recording_calls
from transformer_jit.kernels.compile_ahead import compile_in_background


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def fixed_threads():
    """numba.set_num_threads, held whatever the machine's load: fitting the count to the load
    (kernels/threads.py) is off until the test ends, when the count is given back."""
    before = numba.get_num_threads()
    was_adaptive = set_adaptive_threads(False)
    yield numba.set_num_threads
    numba.set_num_threads(before)
    set_adaptive_threads(was_adaptive)


# With TRANSFORMER_JIT_INTEROP=1 (CI's second stage, where the interop extra is installed), a test
# marked `interop` that skips, or a test module skipped whole, fails instead: no comparison with
# another library may go silently unrun.
INTEROP = os.environ.get("TRANSFORMER_JIT_INTEROP") == "1"


def _fail_skip(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome, report.longrepr = "failed", f"skipped where the interop extra is installed: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if INTEROP and report.skipped and item.get_closest_marker("interop"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    if INTEROP and report.skipped:
        _fail_skip(report)


# On an empty cache, a helper process compiles what later tests use (kernels/compile_ahead.py) while
# the first tests compile what they need themselves: two cores compile at once, and the later tests
# find theirs cached. The helper takes the recorded calls from the last, so `_run_later_work` makes
# them in the order the tests come to them.
_stop_helper = None


def pytest_sessionstart(session):
    global _stop_helper
    with recording_calls() as calls:
        _run_later_work()
    _stop_helper = compile_in_background(calls)


def pytest_sessionfinish(session):
    if _stop_helper is not None:
        _stop_helper()


def _run_later_work():
    """Run what later tests run (their kernel calls are recorded, not made), in the order the
    tests come to it: the whole-model gradient checks (test_encoder, test_gpt, test_seq2seq, float64),
    generation (test_generation, test_int8: float32, bfloat16 and int8 weights), then those of
    test_local_attention and test_vit."""
    for model, batch in _float64_models():
        model.forward(*batch)
        model.backward()
    _generation()
    for model, batch in (*_windowed_models(), *_vit_models()):
        model.forward(*batch)
        model.backward()


def _generation():
    from transformer_jit import GPT, GPTConfig
    from transformer_jit.models.generation import Sequences, narrow_weights

    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with model.evaluating():
        for weights in (None, "bfloat16", "int8"):
            sequences = Sequences(model, 2, 8, narrow_weights(model, weights))
            sequences.prefill([np.array([1, 2, 3]), np.array([4, 5])])
            sequences.step(np.array([1, 2]))


def _windowed_models():
    """The local-attention models of test_local_attention's gradient checks, and a batch for each."""
    from transformer_jit import GPT, GPTConfig
    from transformer_jit.models.classifier import EncoderClassifier
    from transformer_jit.models.configs import ClassifierConfig

    ids = np.array([[1, 2, 3, 4, 0], [2, 3, 4, 5, 6]])
    for options in (dict(attn_window=2), dict(attn_window=3, attn_dropout=0.3, dropout=0.1)):
        yield GPT(GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=8, **options),
                  dtype=np.float64), (ids, ids)
    yield EncoderClassifier(ClassifierConfig(vocab_size=7, max_len=5, n_layer=1, n_head=2, n_embd=8, n_classes=3,
                                             attn_window=1), dtype=np.float64), (ids, np.array([0, 2]))


def _vit_models():
    """The ViTs of test_vit's gradient checks (grey and RGB), and a batch for each."""
    from transformer_jit.models.configs import ViTConfig
    from transformer_jit.models.vit import VisionTransformer

    for channels in (1, 3):
        yield VisionTransformer(ViTConfig(image_size=8, patch_size=4, num_channels=channels, n_classes=3, n_layer=1,
                                          n_head=2, n_embd=8, dropout=0.1, attn_dropout=0.1),
                                dtype=np.float64), (np.zeros((2, channels, 8, 8)), np.array([0, 2]))


def _float64_models():
    """The models of the whole-model gradient checks (test_gpt, test_encoder, test_seq2seq), with
    both of their option sets, and a batch for each."""
    from transformer_jit import GPT, GPTConfig
    from transformer_jit.models.classifier import EncoderClassifier
    from transformer_jit.models.configs import ClassifierConfig, Seq2SeqConfig
    from transformer_jit.models.seq2seq import Seq2SeqTransformer

    rng = np.random.default_rng(0)
    ids = rng.integers(1, 6, (3, 5))
    ids[0, 3:] = 0  # padding
    src, tgt = ids[:2], np.array([[1, 3, 4, 5], [1, 4, 3, 0]])
    dropouts = dict(dropout=0.2, attn_dropout=0.3, bias=False)
    for options in (dict(), dict(dropouts, positional="sinusoidal")):
        yield GPT(GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=8, **options),
                  dtype=np.float64), (ids[:2], ids[:2])
    for options in (dict(), dict(dropouts, norm_first=False, activation="relu", positional="learned", pooling="cls",
                                 label_smoothing=0.1, position_shift=3)):
        yield EncoderClassifier(ClassifierConfig(vocab_size=7, max_len=5, n_layer=1, n_head=2, n_embd=8,
                                                 n_classes=3, **options), dtype=np.float64), (ids, np.array([0, 2, 1]))
    for options in (dict(), dict(dropouts, norm_first=False, activation="relu", positional="learned",
                                 tie_weights=False, label_smoothing=0.1)):
        yield Seq2SeqTransformer(Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=6, max_src_len=6, max_tgt_len=5,
                                               n_encoder_layer=1, n_decoder_layer=1, n_head=2, n_embd=8, **options),
                                 dtype=np.float64), (src, tgt, np.roll(tgt, -1, axis=1))
