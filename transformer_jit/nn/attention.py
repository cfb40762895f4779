"""Multi-head attention layers: self-attention (GPT, encoder, decoder) and cross-attention (decoder).

Self-attention, one fused QKV projection:
    qkv = x W_attnᵀ + b_attn                       (B, T, 3C), split into q, k, v views
    head h: A = q_h k_hᵀ / sqrt(hs), P = softmax(A) (masked keys skipped), y_h = P v_h
    out = y W_projᵀ + b_proj                       (B, T, C)

Cross-attention ("encoder-decoder attention"): the same, except that the queries come from the
decoder stream x (B, T, C) and the keys and values from the encoder's output, the memory m
(B, S, C), so the projection is split in two:
    q  = x W_qᵀ + b_q                              (B, T, C)
    kv = m W_kvᵀ + b_kv                            (B, S, 2C), split into k, v views

Parameter names follow nanoGPT: `c_attn` is the fused projection, `c_proj` the output projection;
cross-attention's halves are `c_q` and `c_kv`. Both layers keep the probabilities P of their last
forward in `.probs` (B, NH, T, S): the backward pass needs them, and they are the attention maps.
"""
from .. import kernels as K
from .checks import head_size
from .layers import Layer, Linear


class SelfAttention(Layer):
    def __init__(self, store, name, n_embd, n_head, causal, bias=True, proj_std=0.02, std=0.02):
        super().__init__()
        head_size(n_embd, n_head, "SelfAttention")
        self.n_embd, self.n_head, self.causal = n_embd, n_head, causal
        self.c_attn = Linear(store, f"{name}.c_attn", n_embd, 3 * n_embd, bias, std=std)
        self.c_proj = Linear(store, f"{name}.c_proj", n_embd, n_embd, bias, std=proj_std)

    def forward(self, x, key_mask=None):
        """x (B, T, C); key_mask None or bool (B, T), True where a key may be attended."""
        B, T, C = x.shape
        qkv = self.c_attn.forward(x.reshape(B * T, C)).reshape(B, T, 3 * C)
        self.q, self.k, self.v = qkv[:, :, :C], qkv[:, :, C:2 * C], qkv[:, :, 2 * C:]
        self.key_mask = key_mask
        y = self.buffer("y", (B, T, C), x.dtype)
        self.probs = self.buffer("probs", (B, self.n_head, T, T), x.dtype)  # kept for backward
        K.attention_forward(y, self.probs, self.q, self.k, self.v, key_mask, self.n_head, self.causal)
        return self.c_proj.forward(y.reshape(B * T, C)).reshape(B, T, C)

    def backward(self, dout, dinp, accumulate=True):
        B, T, C = dout.shape
        # temporaries that each receive one gradient: overwritten, so not zeroed first
        dy = self.scratch("dy", (B * T, C), dout.dtype, zero=False)
        self.c_proj.backward(dout.reshape(B * T, C), dy, accumulate=False)
        dqkv = self.scratch("dqkv", (B, T, 3 * C), dout.dtype, zero=False)
        K.attention_backward(dqkv[:, :, :C], dqkv[:, :, C:2 * C], dqkv[:, :, 2 * C:], dy.reshape(B, T, C),
                             self.probs, self.q, self.k, self.v, self.key_mask, self.n_head, self.causal, False)
        self.c_attn.backward(dqkv.reshape(B * T, 3 * C), dinp.reshape(B * T, C), accumulate)


class CrossAttention(Layer):
    def __init__(self, store, name, n_embd, n_head, bias=True, proj_std=0.02, std=0.02):
        super().__init__()
        head_size(n_embd, n_head, "CrossAttention")
        self.n_embd, self.n_head = n_embd, n_head
        self.c_q = Linear(store, f"{name}.c_q", n_embd, n_embd, bias, std=std)
        self.c_kv = Linear(store, f"{name}.c_kv", n_embd, 2 * n_embd, bias, std=std)
        self.c_proj = Linear(store, f"{name}.c_proj", n_embd, n_embd, bias, std=proj_std)

    def forward(self, x, memory, memory_mask=None):
        """x (B, T, C) queries; memory (B, S, C) keys and values; memory_mask None or bool (B, S),
        True where a source position is a real token (padding is never attended)."""
        B, T, C = x.shape
        S = memory.shape[1]
        self.q = self.c_q.forward(x.reshape(B * T, C)).reshape(B, T, C)
        kv = self.c_kv.forward(memory.reshape(B * S, C)).reshape(B, S, 2 * C)
        self.k, self.v = kv[:, :, :C], kv[:, :, C:]
        self.memory_mask = memory_mask
        y = self.buffer("y", (B, T, C), x.dtype)
        self.probs = self.buffer("probs", (B, self.n_head, T, S), x.dtype)  # kept for backward
        K.attention_forward(y, self.probs, self.q, self.k, self.v, memory_mask, self.n_head, False)
        return self.c_proj.forward(y.reshape(B * T, C)).reshape(B, T, C)

    def backward(self, dout, dinp, dmemory, accumulate=True):
        """dL/dx into dinp (B, T, C), accumulated unless `accumulate` is False, and dL/dmemory
        accumulated into dmemory (B, S, C)."""
        B, T, C = dout.shape
        S = self.k.shape[1]
        dy = self.scratch("dy", (B * T, C), dout.dtype, zero=False)  # overwritten: no zeroing
        self.c_proj.backward(dout.reshape(B * T, C), dy, accumulate=False)
        dq = self.scratch("dq", (B, T, C), dout.dtype, zero=False)
        dkv = self.scratch("dkv", (B, S, 2 * C), dout.dtype, zero=False)
        K.attention_backward(dq, dkv[:, :, :C], dkv[:, :, C:], dy.reshape(B, T, C),
                             self.probs, self.q, self.k, self.v, self.memory_mask, self.n_head, False, False)
        self.c_q.backward(dq.reshape(B * T, C), dinp.reshape(B * T, C), accumulate)
        self.c_kv.backward(dkv.reshape(B * S, 2 * C), dmemory.reshape(B * S, C))

