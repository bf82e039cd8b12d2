"""Optimizers, learning-rate schedulers, gradient clipping and differentiable (hypergradient) steps.

Shaped like ``torch.optim``: ``opt = st.optim.AdamW(model.parameters(), lr=1e-3)``, then
``loss.backward(); opt.step(); opt.zero_grad()`` each batch. Updates happen in place
under ``st.no_grad()`` on the parameter objects, on whichever device they live.

>>> import spiraltorch_nb as st
>>> w = st.tensor([3.0], requires_grad=True)
>>> opt = st.optim.SGD([w], lr=0.25)
>>> for _ in range(3):
...     opt.zero_grad(); (w * w).sum().backward(); opt.step()
>>> w.item()
0.375
"""

from __future__ import annotations

from . import functional, lr_scheduler
from ._foreach import native_enabled, set_native_enabled
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_, grad_norm
from .hyper import HyperAdam, HyperSGD
from .lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LinearWarmup,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
    StepLR,
)
from .optimizer import Optimizer, OptimizerError, required
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "OptimizerError", "required", "SGD", "Adam", "AdamW", "RMSprop", "HyperSGD", "HyperAdam",
    "clip_grad_norm_", "clip_grad_value_", "grad_norm", "functional", "lr_scheduler", "LRScheduler", "StepLR",
    "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "ConstantLR", "LambdaLR", "SequentialLR",
    "ChainedScheduler", "LinearWarmup", "native_enabled", "set_native_enabled",
]
