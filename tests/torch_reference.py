"""The three models rebuilt from PyTorch's own layers: a yardstick written apart from this project.

The blocks are torch.nn.TransformerEncoderLayer and TransformerDecoderLayer (multi-head attention,
feed-forward, residuals and layer norms all torch's), the stacks and heads are written here from
"Attention Is All You Need" and GPT-2:

    x = embed(ids) * scale + PE[:T]      scale sqrt(d_model) in the paper (3.4), 1 in GPT-2;
                                         PE the paper's sinusoids (3.5) or a learned table
    x = blocks(x)                        pre-LN or post-LN; padding keys masked; causal or not
    x = LN(x)                            pre-LN only: a post-LN block already ends with one

Nothing of transformer_jit is imported: the weights come in as the project's state dict, and
`Links` says which project parameters each torch parameter is made of, by name.
GELU is the tanh approximation, the one GPT-2 and this project document (torch's "gelu" is the
exact one). The stacks are not torch.nn.Transformer's: that adds a final layer norm to post-LN
stacks too, which the paper does not have.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "gelu": lambda x: F.gelu(x, approximate="tanh")}

# The state-dict names of a block's parts: GPT-2's (nanoGPT's) and the paper-style ones.
GPT2_NAMES = {"layers": "h", "ln_1": "ln_1", "attn": "attn", "ln_2": "ln_2", "mlp": "mlp", "embed": "wte",
              "pos": "wpe", "norm": "ln_f"}
PAPER_NAMES = {"layers": "layers", "ln_1": "self_attn_norm", "attn": "self_attn", "ln_cross": "cross_attn_norm",
               "cross_attn": "cross_attn", "ln_2": "ffn_norm", "mlp": "ffn", "embed": "embed", "pos": "pos",
               "norm": "norm"}


def paper_positions(n_positions, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i / d_model)), PE(pos, 2i + 1) = cos(the same): paper, 3.5."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000.0 ** (two_i / d_model)
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table


class Links:
    """Torch parameters, each the rows of one or more project parameters stacked in order (a fused
    q, k, v projection is the project's c_attn, or its c_q above its c_kv)."""

    def __init__(self):
        self.pairs = []

    def add(self, param, *names):
        """param: the rows of `names` stacked; a missing param (no bias) is nothing to link."""
        if param is not None:
            self.pairs.append((param, names))

    def add_layer(self, module, prefix):
        """An nn.Linear or nn.LayerNorm: its weight and bias, if any, are the project's `prefix`'s."""
        self.add(module.weight, f"{prefix}.weight")
        self.add(module.bias, f"{prefix}.bias")

    def load(self, state):
        """Copy the project's weights in, and remember how many rows each has."""
        self.rows = {name: state[name].shape[0] for _, names in self.pairs for name in names}
        with torch.no_grad():
            for param, names in self.pairs:
                param.copy_(torch.cat([torch.from_numpy(state[name]) for name in names]))

    def gradients(self):
        """{project name: its rows of the torch gradient}, as NumPy arrays."""
        grads = {}
        for param, names in self.pairs:
            start = 0
            for name in names:
                grads[name] = param.grad[start:start + self.rows[name]].numpy()
                start += self.rows[name]
        return grads


class Stack(nn.Module):
    """Embedding, positions and n_layer torch blocks (encoder or decoder), then a final LN if pre-LN."""

    def __init__(self, vocab_size, n_positions, n_layer, n_head, n_embd, *, d_ff, decoder=False, norm_first=True,
                 activation="gelu", positional="sinusoidal", bias=True, scale=1.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.learned = nn.Embedding(n_positions, n_embd) if positional == "learned" else None
        self.register_buffer("sinusoids", paper_positions(n_positions, n_embd))
        layer = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
        self.layers = nn.ModuleList(
            layer(n_embd, n_head, d_ff, dropout=0.0, activation=ACTIVATIONS[activation], layer_norm_eps=1e-5,
                  batch_first=True, norm_first=norm_first, bias=bias)
            for _ in range(n_layer))
        self.norm = nn.LayerNorm(n_embd, eps=1e-5, bias=bias) if norm_first else None
        self.decoder, self.scale = decoder, scale

    def forward(self, ids, padding, causal, memory=None, memory_padding=None):
        """ids (B, T); padding (B, T) bool, True at padding; memory (B, S, C) for a decoder."""
        T = ids.shape[1]
        positions = self.learned.weight[:T] if self.learned is not None else self.sinusoids[:T]
        x = self.embed(ids) * self.scale + positions
        mask = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None  # True: may not attend
        for layer in self.layers:
            if self.decoder:
                x = layer(x, memory, tgt_mask=mask, tgt_key_padding_mask=padding,
                          memory_key_padding_mask=memory_padding)
            else:
                x = layer(x, src_mask=mask, src_key_padding_mask=padding)
        return self.norm(x) if self.norm is not None else x

    def link(self, links, prefix, names):
        """Add this stack's parameters to `links` under the project's names `prefix`.{names[...]}."""
        links.add(self.embed.weight, f"{prefix}.{names['embed']}.weight")
        if self.learned is not None:
            links.add(self.learned.weight, f"{prefix}.{names['pos']}.weight")
        for i, layer in enumerate(self.layers):
            block = f"{prefix}.{names['layers']}.{i}"
            attn, mlp = f"{block}.{names['attn']}", f"{block}.{names['mlp']}"
            links.add_layer(layer.norm1, f"{block}.{names['ln_1']}")
            links.add(layer.self_attn.in_proj_weight, f"{attn}.c_attn.weight")  # rows: q, k, v
            links.add(layer.self_attn.in_proj_bias, f"{attn}.c_attn.bias")
            links.add_layer(layer.self_attn.out_proj, f"{attn}.c_proj")
            ffn_norm = layer.norm2
            if self.decoder:
                cross = f"{block}.{names['cross_attn']}"
                links.add_layer(layer.norm2, f"{block}.{names['ln_cross']}")
                links.add(layer.multihead_attn.in_proj_weight, f"{cross}.c_q.weight", f"{cross}.c_kv.weight")
                links.add(layer.multihead_attn.in_proj_bias, f"{cross}.c_q.bias", f"{cross}.c_kv.bias")
                links.add_layer(layer.multihead_attn.out_proj, f"{cross}.c_proj")
                ffn_norm = layer.norm3
            links.add_layer(ffn_norm, f"{block}.{names['ln_2']}")
            links.add_layer(layer.linear1, f"{mlp}.c_fc")
            links.add_layer(layer.linear2, f"{mlp}.c_proj")
        if self.norm is not None:
            links.add_layer(self.norm, f"{prefix}.{names['norm']}")


class Reference(nn.Module):
    """A model and its Links: subclasses build `self.links` in __init__ and define forward."""

    def setup(self, state):
        self.double()
        self.links.load(state)
        return self


class ReferenceGPT(Reference):
    """GPT-2: a causal pre-LN stack without the embedding scale, logits = h wteᵀ (tied head)."""

    def __init__(self, c):
        super().__init__()
        self.transformer = Stack(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, d_ff=4 * c.n_embd,
                                 positional=c.positional, bias=c.bias)
        self.links = Links()
        self.transformer.link(self.links, "transformer", GPT2_NAMES)

    def forward(self, idx):
        h = self.transformer(idx, None, causal=True)
        return h @ self.transformer.embed.weight.T


class ReferenceClassifier(Reference):
    """The paper's encoder (embeddings scaled by sqrt(d_model)), pooled over the real tokens (or
    the classification token put in front), then a linear layer with a bias."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        prefix = 1 if c.pooling == "cls" else 0
        self.encoder = Stack(c.vocab_size, c.max_len + prefix, c.n_layer, c.n_head, c.n_embd,
                             d_ff=c.n_inner or 4 * c.n_embd, norm_first=c.norm_first, activation=c.activation,
                             positional=c.positional, bias=c.bias, scale=math.sqrt(c.n_embd))
        self.classifier = nn.Linear(c.n_embd, c.n_classes)
        self.links = Links()
        self.encoder.link(self.links, "encoder", PAPER_NAMES)
        self.links.add_layer(self.classifier, "classifier")

    def forward(self, ids):
        c = self.config
        if c.pooling == "cls":
            ids = torch.cat([torch.full((ids.shape[0], 1), c.cls_id), ids], dim=1)
        padding = ids == c.pad_id
        h = self.encoder(ids, padding, causal=False)
        if c.pooling == "cls":
            pooled = h[:, 0]
        else:
            real = (~padding)[:, :, None].to(h.dtype)
            pooled = (h * real).sum(dim=1) / real.sum(dim=1)
        return self.classifier(pooled)


class ReferenceSeq2Seq(Reference):
    """The paper's encoder-decoder: memory = encoder(src); logits = decoder(tgt_in, memory) Gᵀ, with
    G the target embedding (tied, unscaled: paper, 3.4) or a matrix of its own."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        stack = dict(n_head=c.n_head, n_embd=c.n_embd, d_ff=c.n_inner or 4 * c.n_embd, norm_first=c.norm_first,
                     activation=c.activation, positional=c.positional, bias=c.bias, scale=math.sqrt(c.n_embd))
        self.encoder = Stack(c.src_vocab_size, c.max_src_len, c.n_encoder_layer, **stack)
        self.decoder = Stack(c.tgt_vocab_size, c.max_tgt_len, c.n_decoder_layer, decoder=True, **stack)
        self.generator = None if c.tie_weights else nn.Linear(c.n_embd, c.tgt_vocab_size, bias=False)
        self.links = Links()
        self.encoder.link(self.links, "encoder", PAPER_NAMES)
        self.decoder.link(self.links, "decoder", PAPER_NAMES)
        if self.generator is not None:
            self.links.add(self.generator.weight, "generator.weight")

    def forward(self, src, tgt_in):
        pad = self.config.pad_id
        src_padding = src == pad
        memory = self.encoder(src, src_padding, causal=False)
        h = self.decoder(tgt_in, tgt_in == pad, causal=True, memory=memory, memory_padding=src_padding)
        weight = self.decoder.embed.weight if self.generator is None else self.generator.weight
        return h @ weight.T
