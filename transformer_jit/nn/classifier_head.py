"""The classification head of an encoder: pooling over positions, a linear layer, cross-entropy.

    pooled = mean of h (B, T, C) over the positions where pool_mask (B, T) is True      (B, C)
             (one position, the class token's, gives its final state itself)
    logits = pooled W_clsᵀ + b_cls                                                      (B, n_classes)
    loss   = mean over the batch of cross-entropy(softmax(logits), labels)

Backward, in reverse: dL/dlogits from the loss, then the linear layer's, then pooling's backward
spreads dL/dpooled over the pooled positions, each receiving its 1 / count share.
"""
from .. import kernels as K
from .checks import check_labels
from .layers import Layer, Linear
from .loss import CrossEntropy

NO_IGNORE = -1  # every label counts in the classification loss


class ClassifierHead(Layer):
    """`name` is the linear layer's (state-dict "{name}.weight", "{name}.bias")."""

    def __init__(self, store, name, n_embd, n_classes, label_smoothing=0.0):
        super().__init__()
        self.n_classes = n_classes
        self.linear = Linear(store, name, n_embd, n_classes)
        self.loss = CrossEntropy(NO_IGNORE, label_smoothing)
        self.labels = None

    def forward(self, h, pool_mask, labels, ctx):
        """h (B, T, C), pool_mask (B, T) bool, labels None or (B,) ints in [0, n_classes).
        Returns (logits (B, n_classes), mean cross-entropy or None)."""
        B, T, C = h.shape
        self.pool_mask = pool_mask
        pooled = self.buffer("pooled", (B, C), h.dtype)
        K.mean_pool_forward(pooled, h, pool_mask)
        logits = self.linear.forward(pooled, ctx)
        self.labels = None
        if labels is None:
            return logits, None
        self.labels = check_labels(labels, B, self.n_classes)
        return logits, self.loss.forward(logits, self.labels)

    def backward(self, what):
        """dL/dh (B, T, C), a buffer of this head, from the last forward given labels; `what` names
        the model's inputs in the error when there was none."""
        if self.labels is None:
            raise RuntimeError(f"backward() needs a forward({what}, labels) immediately before it")
        dtype = self.loss.probs.dtype
        B, T = self.pool_mask.shape
        dpooled = self.zeros("dpooled", (B, self.linear.in_features), dtype)
        self.linear.backward(self.loss.backward(), dpooled)
        dh = self.zeros("dh", (B, T, self.linear.in_features), dtype)  # mean_pool_backward accumulates
        K.mean_pool_backward(dh, dpooled, self.pool_mask)
        return dh
