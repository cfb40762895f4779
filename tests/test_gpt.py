"""The GPT as a whole: gradients, learning, causality, sampling, state dicts."""
import json

import numpy as np
import pytest

from gradcheck import check_model_gradients
from reference_gpt2 import reference_logits
from transformer_jit import GPT, GPTConfig
from transformer_jit.models.gpt import IGNORE_INDEX
from transformer_jit.nn.context import Context
from transformer_jit.nn.layers import Dropout

TINY = dict(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=8)


def random_batch(rng, config, B=2, T=None):
    T = T or config.block_size
    return (rng.integers(0, config.vocab_size, (B, T)), rng.integers(0, config.vocab_size, (B, T)))


@pytest.mark.parametrize("options", [
    dict(dropout=0.0, bias=True, positional="learned"),
    dict(dropout=0.2, attn_dropout=0.3, bias=False, positional="sinusoidal"),  # both dropouts
])
def test_whole_gpt_gradient_matches_finite_differences(rng, options):
    config = GPTConfig(**TINY, **options)
    model = GPT(config, seed=1, dtype=np.float64)
    # Larger weights than GPT-2's 0.02 init, so every path carries a gradient worth checking.
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    idx, targets = random_batch(rng, config, T=4)
    targets[0, 1] = IGNORE_INDEX  # an ignored position must contribute nothing
    check_model_gradients(model, (idx, targets), min_tensors=len(model.state_dict()))


def test_state_dict_has_nanogpt_names_and_layouts():
    config = GPTConfig(**TINY)
    sd = GPT(config).state_dict()
    C, V = config.n_embd, config.vocab_size
    expected = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (config.block_size, C),
                "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(config.n_layer):
        h = f"transformer.h.{i}"
        expected.update({
            f"{h}.ln_1.weight": (C,), f"{h}.ln_1.bias": (C,), f"{h}.ln_2.weight": (C,), f"{h}.ln_2.bias": (C,),
            f"{h}.attn.c_attn.weight": (3 * C, C), f"{h}.attn.c_attn.bias": (3 * C,),
            f"{h}.attn.c_proj.weight": (C, C), f"{h}.attn.c_proj.bias": (C,),
            f"{h}.mlp.c_fc.weight": (4 * C, C), f"{h}.mlp.c_fc.bias": (4 * C,),
            f"{h}.mlp.c_proj.weight": (C, 4 * C), f"{h}.mlp.c_proj.bias": (C,),
        })
    assert {k: v.shape for k, v in sd.items()} == expected
    assert set(GPT(config).gradients()) == set(expected)


