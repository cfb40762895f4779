"""The encoder classifier as a whole: gradients, padding, pooling, attention maps, bad input."""
import numpy as np
import pytest

from gradcheck import check_model_gradients
from transformer_jit import ClassifierConfig, EncoderClassifier, TrainConfig, Trainer
from transformer_jit.nn.block import PAPER, Block
from transformer_jit.nn.context import Context
from transformer_jit.nn.parameters import ParameterStore

TINY = dict(vocab_size=7, max_len=5, n_layer=2, n_head=2, n_embd=8, n_classes=3)
PAD = 0


def padded_ids(rng, B=3, T=5, vocab=7):
    """Random real tokens (ids 1..vocab-1) with right padding of different lengths per row."""
    ids = rng.integers(1, vocab, (B, T))
    ids[0, 3:] = PAD
    ids[1, 4:] = PAD
    return ids


@pytest.mark.parametrize("options", [
    dict(),  # pre-LN, GELU, sinusoidal positions, mean pooling
    dict(norm_first=False, activation="relu", positional="learned", pooling="cls", dropout=0.2, attn_dropout=0.3,
         bias=False, label_smoothing=0.1, position_shift=3),  # post-LN as in the paper, CLS token, dropouts, shifted
])
def test_whole_classifier_gradient_matches_finite_differences(rng, options):
    model = EncoderClassifier(ClassifierConfig(**TINY, **options), seed=1, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)  # larger than init: every path matters
    ids, labels = padded_ids(rng), np.array([0, 2, 1])
    check_model_gradients(model, (ids, labels), min_tensors=16)


def test_position_shift_moves_training_positions_only(rng):
    config = ClassifierConfig(**TINY, positional="learned", position_shift=4)
    model = EncoderClassifier(config, seed=0)
    assert model.state_dict()["encoder.pos.weight"].shape == (TINY["max_len"] + 4, TINY["n_embd"])
    ids = padded_ids(rng)
    starts = []
    for _ in range(30):
        model.forward(ids)
        starts.append(model.encoder.pos.start)
    assert set(starts) == {0, 1, 2, 3, 4}  # uniform over [0, position_shift], one start per batch
    again = EncoderClassifier(config, seed=0)
    assert [again.forward(ids) and again.encoder.pos.start for _ in range(30)] == starts  # by seed and count
    model.eval()
    logits, _ = model.forward(ids)
    assert model.encoder.pos.start == 0
    unshifted = EncoderClassifier(ClassifierConfig(**TINY, positional="learned"), seed=0)
    state = model.state_dict()
    state["encoder.pos.weight"] = state["encoder.pos.weight"][:TINY["max_len"]]
    unshifted.load_state_dict(state)
    np.testing.assert_allclose(unshifted.eval().forward(ids)[0], logits, rtol=1e-6)


def test_state_dict_names_read_like_the_paper():
    sd = EncoderClassifier(ClassifierConfig(**TINY, positional="learned")).state_dict()
    C = 8
    expected = {"encoder.embed.weight": (7, C), "encoder.pos.weight": (5, C), "encoder.norm.weight": (C,),
                "encoder.norm.bias": (C,), "classifier.weight": (3, C), "classifier.bias": (3,)}
    for i in range(2):
        p = f"encoder.layers.{i}"
        expected.update({
            f"{p}.self_attn_norm.weight": (C,), f"{p}.self_attn_norm.bias": (C,),
            f"{p}.self_attn.c_attn.weight": (3 * C, C), f"{p}.self_attn.c_attn.bias": (3 * C,),
            f"{p}.self_attn.c_proj.weight": (C, C), f"{p}.self_attn.c_proj.bias": (C,),
            f"{p}.ffn_norm.weight": (C,), f"{p}.ffn_norm.bias": (C,),
            f"{p}.ffn.c_fc.weight": (4 * C, C), f"{p}.ffn.c_fc.bias": (4 * C,),
            f"{p}.ffn.c_proj.weight": (C, 4 * C), f"{p}.ffn.c_proj.bias": (C,),
        })
    assert {k: v.shape for k, v in sd.items()} == expected
    # sinusoidal positions are not parameters; post-LN has no final norm; CLS adds a position
    sd = EncoderClassifier(ClassifierConfig(**TINY, norm_first=False)).state_dict()
    assert "encoder.pos.weight" not in sd and "encoder.norm.weight" not in sd
    sd = EncoderClassifier(ClassifierConfig(**TINY, positional="learned", pooling="cls")).state_dict()
    assert sd["encoder.pos.weight"].shape == (6, C)


