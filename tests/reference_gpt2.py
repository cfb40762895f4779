"""GPT-2's forward pass in plain NumPy: the yardstick that the model and loaded checkpoints are
compared with."""
import numpy as np


def reference_logits(sd, config, idx):
    """GPT-2's forward in plain NumPy, from the state dict: the yardstick for the model's forward."""
    def ln(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * sd[f"{name}.weight"] + sd[f"{name}.bias"]

    def linear(x, name):
        return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]

    B, T = idx.shape
    C, NH = config.n_embd, config.n_head
    x = sd["transformer.wte.weight"][idx] + sd["transformer.wpe.weight"][:T]
    for i in range(config.n_layer):
        h = f"transformer.h.{i}"
        q, k, v = np.split(linear(ln(x, f"{h}.ln_1"), f"{h}.attn.c_attn"), 3, axis=-1)
        q, k, v = (a.reshape(B, T, NH, C // NH).transpose(0, 2, 1, 3) for a in (q, k, v))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // NH) + np.triu(np.full((T, T), -np.inf), 1)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        y = (p / p.sum(-1, keepdims=True)) @ v
        x = x + linear(y.transpose(0, 2, 1, 3).reshape(B, T, C), f"{h}.attn.c_proj")
        m = linear(ln(x, f"{h}.ln_2"), f"{h}.mlp.c_fc")
        m = 0.5 * m * (1 + np.tanh(np.sqrt(2 / np.pi) * (m + 0.044715 * m ** 3)))
        x = x + linear(m, f"{h}.mlp.c_proj")
    return ln(x, "transformer.ln_f") @ sd["transformer.wte.weight"].T
