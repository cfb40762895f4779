"""Every model against a PyTorch implementation written apart from it (tests/torch_reference.py):
the same weights, by name, must give the same logits, loss and gradient of every parameter.

The gradient checks elsewhere prove that each backward matches its forward; these prove that the
forward is the paper's: the sqrt(d_model) embedding scale, the sinusoids, pre- and post-LN wiring,
ReLU and GELU, the fused q, k, v rows, cross-attention's projections, padding masks and pooling,
the tied output projection, label smoothing over non-padding targets.

Both sides run in float64 with dropout 0. Tolerance: 1e-9 of the largest entry of each compared
array. The two differ only in the order of their additions, about 1e-16 relative per operation
through a few layers; a wrong convention (even torch's exact GELU for the tanh approximation) is off by
orders of magnitude more.
"""
import itertools

import numpy as np
import pytest

pytestmark = pytest.mark.interop
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch_reference import ReferenceClassifier, ReferenceGPT, ReferenceSeq2Seq  # noqa: E402

from transformer_jit import (ClassifierConfig, EncoderClassifier, GPT, GPTConfig, Seq2SeqConfig,  # noqa: E402
                             Seq2SeqTransformer)

PAD, CLS, BOS, EOS = 0, 1, 1, 2
TOLERANCE = 1e-9
# Every combination of the paper's choices, each then run with padding in the batch.
ARCHITECTURES = [dict(norm_first=n, activation=a, positional=p)
                 for n, a, p in itertools.product([True, False], ["relu", "gelu"], ["sinusoidal", "learned"])]


def described(options):
    """A test id that says what the case is: norm_first=False-activation=relu-..."""
    return "-".join(f"{key}={value}" for key, value in options.items())


def randomise(model, seed):
    """Weights far from their initial values (gains not 1, biases not 0), so that every path counts."""
    model.params[:] = np.random.default_rng(seed).normal(0.0, 0.3, model.params.shape)
    return model


def assert_close(name, ours, theirs):
    scale = max(np.abs(theirs).max(), 1e-30)
    error = np.abs(np.asarray(ours) - np.asarray(theirs)).max() / scale
    assert error < TOLERANCE, f"{name}: off by {error:.2e} of its largest entry"


def check_against_reference(model, reference, logits, loss, ref_logits, ref_loss):
    """Logits and loss, then the gradient of every parameter of the model, by name."""
    assert_close("logits", logits, ref_logits.detach().numpy())
    assert_close("loss", loss, ref_loss.item())
    model.zero_grad()
    model.backward()
    ref_loss.backward()
    theirs = reference.links.gradients()
    ours = model.gradients()
    assert sorted(theirs) == sorted(ours)  # the reference covers every parameter
    for name in ours:
        assert_close(f"gradient of {name}", ours[name], theirs[name])


def classifier_batch():
    """Three sequences of lengths 5, 3 and 1, right-padded."""
    ids = np.array([[2, 3, 4, 5, 6], [6, 5, 4, 0, 0], [3, 0, 0, 0, 0]])
    return ids, np.array([0, 2, 1])


@pytest.mark.parametrize("options", ARCHITECTURES + [
    dict(pooling="cls"),
    dict(bias=False, n_inner=12, label_smoothing=0.1, norm_first=False, activation="relu"),
], ids=described)
def test_encoder_classifier_matches_torch(options):
    config = ClassifierConfig(vocab_size=7, max_len=5, n_layer=2, n_head=2, n_embd=8, n_classes=3, pad_id=PAD,
                              cls_id=CLS, **options)
    model = randomise(EncoderClassifier(config, dtype=np.float64), seed=1)
    reference = ReferenceClassifier(config).setup(model.state_dict())
    ids, labels = classifier_batch()
    logits, loss = model.forward(ids, labels)
    ref_logits = reference(torch.from_numpy(ids))
    ref_loss = F.cross_entropy(ref_logits, torch.from_numpy(labels), label_smoothing=config.label_smoothing)
    check_against_reference(model, reference, logits, loss, ref_logits, ref_loss)


def seq2seq_batch():
    """Sources of lengths 5, 3 and 2 and targets of 3, 2 and 1 tokens, right-padded:
    tgt_in = BOS + target, tgt_out = target + EOS."""
    src = np.array([[3, 4, 5, 6, 3], [6, 5, 4, 0, 0], [4, 4, 0, 0, 0]])
    tgt_in = np.array([[BOS, 3, 4, 5], [BOS, 5, 4, 0], [BOS, 3, 0, 0]])
    tgt_out = np.array([[3, 4, 5, EOS], [5, 4, EOS, 0], [3, EOS, 0, 0]])
    return src, tgt_in, tgt_out


@pytest.mark.parametrize("options", ARCHITECTURES + [
    dict(tie_weights=False, bias=False, n_inner=12, label_smoothing=0.1),
    dict(tie_weights=False, norm_first=False, activation="relu", label_smoothing=0.1),
], ids=described)
def test_encoder_decoder_matches_torch(options):
    config = Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=6, max_src_len=5, max_tgt_len=4, n_encoder_layer=2,
                           n_decoder_layer=2, n_head=2, n_embd=8, pad_id=PAD, bos_id=BOS, eos_id=EOS, **options)
    model = randomise(Seq2SeqTransformer(config, dtype=np.float64), seed=2)
    reference = ReferenceSeq2Seq(config).setup(model.state_dict())
    src, tgt_in, tgt_out = seq2seq_batch()
    logits, loss = model.forward(src, tgt_in, tgt_out)
    ref_logits = reference(torch.from_numpy(src), torch.from_numpy(tgt_in))
    ref_loss = F.cross_entropy(ref_logits.reshape(-1, config.tgt_vocab_size), torch.from_numpy(tgt_out).reshape(-1),
                               ignore_index=PAD, label_smoothing=config.label_smoothing)
    check_against_reference(model, reference, logits, loss, ref_logits, ref_loss)


@pytest.mark.parametrize("options", [
    dict(positional="sinusoidal", bias=False),
    dict(positional="sinusoidal", bias=True),
    dict(positional="learned", bias=False),
], ids=described)
def test_gpt_matches_torch(options):
    config = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, **options)
    model = randomise(GPT(config, dtype=np.float64), seed=3)
    reference = ReferenceGPT(config).setup(model.state_dict())
    rng = np.random.default_rng(4)
    idx, targets = rng.integers(0, 11, (2, 6)), rng.integers(0, 11, (2, 6))
    logits, loss = model.forward(idx, targets)
    ref_logits = reference(torch.from_numpy(idx))
    ref_loss = F.cross_entropy(ref_logits.reshape(-1, 11), torch.from_numpy(targets).reshape(-1))
    check_against_reference(model, reference, logits, loss, ref_logits, ref_loss)
