"""Optimizers that learn their own learning rate by hypergradient descent (Baydin et al., 2018).

An update ``p_t = p_{t-1} - lr * d_{t-1}`` makes ``d f(p_t) / d lr = -<g_t, d_{t-1}>``,
where ``g_t`` is the next gradient. Descending on it gives the rule used here, once per
parameter group before each update::

    lr_t = lr_{t-1} + hyper_lr * <g_t, d_{t-1}>

with ``d`` the previous update direction: the (momentum) gradient for
:class:`HyperSGD` (SGD-HD), and Adam's bias-corrected ``m / (sqrt(v) + eps)`` for
:class:`HyperAdam` (Adam-HD). The rate grows while successive steps agree and shrinks
when they start to oscillate. Each group keeps its rates in ``group["lr_history"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..autograd.grad_mode import no_grad
from ._foreach import ops_for
from .adam import Adam, adam_update
from .optimizer import Optimizer, _check_nonneg
from .sgd import SGD, sgd_update

__all__ = ["HyperSGD", "HyperAdam"]


class _Hyper:
    """What the two hypergradient optimizers share: the lr rule and its history."""

    param_groups: list[dict[str, Any]]
    state: dict[Any, dict[str, Any]]

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)  # type: ignore[misc]  # the optimizer this is mixed into
        _check_nonneg("hyper_lr", group["hyper_lr"], type(self).__name__)
        _check_nonneg("min_lr", group["min_lr"], type(self).__name__)

    def _hyper_update_lr(self, group: dict[str, Any]) -> float:
        """Apply ``lr += hyper_lr * <g_t, d_{t-1}>`` for one group; returns the lr to use."""
        lr = float(group["lr"])
        h = 0.0
        seen = False
        for p in group["params"]:
            st = self.state.get(p)
            if p.grad is None or not st or "hyper_direction" not in st:
                continue
            g = self._effective_grad(p, group)
            h += ops_for(p).dot(g, st["hyper_direction"])
            seen = True
        if seen:
            lr = max(lr + group["hyper_lr"] * h, group["min_lr"])
            group["hypergrad"] = -h  # d loss / d lr
        group["lr"] = lr
        group.setdefault("lr_history", []).append(lr)
        return lr

    @staticmethod
    def _effective_grad(p: Any, group: dict[str, Any]) -> Any:
        """The gradient of the objective the steps descend (with the L2 term, sign for maximize)."""
        ops = ops_for(p)
        g = ops.neg(p.grad) if group.get("maximize") else p.grad
        if group.get("weight_decay", 0) != 0:
            g = ops.add_scaled(g, p, group["weight_decay"])
        return g

    @property
    def lr_history(self) -> list[float]:
        """The learning rate used at each step so far (first parameter group)."""
        return list(self.param_groups[0].get("lr_history", []))


class HyperSGD(_Hyper, SGD):
    """SGD whose learning rate adapts online by hypergradient descent (SGD-HD).

    Parameters
    ----------
    params : iterable
        Tensors or parameter-group dicts.
    lr : float, default 1e-3
        The initial learning rate.
    hyper_lr : float, default 1e-3
        The hypergradient step size (``beta`` in the paper).
    momentum, dampening, weight_decay, nesterov, maximize
        As in :class:`~spiraltorch_nb.optim.SGD`; with momentum the direction ``d`` is
        the momentum update.
    min_lr : float, default 0
        The learning rate never goes below this.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.tensor([4.0], requires_grad=True)
    >>> opt = st.optim.HyperSGD([w], lr=0.01, hyper_lr=0.01)
    >>> for _ in range(5):
    ...     opt.zero_grad(); (w * w).sum().backward(); opt.step()
    >>> opt.lr_history[-1] > opt.lr_history[0]   # steps agreed: the rate grew
    True
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, hyper_lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False, min_lr: float = 0.0) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, hyper_lr=hyper_lr, min_lr=min_lr)
        Optimizer.__init__(self, params, defaults)

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Adapt each group's lr from the last two gradients, then take an SGD step with it."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = self._hyper_update_lr(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                ops = ops_for(p)
                state = self.state.setdefault(p, {})
                d = sgd_update(ops, p, p.grad, state, lr, group["momentum"], group["dampening"],
                               group["weight_decay"], group["nesterov"], group["maximize"])
                state["hyper_direction"] = ops.clone(d)
        return loss


class HyperAdam(_Hyper, Adam):
    """Adam whose learning rate adapts online by hypergradient descent (Adam-HD).

    Parameters
    ----------
    params : iterable
        Tensors or parameter-group dicts.
    lr : float, default 1e-3
        The initial learning rate.
    hyper_lr : float, default 1e-7
        The hypergradient step size; the paper uses 1e-7 for Adam-HD. The rate changes
        by ``hyper_lr * <g, d>``, so scale it with the size of the model's gradients.
    betas, eps, weight_decay, amsgrad, maximize
        As in :class:`~spiraltorch_nb.optim.Adam` (L2 weight decay).
    min_lr : float, default 0
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, hyper_lr: float = 1e-7,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, *, maximize: bool = False, min_lr: float = 0.0) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, hyper_lr=hyper_lr, min_lr=min_lr)
        Optimizer.__init__(self, params, defaults)

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Adapt each group's lr against the previous Adam direction, then take an Adam step."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = self._hyper_update_lr(group)
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                ops = ops_for(p)
                state = self.state.setdefault(p, {})
                exp_avg, denom, bias_correction1 = adam_update(
                    ops, p, p.grad, state, lr, beta1, beta2, group["eps"], group["weight_decay"],
                    group["amsgrad"], group["maximize"], False)
                # the update was p -= lr / bc1 * m / denom, so the direction is m / denom / bc1
                state["hyper_direction"] = exp_avg / denom / bias_correction1
        return loss