def test_load_state_dict_round_trips_and_refuses_bad_entries():
    config = GPTConfig(**TINY)
    a, b = GPT(config, seed=1), GPT(config, seed=2)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.params, b.params)
    sd = a.state_dict()
    del sd["transformer.ln_f.bias"]
    sd["transformer.extra"] = np.zeros(3)
    sd["transformer.wte.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError) as e:
        b.load_state_dict(sd)
    for name in ("transformer.ln_f.bias", "transformer.extra", "transformer.wte.weight"):
        assert name in str(e.value)


def test_logits_are_causal(rng):
    config = GPTConfig(**TINY)
    model = GPT(config, seed=0)
    model.params[:] = rng.normal(0, 0.5, model.params.shape).astype(np.float32)
    idx = rng.integers(0, config.vocab_size, (1, 5))
    before = model.forward(idx)[0].copy()
    changed = idx.copy()
    changed[0, 3:] = (changed[0, 3:] + 1) % config.vocab_size
    after = model.forward(changed)[0]
    np.testing.assert_array_equal(before[0, :3], after[0, :3])
    assert not np.allclose(before[0, 3:], after[0, 3:])


@pytest.mark.parametrize("T", [1, 3, 5])
def test_forward_equals_a_numpy_reference_at_every_length(rng, T):
    config = GPTConfig(**TINY)
    model = GPT(config, seed=0, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    idx = rng.integers(0, config.vocab_size, (2, T))
    logits, loss = model.forward(idx)
    assert loss is None
    np.testing.assert_allclose(logits, reference_logits(model.state_dict(), config, idx), rtol=1e-10, atol=1e-12)


def test_one_token_forward_and_backward(rng):
    """T = 1: attention over a single key is the identity on its value; the loss and every
    gradient still match finite differences, and float32 stays float32."""
    config = GPTConfig(**TINY)
    model = GPT(config, seed=1, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    idx, targets = random_batch(rng, config, B=3, T=1)
    logits, loss = model.forward(idx, targets)
    ref = reference_logits(model.state_dict(), config, idx)
    z = ref - ref.max(-1, keepdims=True)
    expected = -np.mean(np.take_along_axis(z - np.log(np.exp(z).sum(-1, keepdims=True)), targets[..., None], -1))
    assert loss == pytest.approx(expected, rel=1e-10)
    check_model_gradients(model, (idx, targets), min_tensors=len(model.state_dict()))
    model32 = GPT(config, seed=1)
    logits32, loss32 = model32.forward(idx, targets)
    assert logits32.dtype == np.float32 and abs(loss32 - np.log(config.vocab_size)) < 0.5  # near uniform at init


def test_generate_is_repeatable_with_a_seed(rng):
    config = GPTConfig(**TINY)
    model = GPT(config, seed=0)
    model.params[:] = rng.normal(0, 0.5, model.params.shape).astype(np.float32)
    prompt = np.array([[1, 2]])
    a = model.generate(prompt, 12, seed=5)
    b = model.generate(prompt, 12, seed=5)
    c = model.generate(prompt, 12, seed=6)
    assert a.shape == (1, 14) and np.array_equal(a[:, :2], prompt)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    top1 = model.generate(prompt, 8, top_k=1, seed=1)
    np.testing.assert_array_equal(top1, model.generate(prompt, 8, top_k=1, seed=2))  # top-1 is greedy
    assert model.training  # generate restores the mode it found


def test_bad_inputs_are_refused_with_clear_errors(rng):
    config = GPTConfig(**TINY)
    model = GPT(config)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.forward(np.array([[0, 7]]))
    with pytest.raises(ValueError, match="block_size"):
        model.forward(np.zeros((1, 6), dtype=np.int64))
    with pytest.raises(TypeError, match="integer"):
        model.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model.forward(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="targets shape"):
        model.forward(np.zeros((1, 3), dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(RuntimeError, match="backward"):
        model.forward(np.zeros((1, 3), dtype=np.int64))
        model.backward()
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=5, n_embd=10, n_head=3)


def test_layers_check_dtype_contiguity_and_shape():
    model = GPT(GPTConfig(**TINY))
    linear = model.transformer.layers[0].mlp.c_fc
    good = np.zeros((4, 8), dtype=np.float32)
    linear.forward(good, Context())
    with pytest.raises(TypeError, match="dtype float32"):
        linear.forward(good.astype(np.float64), Context())
    with pytest.raises(ValueError, match="C-contiguous"):
        linear.forward(np.zeros((8, 4), dtype=np.float32).T, Context())
    with pytest.raises(ValueError, match=r"shape \(\*, 8\)"):
        linear.forward(np.zeros((4, 5), dtype=np.float32), Context())
    with pytest.raises(ValueError, match="shape"):
        model.transformer.layers[0].ln_1.forward(np.zeros((4, 5), dtype=np.float32), Context())


def test_attention_maps_per_layer_and_head_are_causal(rng):
    config = GPTConfig(**TINY)
    model = GPT(config, seed=0, dtype=np.float64)
    idx = rng.integers(0, config.vocab_size, (2, 4))
    maps = model.attention_maps(idx)
    assert list(maps) == ["transformer.h.0.attn", "transformer.h.1.attn"]
    for probs in maps.values():
        assert probs.shape == (2, config.n_head, 4, 4)  # (B, NH, T, S)
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)
        assert np.all(np.triu(probs, k=1) == 0)  # no query looks ahead
    maps["transformer.h.0.attn"][:] = 0  # a copy: the model's buffers are untouched
    assert model.transformer.layers[0].attn.probs.sum() > 0


def test_attention_dropout_draws_a_seed_per_layer_and_is_off_in_evaluation(rng):
    config = GPTConfig(**TINY, attn_dropout=0.3)  # residual and embedding dropout stay off
    model = GPT(config, seed=0, dtype=np.float64)
    model.params[:] = rng.normal(0, 0.3, model.params.shape)
    batch = random_batch(rng, config)
    first = model.forward(*batch)[1]
    rates, seeds = zip(*(layer.drop.args for _, layer in model.attention_layers()))
    assert rates == (0.3, 0.3) and seeds[0] != seeds[1]  # every layer its own mask
    assert model.forward(*batch)[1] != first  # the next forward draws new masks
    model.forward_count = 0
    assert model.forward(*batch)[1] == first  # the same count and seed: the same masks
    with model.evaluating():
        evaluated = model.forward(*batch)[1]
        assert all(layer.drop.args == (0.0, 0) for _, layer in model.attention_layers())
    model.forward_count = 0
    assert evaluated != first  # the masks changed the training loss: nothing else drops out here
    assert model.forward(*batch)[1] == first
    with pytest.raises(ValueError, match="attn_dropout"):
        GPTConfig(**TINY, attn_dropout=1.0)


def dropout_masks(model, batch):
    """{site: its mask} of every active dropout layer after one training forward from count 0."""
    model.forward_count = 0
    model.forward(*batch)
    return {layer.site: layer.mask.copy() for layer in model.modules() if isinstance(layer, Dropout) and layer.active}


def test_a_dropout_site_draws_by_its_name_whatever_other_sites_exist(rng):
    """Adding dropout sites (attention dropout here) leaves the masks of the others as they were;
    each site is named after its place in the model, once per model."""
    batch = random_batch(rng, GPTConfig(**TINY))
    residual_only = dropout_masks(GPT(GPTConfig(**TINY, dropout=0.2), seed=3), batch)
    both = GPT(GPTConfig(**TINY, dropout=0.2, attn_dropout=0.3), seed=3)
    with_attention = dropout_masks(both, batch)
    names = sorted(bytes(site).decode() for site in residual_only)
    assert names == ["transformer.drop", "transformer.h.0.attn.resid_dropout", "transformer.h.0.mlp.resid_dropout",
                     "transformer.h.1.attn.resid_dropout", "transformer.h.1.mlp.resid_dropout"]
    assert with_attention.keys() == residual_only.keys()
    for site, mask in residual_only.items():
        np.testing.assert_array_equal(with_attention[site], mask)
    sites = [layer.site for layer in both.modules() if isinstance(layer, Dropout)]
    sites += [layer.drop.site for _, layer in both.attention_layers()]
    assert len(sites) == len(set(sites)) == 7
    ctx = Context(training=True, seed=3, count=1)
    assert ctx.dropout_seed(sites[0]) == ctx.dropout_seed(sites[0]) != ctx.dropout_seed(sites[1])
    assert Context(training=False).dropout_seed(sites[0]) is None


def test_attention_dropout_in_saved_configs(tmp_path):
    config = GPTConfig(**TINY, dropout=0.1, attn_dropout=0.2)
    old = {k: v for k, v in config.to_dict().items() if k != "attn_dropout"}  # saved before the field existed
    assert GPTConfig.from_dict(old) == GPTConfig(**TINY, dropout=0.1)
    GPT(config).save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert (written["resid_pdrop"], written["embd_pdrop"], written["attn_pdrop"]) == (0.1, 0.1, 0.2)
    loaded = GPT.from_pretrained(tmp_path, dropout=0.1, attn_dropout=0.2)
    assert loaded.config == config
