"""Output heads and their loss.

    CrossEntropy   loss = mean over counted rows of -log softmax(logits)[target]  (label smoothing optional)
    LMHead         logits = h Wᵀ, then CrossEntropy: the language-model head of GPT and of the
                   encoder-decoder, W the token embedding (tied) or a matrix of its own

Softmax and cross-entropy are differentiated together: with p = softmax(z) and the target
distribution q (one-hot, or smoothed), dL/dz = p - q per row, so backward never builds the
softmax Jacobian.
"""
from .. import kernels as K
from ..kernels.matmul import matmul
from .layers import Layer, weight_to_decode


class CrossEntropy(Layer):
    """Mean softmax cross-entropy over the rows whose target is not `ignore_index`."""

    def __init__(self, ignore_index=-1, label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, logits, targets):
        """logits (N, V), targets (N,) int64 -> the mean loss (a float)."""
        N, V = logits.shape
        self.targets = targets
        self.counted = K.count_targets(targets, self.ignore_index)  # the loss is the mean over these rows
        losses = self.buffer("losses", (N,), logits.dtype)
        self.probs = self.buffer("probs", (N, V), logits.dtype)  # softmax, kept for backward
        return K.cross_entropy_forward(losses, self.probs, logits, targets, self.ignore_index, self.label_smoothing)

    def backward(self):
        """dL/dlogits (N, V), a buffer of this layer: (p - q) / n_counted on counted rows, 0 elsewhere."""
        dlogits = self.zeros("dlogits", self.probs.shape, self.probs.dtype)
        if self.counted:  # loss = (1 / counted) sum of counted rows' losses
            K.cross_entropy_backward(dlogits, self.probs, self.targets, self.ignore_index, self.label_smoothing,
                                     1.0 / self.counted)
        return dlogits


class LMHead(Layer):
    """logits = h Wᵀ with W (V, C) and no bias, and the cross-entropy of those logits.

    Tied to the token embedding, W is that embedding's parameter: the head's weight gradient then
    lands in the embedding's gradient, which the embedding's own backward also adds into.
    """

    def __init__(self, weight, ignore_index=-1, label_smoothing=0.0):
        super().__init__()
        self.weight = weight
        self.loss = CrossEntropy(ignore_index, label_smoothing)
        self.decode_weight = None  # a narrower copy of W while a generation runs (layers.Linear)

    def forward(self, h, targets=None):
        """h (N, C); targets None or (N,) int64. Returns (logits (N, V), loss or None)."""
        self.h = h  # backward needs the input for dL/dW
        # "No bias" is an empty array rather than None, so that these products share the one
        # compiled matmul that the linear layers use.
        self.no_bias = self.buffer("no_bias", (0,), h.dtype)
        W = self.weight.data
        logits = self.buffer("logits", (h.shape[0], W.shape[0]), h.dtype)
        matmul(logits, a=h, a_transposed=False, b=W, b_transposed=True, bias=self.no_bias, accumulate=False)
        return logits, None if targets is None else self.loss.forward(logits, targets)

    def decode(self, h):
        """Generation: h (B, C), one position per sequence -> logits (B, V), a buffer of this layer;
        a matrix-vector product, at memory speed (W is the largest matrix of a GPT)."""
        logits = self.buffer("decode_logits", (h.shape[0], self.weight.shape[0]), h.dtype)
        K.matvec(logits, h, weight_to_decode(self), self.buffer("no_bias", (0,), h.dtype), False, False)
        return logits

    def backward(self):
        """Returns dL/dh (N, C), a buffer of this layer; accumulates dL/dW into W's gradient."""
        dlogits = self.loss.backward()
        W = self.weight
        dh = self.buffer("dh", self.h.shape, self.h.dtype)
        # logits = h Wᵀ:  dL/dh = dlogits W (overwrites dh),  dL/dW += dlogitsᵀ h
        matmul(dh, a=dlogits, a_transposed=False, b=W.data, b_transposed=False, bias=self.no_bias, accumulate=False)
        matmul(W.grad, a=dlogits, a_transposed=True, b=self.h, b_transposed=False, bias=self.no_bias,
               accumulate=True)
        return dh
