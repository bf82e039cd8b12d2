"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

The update is ``torch.optim.SGD``'s, step for step::

    g = grad + weight_decay * p
    buf = g                               (first step)
    buf = momentum * buf + (1 - dampening) * g
    d = g + momentum * buf  if nesterov else buf
    p -= lr * d
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from ._foreach import TensorOps, ops_for
from .optimizer import Optimizer, OptimizerError, _check_nonneg

__all__ = ["SGD"]


def sgd_update(ops: Any, p: Tensor, grad: Tensor, state: dict[str, Any], lr: float, momentum: float,
               dampening: float, weight_decay: float, nesterov: bool, maximize: bool) -> Tensor:
    """Apply one SGD update to ``p`` in place and return the direction ``d`` (``p -= lr * d``).

    ``state`` holds the momentum buffer; ``ops`` is the executor (see ``_foreach``).
    """
    g = ops.neg(grad) if maximize else grad
    if weight_decay != 0:
        g = ops.add_scaled(g, p, weight_decay)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = ops.clone(g)
            state["momentum_buffer"] = buf
        else:
            ops.mul_(buf, momentum)
            ops.axpy_(buf, g, 1.0 - dampening)
        g = ops.add_scaled(g, buf, momentum) if nesterov else buf
    ops.axpy_(p, g, -lr)
    return g


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay.

    Matches ``torch.optim.SGD`` update for update.

    Parameters
    ----------
    params : iterable
        Tensors or parameter-group dicts.
    lr : float, default 1e-3
    momentum : float, default 0
    dampening : float, default 0
        Scales down the gradient's contribution to the momentum buffer.
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default False
        Ascend instead of descend.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = st.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward(); opt.step(); opt.zero_grad()
    >>> w.tolist()
    [0.800000011920929, -1.600000023841858]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        for key in ("momentum", "dampening", "weight_decay"):
            _check_nonneg(key, group[key], "SGD")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise OptimizerError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0; got momentum="
                                 f"{group['momentum']}, dampening={group['dampening']}")

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SGD update of every parameter with a gradient."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = group["lr"]
            lr = float(lr) if not isinstance(lr, float) else lr
            momentum, dampening = group["momentum"], group["dampening"]
            weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            params = group["params"]
            if momentum == 0 and weight_decay == 0 and not maximize:
                # the hot path: one dispatched in-place ``p += (-lr) * g`` per parameter
                for p in params:
                    if p.grad is not None:
                        TensorOps.axpy_(p, p.grad, -lr)
                continue
            for p in params:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {}
                sgd_update(ops_for(p), p, p.grad, state, lr, momentum, dampening, weight_decay, nesterov,
                           maximize)
        return loss
