"""GPT-2's parameters under nanoGPT's names and in PyTorch nn.Linear layout: what the codecs of
other projects' GPT-2 files translate to and from.

    transformer.wte.weight (V, C)    transformer.wpe.weight (block_size, C)
    transformer.h.{i}.ln_1.weight, .bias (C,)           ln_2 likewise
    transformer.h.{i}.attn.c_attn.weight (3C, C), .bias (3C,)
    transformer.h.{i}.attn.c_proj.weight (C, C),  .bias (C,)
    transformer.h.{i}.mlp.c_fc.weight (4C, C),    .bias (4C,)
    transformer.h.{i}.mlp.c_proj.weight (C, 4C),  .bias (C,)
    transformer.ln_f.weight, .bias (C,)

The head is tied to wte and has no weight of its own. Sizes are a dict with nanoGPT's config
names: vocab_size, block_size, n_layer, n_head, n_embd.
"""
import numpy as np

SIZES = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
# The layer-norm epsilon of every GPT-2, and of this package's LayerNorm.
LAYER_NORM_EPSILON = 1e-5
# The four weights that GPT-2's original code (and Hugging Face's Conv1D) stores as (in, out).
LINEAR_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2_shapes(sizes):
    """{nanoGPT name: shape} of every parameter of a GPT-2 with these sizes, in block order."""
    V, T, L, C = sizes["vocab_size"], sizes["block_size"], sizes["n_layer"], sizes["n_embd"]
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C)}
    for i in range(L):
        h = f"transformer.h.{i}"
        shapes.update({
            f"{h}.ln_1.weight": (C,), f"{h}.ln_1.bias": (C,),
            f"{h}.attn.c_attn.weight": (3 * C, C), f"{h}.attn.c_attn.bias": (3 * C,),
            f"{h}.attn.c_proj.weight": (C, C), f"{h}.attn.c_proj.bias": (C,),
            f"{h}.ln_2.weight": (C,), f"{h}.ln_2.bias": (C,),
            f"{h}.mlp.c_fc.weight": (4 * C, C), f"{h}.mlp.c_fc.bias": (4 * C,),
            f"{h}.mlp.c_proj.weight": (C, 4 * C), f"{h}.mlp.c_proj.bias": (C,),
        })
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)})
    return shapes


def gpt2_sizes(config, what):
    """The sizes of a model config (a dict with nanoGPT's field names) that is exported as `what`,
    refusing what GPT-2 cannot represent: no biases, sinusoidal positions, an attention window."""
    if config.get("bias", True) is not True:
        raise ValueError(f"{what} needs bias=True: GPT-2 has biases in every linear and layer-norm layer")
    if config.get("positional", "learned") != "learned":
        raise ValueError(f"{what} needs positional='learned': GPT-2 learns its position table (wpe)")
    if config.get("attn_window", 0) != 0:
        raise ValueError(f"{what} needs attn_window=0: GPT-2 attends to its whole context, and its files have no "
                         f"place for a window of {config['attn_window']} positions")
    return {k: config[k] for k in SIZES}


def check_params(params, sizes, what):
    """Require {nanoGPT name: array} to hold exactly GPT-2's parameters for `sizes`, shapes included."""
    expected = gpt2_shapes(sizes)
    problems = []
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    wrong = [f"{k}: {tuple(params[k].shape)}, expected {expected[k]}" for k in expected
             if k in params and tuple(params[k].shape) != expected[k]]
    if wrong:
        problems.append(f"mis-shaped {wrong}")
    if problems:
        raise ValueError(f"{what}: the parameters are not GPT-2's: " + "; ".join(problems))


def copy_finite(dest, value, what):
    """dest[...] = value, refusing NaN and infinity (a damaged or diverged checkpoint): `what`
    names the tensor in the error."""
    dest[...] = value
    if not np.isfinite(dest).all():
        raise ValueError(f"{what} holds non-finite values (NaN or inf)")
