"""The loss: where a model's backward pass starts.

    CrossEntropy   loss = mean over counted rows of -log softmax(logits)[target]  (label smoothing optional)

A loss keeps a contract of its own beside the layers' (nn/layers.py): forward(logits, targets)
returns a number, and backward() takes nothing and returns dL/dlogits, the first gradient of the
backward pass.

Softmax and cross-entropy are differentiated together: with p = softmax(z) and the target
distribution q (one-hot, or smoothed), dL/dz = p - q per row, so backward never builds the
softmax Jacobian.
"""
from .. import kernels as K
from .layers import Layer


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
