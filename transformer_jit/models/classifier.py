"""A transformer encoder with a classification head.

    ids (B, T) --[CLS in front, if pooling == "cls"]--> encoder (padding masked) --> h (B, T', C)
    pooled = mean of h over the real (non-padding) positions      pooling == "mean"
           = h[:, 0], the classification token's final state     pooling == "cls"
    logits = pooled W_clsᵀ + b_cls                                (B, n_classes)
    loss   = mean over the batch of cross-entropy(softmax(logits), labels)

Padding never reaches the result: the encoder's attention skips padding keys, and pooling skips
padding positions, so padding a batch further leaves every sequence's logits unchanged.
"""
import numpy as np

from ..data.sequences import in_batches, pad_batch
from ..nn.checks import check_token_ids
from ..nn.classifier_head import ClassifierHead
from ..nn.model import Model
from ..nn.stack import TransformerEncoder, padding_mask
from .configs import ClassifierConfig


class EncoderClassifier(Model):
    def __init__(self, config, seed=0, dtype=np.float32, allocate=True):
        if not isinstance(config, ClassifierConfig):
            raise TypeError(f"EncoderClassifier needs a ClassifierConfig, got {type(config).__name__}")
        super().__init__(config, seed, dtype, allocate)
        c = config
        self.n_prefix = 1 if c.pooling == "cls" else 0  # the CLS token takes one position
        self.encoder = TransformerEncoder(self.store, "encoder", c.vocab_size, c.max_len + self.n_prefix, c.n_layer,
                                          c.n_head, c.n_embd, n_inner=c.n_inner, dropout=c.dropout, bias=c.bias,
                                          positional=c.positional, norm_first=c.norm_first, activation=c.activation,
                                          position_shift=c.position_shift, attn_dropout=c.attn_dropout)
        self.head = ClassifierHead(self.store, "classifier", c.n_embd, c.n_classes, c.label_smoothing)
        self.loss = self.head.loss
        self._build()

    def attention_layers(self):
        return self.encoder.attention_layers()

    def activation_floats(self, batch_size):
        """Floats a training step keeps for batches of batch_size at max_len (train/memory.py)."""
        T = self.config.max_len + 1  # room for the classification token
        return self.encoder.activation_floats(batch_size * T, T)

    # -- inputs ------------------------------------------------------------------------------------
    def _prepare(self, ids):
        """Checked ids with the CLS token in front if needed, the attention key mask and the pooling mask."""
        c = self.config
        ids = check_token_ids("ids", ids, c.vocab_size)
        B, T = ids.shape
        if T > c.max_len:
            raise ValueError(f"sequence length {T} exceeds the model's max_len {c.max_len}")
        if self.n_prefix:
            ids = np.concatenate([np.full((B, 1), c.cls_id, dtype=np.int64), ids], axis=1)
        key_mask = padding_mask(ids, c.pad_id, self.buffer("key_mask", ids.shape, np.bool_))
        if c.pooling == "mean":
            pool_mask = key_mask
            empty = np.flatnonzero(~key_mask.any(axis=1))
            if empty.size:
                raise ValueError(f"ids rows {empty[:10].tolist()} hold only padding: mean pooling has nothing "
                                 f"to average (use pooling='cls' to classify empty sequences)")
        else:
            pool_mask = self.zeros("pool_mask", ids.shape, np.bool_)
            pool_mask[:, 0] = True  # the CLS position only
        return ids, key_mask, pool_mask

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, ids, labels=None):
        """ids (B, T) token ids, T <= max_len, padded with pad_id; labels (B,) ints in [0, n_classes).
        Returns (logits (B, n_classes), mean cross-entropy or None)."""
        ids, key_mask, pool_mask = self._prepare(ids)
        ctx = self.context(key_mask=key_mask)
        return self.head.forward(self.encoder.forward(ids, ctx), pool_mask, labels, ctx)

    def backward(self):
        """Accumulate dloss/dparams into `grads` (call `zero_grad()` first, once per step)."""
        self.encoder.backward(self.head.backward("ids"))

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, ids):
        """The most likely class of each sequence, (B,) int64, dropout off."""
        with self.evaluating():
            logits, _ = self.forward(ids)
        return np.argmax(logits, axis=1)


def classify(model, tok, texts, batch_size=256, progress=False):
    """Predicted class of each text, (n,) int64. A CLS token, if the model uses one, is its own
    business: it is added inside the model."""
    texts = list(texts)
    if not texts:
        raise ValueError("nothing to classify: no input texts")
    if model.config.pooling == "mean":
        for number, text in enumerate(texts, 1):
            if not text:
                raise ValueError(f"input {number} of {len(texts)} is empty: this classifier averages over the "
                                 f"tokens (mean pooling) and has nothing to average (one trained with --pooling cls "
                                 f"classifies empty texts)")
    preds = []
    for chunk in in_batches(texts, batch_size, "classifying", progress):
        try:
            ids = pad_batch([tok.encode(t) for t in chunk], min_len=1)  # empty texts alone: the CLS token
        except ValueError as e:
            raise ValueError(f"cannot classify: {e}") from None
        preds.append(model.predict(ids))
    return np.concatenate(preds)
