"""Every optimizer class against torch.optim: the same parameters, the same gradients, several steps.

How each of this project's hyperparameters maps onto torch's:
    SGD       torch.optim.SGD(lr), no momentum
    Momentum  torch.optim.SGD(lr, momentum, dampening=0, nesterov=False). The project keeps lr inside
              the velocity (v <- mu v + lr g; w <- w - v), torch outside (b <- mu b + g; w <- w - lr b):
              v = lr b while lr is constant, so the two agree only at a constant lr, which is what
              is compared. Under a schedule the project's form is the one documented (Sutskever et
              al. 2013): a change of lr applies to new gradients only.
    AdaGrad   torch.optim.Adagrad(lr, eps, lr_decay=0, initial_accumulator_value=0): eps outside the sqrt
    RMSprop   torch.optim.RMSprop(lr, alpha, eps, momentum=0, centered=False): eps outside the sqrt
    Adam      torch.optim.Adam(lr, betas, eps, weight_decay=0): both bias corrections, eps added to
              sqrt(v / (1 - beta2^t)), as in Kingma & Ba
    AdamW     torch.optim.AdamW with weight_decay on the parameters declared to decay and 0 on the others
              (two parameter groups; tests/test_optimizer_runs.py checks which those are: the
              matrices and embeddings): w <- w (1 - lr wd) before the Adam update

The learning rate changes every step (a schedule sets `lr` before each step), except for Momentum.
Gradients mix scales 1e-3, 1 and 10, so that eps and the moments' decay rates matter.

Tolerance: |ours - torch| <= STEPS * eps(dtype) * the largest |w| of the tensor. Each step can round
w to a neighbouring value (an ulp of w) and the two compute the update in another order (a few
ulps of an update of size lr, far below an ulp of w), so the difference grows at most by about
an ulp of the weights per step.
"""
import numpy as np
import pytest

pytestmark = pytest.mark.interop
torch = pytest.importorskip("torch")

from transformer_jit import GPT, GPTConfig  # noqa: E402
from transformer_jit.train.optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop  # noqa: E402

STEPS = 10
LR = 0.01
BETAS, EPS, ALPHA, MOMENTUM, WEIGHT_DECAY = (0.8, 0.95), 1e-6, 0.9, 0.8, 0.5


# name: (the project's optimizer, torch's with the matching settings, whether lr may change)
OPTIMIZERS = {
    "sgd": (lambda model: SGD(model, LR),
            lambda groups: torch.optim.SGD(groups, LR, foreach=False), True),
    "momentum": (lambda model: Momentum(model, LR, momentum=MOMENTUM),
                 lambda groups: torch.optim.SGD(groups, LR, momentum=MOMENTUM, dampening=0, nesterov=False,
                                                foreach=False), False),
    "adagrad": (lambda model: AdaGrad(model, LR, eps=EPS),
                lambda groups: torch.optim.Adagrad(groups, LR, lr_decay=0, initial_accumulator_value=0, eps=EPS,
                                                   foreach=False), True),
    "rmsprop": (lambda model: RMSprop(model, LR, alpha=ALPHA, eps=EPS),
                lambda groups: torch.optim.RMSprop(groups, LR, alpha=ALPHA, eps=EPS, momentum=0, centered=False,
                                                   foreach=False), True),
    "adam": (lambda model: Adam(model, LR, betas=BETAS, eps=EPS),
             lambda groups: torch.optim.Adam(groups, LR, betas=BETAS, eps=EPS, weight_decay=0, foreach=False), True),
    "adamw": (lambda model: AdamW(model, LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY),
              lambda groups: torch.optim.AdamW(groups, LR, betas=BETAS, eps=EPS, foreach=False), True),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch(name, dtype):
    ours_for, theirs_for, lr_may_change = OPTIMIZERS[name]
    rng = np.random.default_rng(5)
    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8), dtype=dtype)
    model.params[:] = rng.normal(0.0, 1.0, model.params.shape)
    views = {n: p for n, p in model.store.params.items()}
    weights = {n: torch.tensor(p.data) for n, p in views.items()}  # copies
    if name == "adamw":
        groups = [{"params": [weights[n] for n, p in views.items() if p.decay], "weight_decay": WEIGHT_DECAY},
                  {"params": [weights[n] for n, p in views.items() if not p.decay], "weight_decay": 0.0}]
    else:
        groups = [{"params": list(weights.values())}]
    ours, theirs = ours_for(model), theirs_for(groups)
    for step in range(STEPS):
        scales = rng.choice([1e-3, 1.0, 10.0], model.grads.shape)
        model.grads[:] = rng.normal(0.0, 1.0, model.grads.shape) * scales
        for n, p in views.items():
            weights[n].grad = torch.tensor(p.grad)
        lr = LR * (1 + step) / STEPS if lr_may_change else LR
        ours.lr = lr
        for group in theirs.param_groups:
            group["lr"] = lr
        ours.step()
        theirs.step()
    for n, p in views.items():
        tolerance = STEPS * np.finfo(dtype).eps * np.abs(p.data).max()
        error = np.abs(p.data - weights[n].numpy()).max()
        assert error <= tolerance, f"{name} {n}: off by {error:.3g}, more than {tolerance:.3g}"


def test_default_hyperparameters_are_torchs():
    """The defaults `--optimizer` runs with (only lr, betas and weight decay are options) are torch's,
    except Momentum's 0.9, where torch's SGD has no momentum by default."""
    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8))
    p = [torch.zeros(1)]
    adagrad, rmsprop, adamw = AdaGrad(model, LR), RMSprop(model, LR), AdamW(model, LR)
    assert adagrad.eps == torch.optim.Adagrad(p).defaults["eps"]
    assert (rmsprop.alpha, rmsprop.eps) == (torch.optim.RMSprop(p).defaults["alpha"],
                                            torch.optim.RMSprop(p).defaults["eps"])
    torch_adamw = torch.optim.AdamW(p).defaults
    assert ((adamw.beta1, adamw.beta2), adamw.eps, adamw.weight_decay) == (
        torch_adamw["betas"], torch_adamw["eps"], torch_adamw["weight_decay"])
    adam = Adam(model, LR)
    assert ((adam.beta1, adam.beta2), adam.eps) == (torch.optim.Adam(p).defaults["betas"],
                                                    torch.optim.Adam(p).defaults["eps"])
    assert Momentum(model, LR).momentum == 0.9
