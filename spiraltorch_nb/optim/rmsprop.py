"""RMSprop (Hinton), optionally centered and with momentum, matching ``torch.optim.RMSprop``.

Per parameter::

    g = grad + weight_decay * p
    s = alpha * s + (1 - alpha) * g * g
    avg = sqrt(s - a * a) + eps  with a = lerp(a, g, 1 - alpha)   (centered)
    avg = sqrt(s) + eps                                             (otherwise)
    buf = momentum * buf + g / avg;  p -= lr * buf                  (momentum > 0)
    p -= lr * g / avg                                               (otherwise)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..autograd.grad_mode import no_grad
from ._foreach import ops_for
from .optimizer import Optimizer, _check_nonneg

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root mean square of recent gradients.

    Parameters
    ----------
    params : iterable
        Tensors or parameter-group dicts.
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average.
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
        Normalize by an estimate of the gradient's variance instead of its second moment.
    maximize : bool, default False

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.tensor([1.0], requires_grad=True)
    >>> opt = st.optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.9
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        for key in ("alpha", "eps", "weight_decay", "momentum"):
            _check_nonneg(key, group[key], "RMSprop")

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RMSprop update of every parameter with a gradient."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            alpha, eps, wd = group["alpha"], group["eps"], group["weight_decay"]
            momentum, centered, maximize = group["momentum"], group["centered"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                ops = ops_for(p)
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "square_avg": ops.zeros_like(p)}
                    if momentum > 0:
                        state["momentum_buffer"] = ops.zeros_like(p)
                    if centered:
                        state["grad_avg"] = ops.zeros_like(p)
                state["step"] += 1
                g = ops.neg(p.grad) if maximize else p.grad
                if wd != 0:
                    g = ops.add_scaled(g, p, wd)
                square_avg = state["square_avg"]
                ops.mul_(square_avg, alpha)
                ops.addcmul_(square_avg, g, g, 1 - alpha)
                if centered:
                    grad_avg = state.setdefault("grad_avg", ops.zeros_like(p))
                    ops.lerp_(grad_avg, g, 1 - alpha)
                    avg = ops.centered_root(square_avg, grad_avg, eps)
                else:
                    avg = ops.sqrt_scale_shift(square_avg, 1.0, eps)
                if momentum > 0:
                    buf = state.setdefault("momentum_buffer", ops.zeros_like(p))
                    ops.mul_(buf, momentum)
                    ops.addcdiv_(buf, g, avg, 1.0)
                    ops.axpy_(p, buf, -lr)
                else:
                    ops.addcdiv_(p, g, avg, -lr)
        return loss
