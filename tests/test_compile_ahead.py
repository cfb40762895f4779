"""Compiling ahead: the recorded calls of a training step, the helper process that compiles into the
cache, and the lock that lets several processes fill one cache."""
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from numba import typeof

from transformer_jit import (GPT, ClassifierConfig, EncoderClassifier, GPTConfig, Seq2SeqConfig, Seq2SeqTransformer,
                             kernels as K)
from transformer_jit.cli import common, main
from transformer_jit.data.image_tasks import mark_images
from transformer_jit.data.images import ImageDataset, preprocessing
from transformer_jit.data.sequences import LabelledDataset, PairDataset
from transformer_jit.data.text import TextDataset
from transformer_jit.data.tokenizers.chars import SeqTokenizer
from transformer_jit.kernels import _jit
from transformer_jit.train import TrainConfig, Trainer
from transformer_jit.models.configs import ViTConfig
from transformer_jit.models.vit import VisionTransformer
from transformer_jit.train.compile_ahead import training_calls


def test_a_cache_save_waits_for_the_directory_lock(tmp_path):
    """Another process holding the lock (a second open file description: flock does not nest)
    holds a save back until it lets go; then the entry is there."""
    cache_file = _jit._SharedIndexDataCacheFile(cache_path=str(tmp_path), filename_base="kernel-1.py3",
                                                source_stamp=(0.0, 1))
    saved = threading.Event()
    saver = threading.Thread(target=lambda: (cache_file.save("signature", "compiled code"), saved.set()))
    with _jit._cache_lock(str(tmp_path)):
        saver.start()
        assert not saved.wait(0.5)
    saver.join(30)
    assert saved.is_set()
    assert cache_file.holds("signature") and cache_file.load("signature") == "compiled code"


def test_recorded_calls_neither_compile_nor_run():
    out, a = np.zeros(3, np.int16), np.ones(3, np.int16)  # int16: a version nothing compiles
    with _jit.recording_calls() as calls, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert K.residual_forward(out, a, a) == 1
        np.array([1e300]).astype(np.float32)  # what unwritten buffers may hold casts without a warning
    assert calls == [(K.residual_forward, (typeof(out), typeof(a), typeof(a)))]
    assert not (out != 0).any()
    assert all(signature[0].dtype != typeof(out).dtype for signature in K.residual_forward.signatures)
    assert K.residual_forward(np.zeros(3), np.ones(3), np.ones(3)) is None  # running again after the block


def _runs():
    """A model of each kind with dropout, and data for it."""
    texts = ["abc", "bca", "cab", "aab", "bbc", "cca", "acb", "bac"]
    chars = SeqTokenizer.from_texts(texts)
    yield GPT, GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1, attn_dropout=0.1), \
        TextDataset(np.arange(400, dtype=np.uint16) % 20, 8)
    yield Seq2SeqTransformer, Seq2SeqConfig(src_vocab_size=chars.vocab_size, tgt_vocab_size=chars.vocab_size,
                                            max_src_len=4, max_tgt_len=5, n_head=2, n_embd=8, dropout=0.1), \
        PairDataset([(t, t[::-1]) for t in texts], chars, chars, 4, 5, 0.25)
    yield EncoderClassifier, ClassifierConfig(vocab_size=chars.vocab_size, max_len=4, n_head=2, n_embd=8,
                                              n_classes=2, dropout=0.1, pooling="mean"), \
        LabelledDataset([(t, i % 2) for i, t in enumerate(texts)], chars, 4, 0.25)
    yield VisionTransformer, ViTConfig(image_size=16, patch_size=4, num_channels=1, n_classes=3, n_layer=2, n_head=2,
                                       n_embd=8, dropout=0.1, attn_dropout=0.1), \
        ImageDataset(mark_images(8, 0, "train"), mark_images(8, 0, "test"), preprocessing(1, 0.5, 0.5), augment=1)


@pytest.mark.parametrize("run", list(_runs()), ids=["gpt", "seq2seq", "classifier", "vit"])
def test_a_training_step_records_the_calls_it_makes(monkeypatch, tmp_path, run):
    """What compile-ahead records on its throwaway model is what the real step and evaluation call:
    the same kernels with the same argument types (layouts included), dropout's among them."""
    model_class, config, data = run
    train = TrainConfig(batch_size=3, max_iters=1, eval_iters=2, out_dir=str(tmp_path))
    recorded = training_calls(model_class, config, data, train)

    made = []
    call = _jit._Dispatcher.__call__

    def observed(kernel, *args):
        made.append((kernel, tuple(kernel.typeof_pyval(a) for a in args)))
        return call(kernel, *args)

    monkeypatch.setattr(_jit._Dispatcher, "__call__", observed)
    trainer = Trainer(model_class(config), data, train, log=lambda message: None)
    trainer.train_step()
    trainer.evaluate()
    assert K.dropout_forward in {kernel for kernel, _ in made}
    assert set(recorded) == set(made)


def test_the_train_command_compiles_ahead_what_it_trains(monkeypatch, tmp_path):
    (tmp_path / "input.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 20)
    asked = []
    monkeypatch.setattr(common, "compile_training", lambda *args: asked.append(args))
    assert main(["train", "--data", str(tmp_path / "input.txt"), "--out-dir", str(tmp_path / "run"), "--max-iters",
                 "1", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "2",
                 "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    [(model_class, model_config, data, config)] = asked
    assert model_class is GPT and model_config.n_embd == 16 and config.batch_size == 2 and data.block_size == 8


HELPER = textwrap.dedent("""
    import tempfile
    import numpy as np
    from numba import typeof
    from transformer_jit import kernels as K
    from transformer_jit.kernels.compile_ahead import _start_helper, compile_ahead

    x = typeof(np.zeros(2, np.int32))
    missing = [(K.add_, (x, x)), (K.residual_forward, (x, x, x))]
    helper = _start_helper(missing, tempfile.mkdtemp())
    assert helper.wait() == 0
    # the helper compiled both into the cache; this process has loaded neither
    assert all(kernel.is_cached(s) and s not in kernel.overloads for kernel, s in missing)
    assert compile_ahead(missing) == 0

    y = typeof(np.zeros(2, np.int8))
    more = [(K.add_, (y, y)), (K.residual_forward, (y, y, y)), (K.residual_backward, (y, y, y))]
    assert compile_ahead(more + more) == 3
    assert all(s in kernel.overloads or kernel.is_cached(s) for kernel, s in more)
    print("ok")
""")


def test_a_helper_process_compiles_into_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", HELPER], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok"]


def test_a_cached_kernel_is_compiled_again_when_a_kernel_it_calls_changes_in_another_file(tmp_path):
    """Numba's cache checks the kernel's own file only; the kernels' cache checks them all."""
    package = tmp_path / "kernels_copy"
    package.mkdir()
    for name in ("_jit.py", "threads.py"):
        with open(os.path.join(os.path.dirname(_jit.__file__), name)) as f:
            (package / name).write_text(f.read())
    (package / "__init__.py").write_text("")
    (package / "caller.py").write_text("from ._jit import kernel\nfrom .callee import step\n\n\n"
                                       "@kernel\ndef twice(x):\n    return 2 * step(x)\n")
    run = [sys.executable, "-c", "from kernels_copy.caller import twice; print(twice(1))"]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path))
    printed = []
    for add in (1, 20):
        (package / "callee.py").write_text(f"from ._jit import kernel\n\n\n@kernel\ndef step(x):\n    return x + {add}\n")
        done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        printed.append(done.stdout.strip())
    assert printed == ["4", "42"]
