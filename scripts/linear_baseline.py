"""A linear classifier on pixels (multinomial logistic regression), the baseline a vision transformer
must beat on the same images and splits as `transformer-jit train-vit --dataset NAME`.

    python scripts/linear_baseline.py                   # marks: near chance, the class is a relation
    python scripts/linear_baseline.py --dataset digits  # digits: a linear model does well on 8 x 8 digits

logits = x W + b over the normalised pixels x (what the ViT reads), trained full-batch with Adam on
the mean cross-entropy plus an L2 penalty, in NumPy; the weights of the best validation accuracy
are scored on the split train-vit scores.
"""
import argparse

import numpy as np

from transformer_jit.data.image_tasks import IMAGE_DATASETS, image_task
from transformer_jit.data.images import prepare_pixels
from transformer_jit.models.configs import IMAGE_MEAN, IMAGE_STD
from transformer_jit.train.recipes import vit_recipe


def features(images, prep):
    return prepare_pixels(images.images, prep, dtype=np.float64).reshape(len(images), -1)


def fit(x, y, n_classes, steps, lr, l2):
    """(W, b) after `steps` Adam steps on softmax cross-entropy + l2 |W|², and the path of (W, b)."""
    rng = np.random.default_rng(0)
    params = [rng.normal(0, 0.01, (x.shape[1], n_classes)), np.zeros(n_classes)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(n_classes)[y]
    for t in range(1, steps + 1):
        logits = x @ params[0] + params[1]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        dlogits = (p - onehot) / len(x)                   # d(mean cross-entropy)/d(logits)
        grads = [x.T @ dlogits + 2 * l2 * params[0], dlogits.sum(axis=0)]
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
        yield t, params


def accuracy(params, x, y):
    return float(np.mean(np.argmax(x @ params[0] + params[1], axis=1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--dataset", choices=IMAGE_DATASETS, default="marks")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--l2", type=float, default=1e-4)
    args = parser.parse_args()
    r = vit_recipe(args.dataset)
    spec = {**r["data"], "dataset": args.dataset, "seed": 0, "image_size": 0, "channels": 0, "path": "",
            "val_path": "", "augment": 0, "n_train": r["data"].get("n_train", 0), "n_test": r["data"].get("n_test", 0)}
    task = image_task(spec, IMAGE_MEAN, IMAGE_STD)
    prep = task.dataset.preprocessing
    (x, y), (xv, yv), (xt, yt) = [(features(s, prep), s.labels) for s in
                                  (task.dataset.examples("train"), task.dataset.examples("val"), task.test)]
    best = (-1.0, None)
    for step, params in fit(x, y, len(task.names), args.steps, args.lr, args.l2):
        if step % 100 == 0 or step == args.steps:
            val = accuracy(params, xv, yv)
            if val > best[0]:
                best = (val, [p.copy() for p in params], step)
    val, params, step = best
    scored = "the held-out test split" if task.test is not task.dataset.examples("val") else "the validation split"
    print(f"{args.dataset}: linear classifier on {x.shape[1]} pixels, {len(x):,} training images; best validation "
          f"accuracy {100 * val:.2f}% at step {step}, train {100 * accuracy(params, x, y):.2f}%")
    print(f"held-out accuracy: {100 * accuracy(params, xt, yt):.2f}% ({len(yt):,} images, {scored}); "
          f"chance {100 * np.bincount(yt).max() / len(yt):.2f}%")


if __name__ == "__main__":
    main()