@pytest.mark.parametrize("options", [dict(), dict(pooling="cls", norm_first=False, activation="relu")])
def test_padding_does_not_change_the_outputs(rng, options):
    config = ClassifierConfig(**{**TINY, "max_len": 9}, **options)
    model = EncoderClassifier(config, seed=0, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    ids, labels = padded_ids(rng), np.array([1, 0, 2])
    logits, loss = model.forward(ids, labels)
    logits = logits.copy()
    more = np.concatenate([ids, np.zeros((3, 4), dtype=np.int64)], axis=1)  # 4 more PAD columns
    logits2, loss2 = model.forward(more, labels)
    np.testing.assert_allclose(logits2, logits, rtol=1e-12, atol=1e-12)
    assert abs(loss2 - loss) < 1e-12
    # ... and a row does not depend on what else is in the batch
    alone, _ = model.forward(ids[:1, :3])
    np.testing.assert_allclose(alone[0], logits[0], rtol=1e-12, atol=1e-12)


def test_attention_maps_per_layer_and_head_skip_padding(rng):
    model = EncoderClassifier(ClassifierConfig(**TINY), seed=0)
    ids = padded_ids(rng)
    maps = model.attention_maps(ids)
    assert list(maps) == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn"]
    for probs in maps.values():
        assert probs.shape == (3, 2, 5, 5)  # (B, NH, T, S)
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
        assert np.all(probs[0, :, :, 3:] == 0) and np.all(probs[1, :, :, 4:] == 0)  # padding keys
    assert model.training  # restored
    cls_maps = EncoderClassifier(ClassifierConfig(**TINY, pooling="cls")).attention_maps(ids)
    assert cls_maps["encoder.layers.0.self_attn"].shape == (3, 2, 6, 6)  # the CLS token in front


def test_block_options_post_ln_and_relu_change_the_computation(rng):
    x = rng.standard_normal((2, 3, 8))
    outs = []
    for norm_first, activation in ((True, "gelu"), (False, "gelu"), (True, "relu")):
        store = ParameterStore()
        block = Block(store, "b", 8, 2, 1, causal=False, norm_first=norm_first, activation=activation, style=PAPER)
        store.build(np.float64, np.random.default_rng(0))
        outs.append(block.forward(x, Context()).copy())
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[0], outs[2])
    # post-LN ends with a layer norm: every position has zero mean and unit variance
    np.testing.assert_allclose(outs[1].mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(outs[1].var(axis=-1), 1.0, rtol=1e-4)


def test_bad_inputs_get_clear_errors():
    model = EncoderClassifier(ClassifierConfig(**TINY))
    with pytest.raises(ValueError, match="exceeds the model's max_len 5"):
        model.forward(np.ones((1, 6), dtype=np.int64))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.forward(np.array([[1, 7]]))
    with pytest.raises(ValueError, match="empty"):
        model.forward(np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="only padding"):
        model.forward(np.array([[1, 2], [0, 0]]))
    with pytest.raises(ValueError, match="labels must be in"):
        model.forward(np.ones((2, 3), dtype=np.int64), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        model.forward(np.ones((2, 3), dtype=np.int64), np.array([0]))
    with pytest.raises(RuntimeError, match="backward"):
        model.forward(np.ones((2, 3), dtype=np.int64))
        model.backward()
    with pytest.raises(ValueError, match="pooling"):
        ClassifierConfig(**TINY, pooling="max")
    with pytest.raises(ValueError, match="position_shift"):
        ClassifierConfig(**TINY, position_shift=-1)
    with pytest.raises(ValueError, match="divisible"):
        ClassifierConfig(vocab_size=5, n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="n_classes"):
        ClassifierConfig(vocab_size=5, n_classes=1)
    # the empty sequence is classifiable with a CLS token
    logits, _ = EncoderClassifier(ClassifierConfig(**TINY, pooling="cls")).forward(np.array([[1, 2], [0, 0]]))
    assert np.all(np.isfinite(logits))


class ContainsDataset:
    """Label 1 if token 3 occurs in the sequence: needs attention over every position."""

    def batch(self, split, batch_size, rng):
        lengths = rng.integers(1, 8, batch_size)
        ids = rng.integers(4, 7, (batch_size, 7))
        has = rng.random(batch_size) < 0.5
        ids[has, rng.integers(0, 7, batch_size)[has]] = 3
        ids[np.arange(7) >= lengths[:, None]] = PAD
        return ids, (ids == 3).any(axis=1).astype(np.int64)


def test_trainer_drives_the_classifier_to_learn(tmp_path):
    config = ClassifierConfig(vocab_size=7, max_len=7, n_layer=1, n_head=2, n_embd=16, n_classes=2)
    model = EncoderClassifier(config, seed=0)
    train = TrainConfig(batch_size=32, max_iters=150, lr=3e-3, warmup_iters=10, eval_interval=150, eval_iters=4,
                        out_dir=str(tmp_path), weight_decay=0.0)
    trainer = Trainer(model, ContainsDataset(), train, kind="classifier", log=lambda msg: None)
    trainer.fit()
    ids, labels = ContainsDataset().batch("val", 500, np.random.default_rng(5))
    accuracy = np.mean(model.predict(ids) == labels)
    assert accuracy > 0.97, accuracy
    assert (tmp_path / "best.npz").exists()
