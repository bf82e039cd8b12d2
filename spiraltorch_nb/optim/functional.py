"""Differentiable optimizer steps: new parameters as functions of old ones and hyperparameters.

Unlike the optimizers, these functions change nothing in place. They are written with
Tensor operations, so with gradients from ``st.grad(loss, params, create_graph=True)``
and a learning rate (or weight decay) that is a tensor requiring grad, the whole
unrolled training run is on the tape, and the gradient of a validation loss with
respect to the hyperparameter comes out of one more ``st.grad`` (the "hypergrad tape";
see ``docs/hypergradients.md``).

>>> import spiraltorch_nb as st
>>> from spiraltorch_nb.optim import functional as OF
>>> w = st.tensor([1.0, 2.0], dtype=st.float64, requires_grad=True)
>>> lr = st.tensor(0.1, dtype=st.float64, requires_grad=True)
>>> grads = st.grad((w * w).sum(), [w], create_graph=True)
>>> (w1,) = OF.sgd_step([w], grads, lr)
>>> val = (w1 * w1).sum()              # = sum((1 - 2 lr)^2 w^2)
>>> round(st.grad(val, lr)[0].item(), 6)  # = -4 (1 - 2 lr) sum(w^2)
-16.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ops.creation import zeros_like
from ..tensor import Tensor
from .optimizer import OptimizerError

__all__ = ["sgd_step", "adam_step", "AdamState"]


def _check(params: Sequence[Tensor], grads: Sequence[Any], fn: str) -> tuple[list[Tensor], list[Any]]:
    params, grads = list(params), list(grads)
    if len(params) != len(grads):
        raise OptimizerError(f"{fn}: got {len(params)} parameters but {len(grads)} gradients; pass one gradient "
                             "(or None) per parameter, e.g. st.grad(loss, params, create_graph=True)")
    return params, grads


def sgd_step(params: Sequence[Tensor], grads: Sequence[Tensor | None], lr: float | Tensor, *,
             momentum: float | Tensor = 0.0, dampening: float = 0.0, nesterov: bool = False,
             weight_decay: float | Tensor = 0.0, momentum_buffers: list[Tensor | None] | None = None,
             maximize: bool = False) -> list[Tensor]:
    """One SGD step in functional form: returns the new parameters (torch.optim.SGD's formula).

    Parameters
    ----------
    params, grads : sequences of Tensor
        Current parameters and their gradients (None: the parameter is returned as is).
    lr, momentum, weight_decay : float or Tensor
        Tensors that require grad make the result differentiable in them.
    dampening : float, default 0
    nesterov : bool, default False
    momentum_buffers : list, optional
        Needed when ``momentum != 0``: one entry per parameter, None at the first step.
        The list is updated in place with the new (differentiable) buffers, so the same
        list carries the momentum through an unrolled loop.
    maximize : bool, default False

    Returns
    -------
    list of Tensor
        ``p - lr * d`` for each parameter, where ``d`` is the (momentum) direction.
    """
    params, grads = _check(params, grads, "sgd_step")
    use_momentum = isinstance(momentum, Tensor) or momentum != 0
    if use_momentum and momentum_buffers is None:
        raise OptimizerError("sgd_step: momentum needs momentum_buffers, a list with one entry per parameter "
                             "(start with [None] * len(params)) that carries the buffers between steps")
    if use_momentum and len(momentum_buffers) != len(params):  # type: ignore[arg-type]
        raise OptimizerError(f"sgd_step: momentum_buffers has {len(momentum_buffers)} entries for "  # type: ignore[arg-type]
                             f"{len(params)} parameters")
    use_wd = isinstance(weight_decay, Tensor) or weight_decay != 0
    out = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if g is None:
            out.append(p)
            continue
        if maximize:
            g = -g
        if use_wd:
            g = g + weight_decay * p
        if use_momentum:
            buf = momentum_buffers[i]  # type: ignore[index]
            buf = g if buf is None else buf * momentum + g * (1 - dampening)
            momentum_buffers[i] = buf  # type: ignore[index]
            g = g + momentum * buf if nesterov else buf
        out.append(p - lr * g)
    return out


@dataclass
class AdamState:
    """Moment estimates carried between :func:`adam_step` calls (one entry per parameter).

    Build it with :meth:`for_params`; ``step`` counts the steps taken.
    """

    exp_avgs: list[Any] = field(default_factory=list)
    exp_avg_sqs: list[Any] = field(default_factory=list)
    max_exp_avg_sqs: list[Any] = field(default_factory=list)
    step: int = 0

    @classmethod
    def for_params(cls, params: Sequence[Tensor]) -> AdamState:
        """Zero moments shaped like ``params``."""
        return cls([zeros_like(p.detach()) for p in params], [zeros_like(p.detach()) for p in params],
                   [zeros_like(p.detach()) for p in params], 0)


def adam_step(params: Sequence[Tensor], grads: Sequence[Tensor | None], state: AdamState, lr: float | Tensor, *,
              betas: tuple[Any, Any] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float | Tensor = 0.0,
              decoupled_weight_decay: bool = False, amsgrad: bool = False,
              maximize: bool = False) -> list[Tensor]:
    """One Adam (or AdamW) step in functional form: returns the new parameters.

    ``state`` (an :class:`AdamState`) is updated in place with the new moments and step
    count. ``lr``, ``weight_decay`` and the betas may be tensors requiring grad.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.tensor([1.0], dtype=st.float64, requires_grad=True)
    >>> state = AdamState.for_params([w])
    >>> (w1,) = adam_step([w], st.grad((w * w).sum(), [w], create_graph=True), state, 0.1)
    >>> round(w1.item(), 6), state.step
    (0.9, 1)
    """
    params, grads = _check(params, grads, "adam_step")
    if len(state.exp_avgs) != len(params):
        raise OptimizerError(f"adam_step: the state holds {len(state.exp_avgs)} moment estimates for {len(params)} "
                             "parameters; build it with AdamState.for_params(params)")
    beta1, beta2 = betas
    state.step += 1
    t = state.step
    use_wd = isinstance(weight_decay, Tensor) or weight_decay != 0
    bias_correction1 = 1 - beta1 ** t
    bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
    step_size = lr / bias_correction1
    out = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if g is None:
            out.append(p)
            continue
        if maximize:
            g = -g
        if use_wd:
            if decoupled_weight_decay:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        m = state.exp_avgs[i] + (g - state.exp_avgs[i]) * (1 - beta1)
        v = state.exp_avg_sqs[i] * beta2 + g * g * (1 - beta2)
        state.exp_avgs[i], state.exp_avg_sqs[i] = m, v
        if amsgrad:
            v = state.max_exp_avg_sqs[i].maximum(v)
            state.max_exp_avg_sqs[i] = v
        denom = v.sqrt() / bias_correction2_sqrt + eps
        out.append(p - step_size * m / denom)
    return out
