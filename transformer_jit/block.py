"""The transformer block: pre-LayerNorm attention and MLP sub-layers, each with a residual connection.

    x1 = x  + dropout(attn(ln_1(x)))
    x2 = x1 + dropout(mlp(ln_2(x1)))          mlp(h) = c_proj(gelu(c_fc(h))), hidden width 4C

Backward, from dL/dx2:
    dL/dx1 = dL/dx2 + ln_2ᵀ mlpᵀ dL/dx2       (the residual passes the gradient through unchanged)
    dL/dx  = dL/dx1 + ln_1ᵀ attnᵀ dL/dx1
"""
import numpy as np

from . import kernels as K
from .attention import SelfAttention, residual_std
from .layers import GELU, Dropout, Layer, LayerNorm, Linear


class MLP(Layer):
    def __init__(self, store, name, n_embd, bias=True, proj_std=0.02, hidden=None):
        super().__init__()
        hidden = hidden or 4 * n_embd
        self.c_fc = Linear(store, f"{name}.c_fc", n_embd, hidden, bias)
        self.gelu = GELU()
        self.c_proj = Linear(store, f"{name}.c_proj", hidden, n_embd, bias, std=proj_std)

    def forward(self, x):  # (N, C) -> (N, C)
        return self.c_proj.forward(self.gelu.forward(self.c_fc.forward(x)))

    def backward(self, dout, dinp):
        dh = self.zeros("dh", self.gelu.x.shape, dout.dtype)
        self.c_proj.backward(dout, dh)
        dpre = self.zeros("dpre", self.gelu.x.shape, dout.dtype)
        self.gelu.backward(dh, dpre)
        self.c_fc.backward(dpre, dinp)


class Block(Layer):
    def __init__(self, store, name, n_embd, n_head, n_layer, causal, bias=True, dropout=0.0):
        super().__init__()
        std = residual_std(n_layer)
        self.ln_1 = LayerNorm(store, f"{name}.ln_1", n_embd, bias)
        self.attn = SelfAttention(store, f"{name}.attn", n_embd, n_head, causal, bias, proj_std=std)
        self.drop_1 = Dropout(dropout)
        self.ln_2 = LayerNorm(store, f"{name}.ln_2", n_embd, bias)
        self.mlp = MLP(store, f"{name}.mlp", n_embd, bias, proj_std=std)
        self.drop_2 = Dropout(dropout)

    def forward(self, x, key_mask=None, seeds=(None, None)):
        """x (B, T, C) -> (B, T, C). `seeds` are the two dropout seeds (None when not training)."""
        B, T, C = x.shape
        N = B * T
        h = self.attn.forward(self.ln_1.forward(x.reshape(N, C)).reshape(B, T, C), key_mask)
        h = self.drop_1.forward(h, seeds[0])
        x1 = self.buffer("x1", (B, T, C), x.dtype)
        K.residual_forward(x1.reshape(-1), x.reshape(-1), h.reshape(-1))
        h = self.drop_2.forward(self.mlp.forward(self.ln_2.forward(x1.reshape(N, C))), seeds[1])
        x2 = self.buffer("x2", (B, T, C), x.dtype)
        K.residual_forward(x2.reshape(-1), x1.reshape(-1), h.reshape(-1))
        return x2

    def backward(self, dout, dinp):
        B, T, C = dout.shape
        N = B * T
        # MLP branch: dx1 starts as the residual's copy of dout, the branch adds into it.
        dx1 = self.buffer("dx1", (B, T, C), dout.dtype)
        np.copyto(dx1, dout)
        dh = self.zeros("dh", (N, C), dout.dtype)
        self.drop_2.backward(dout.reshape(N, C), dh)
        dln = self.zeros("dln", (N, C), dout.dtype)
        self.mlp.backward(dh, dln)
        self.ln_2.backward(dln, dx1.reshape(N, C))
        # Attention branch: dinp gets the residual's dx1 and whatever the branch adds.
        K.residual_forward(dinp.reshape(-1), dinp.reshape(-1), dx1.reshape(-1))  # dinp += dx1
        dh = self.zeros("dh", (N, C), dout.dtype).reshape(B, T, C)
        self.drop_1.backward(dx1, dh)
        dln = self.zeros("dln", (N, C), dout.dtype).reshape(B, T, C)
        self.attn.backward(dh, dln)
        self.ln_1.backward(dln.reshape(N, C), dinp.reshape(N, C))
