"""Adam and AdamW (with optional AMSGrad), matching ``torch.optim.Adam`` / ``AdamW``.

Per parameter, with step count ``t``::

    g = grad (+ weight_decay * p for Adam)        p *= 1 - lr * weight_decay (AdamW)
    m = lerp(m, g, 1 - beta1)
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v)                         (amsgrad)
    denom = sqrt(v or v_max) / sqrt(1 - beta2 ** t) + eps
    p -= lr / (1 - beta1 ** t) * m / denom
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from ._foreach import ops_for
from .optimizer import Optimizer, OptimizerError, _check_nonneg

__all__ = ["Adam", "AdamW"]


def adam_update(ops: Any, p: Tensor, grad: Tensor, state: dict[str, Any], lr: float, beta1: float, beta2: float,
                eps: float, weight_decay: float, amsgrad: bool, maximize: bool, decoupled: bool) -> tuple[Tensor, Tensor, float]:
    """Apply one Adam(W) update to ``p`` in place.

    Returns ``(exp_avg, denom, bias_correction1)``: the update was
    ``p -= lr / bias_correction1 * exp_avg / denom`` (the hypergradient optimizers use it).
    """
    g = ops.neg(grad) if maximize else grad
    if not state:
        state["step"] = 0
        state["exp_avg"] = ops.zeros_like(p)
        state["exp_avg_sq"] = ops.zeros_like(p)
        if amsgrad:
            state["max_exp_avg_sq"] = ops.zeros_like(p)
    state["step"] += 1
    step = state["step"]
    if weight_decay != 0:
        if decoupled:
            ops.mul_(p, 1 - lr * weight_decay)
        else:
            g = ops.add_scaled(g, p, weight_decay)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    ops.lerp_(exp_avg, g, 1 - beta1)
    ops.mul_(exp_avg_sq, beta2)
    ops.addcmul_(exp_avg_sq, g, g, 1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    if amsgrad:
        max_sq = state.get("max_exp_avg_sq")
        if max_sq is None:  # amsgrad switched on after some steps
            max_sq = state["max_exp_avg_sq"] = ops.clone(exp_avg_sq)
        ops.maximum_(max_sq, exp_avg_sq)
        denom = ops.sqrt_scale_shift(max_sq, bias_correction2_sqrt, eps)
    else:
        denom = ops.sqrt_scale_shift(exp_avg_sq, bias_correction2_sqrt, eps)
    ops.addcdiv_(p, exp_avg, denom, -step_size)
    return exp_avg, denom, bias_correction1


class Adam(Optimizer):
    """Adam (Kingma & Ba), optionally AMSGrad; ``weight_decay`` is an L2 term added to the gradient.

    Matches ``torch.optim.Adam`` update for update.

    Parameters
    ----------
    params : iterable
        Tensors or parameter-group dicts.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 0
    amsgrad : bool, default False
        Use the running maximum of the second moment (Reddi et al.).
    maximize : bool, default False

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = st.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.9, -0.9]
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        name = type(self).__name__
        betas = group["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise OptimizerError(f"{name}: betas must be a pair (beta1, beta2); got {betas!r}")
        for i, b in enumerate(betas):
            if not isinstance(b, int | float) or not 0.0 <= b < 1.0:
                raise OptimizerError(f"{name}: betas[{i}] must be in [0, 1); got {b!r}")
        group["betas"] = (float(betas[0]), float(betas[1]))
        _check_nonneg("eps", group["eps"], name)
        _check_nonneg("weight_decay", group["weight_decay"], name)

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adam update of every parameter with a gradient."""
        loss = self._eval_closure(closure)
        decoupled = self._decoupled
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = group["betas"]
            eps, wd, amsgrad, maximize = group["eps"], group["weight_decay"], group["amsgrad"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {}
                adam_update(ops_for(p), p, p.grad, state, lr, beta1, beta2, eps, wd, amsgrad, maximize, decoupled)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` each step.

    Matches ``torch.optim.AdamW``; note its default ``weight_decay`` is 0.01.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.tensor([1.0], requires_grad=True)
    >>> opt = st.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * 0.0).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.95
    """

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
