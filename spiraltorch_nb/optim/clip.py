"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .optimizer import OptimizerError

__all__ = ["clip_grad_norm_", "clip_grad_value_", "grad_norm"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise OptimizerError(f"gradient clipping takes tensors (e.g. model.parameters()); item {i} is a "
                                 f"{type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]


def _norm_type(norm_type: Any) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() != "inf":
            raise OptimizerError(f"norm_type must be a number or 'inf'; got {norm_type!r}")
        return math.inf
    value = float(norm_type)
    if value <= 0 or math.isnan(value):
        raise OptimizerError(f"norm_type must be > 0 (2 for the Euclidean norm, 'inf' for the max); got {norm_type!r}")
    return value


def _total_norm(grads: list[Tensor], p: float) -> Tensor:
    if not grads:
        from ..ops.creation import tensor

        return tensor(0.0)
    norms = [g.norm(p) for g in grads]
    if len(norms) == 1:
        return norms[0]
    from ..functions import stack

    dev = norms[0].device
    return stack([n.to(dev) for n in norms]).norm(p)


@no_grad()
def grad_norm(parameters: Tensor | Iterable[Tensor], norm_type: float | str = 2.0) -> Tensor:
    """The norm of all gradients together, as if concatenated into one vector (a 0-d tensor).

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.zeros(2, requires_grad=True)
    >>> (w * st.tensor([3.0, 4.0])).sum().backward()
    >>> st.optim.grad_norm([w]).item()
    5.0
    """
    return _total_norm(_grads(parameters), _norm_type(norm_type))


@no_grad()
def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients in place so that their total norm is at most ``max_norm``.

    The scale is ``max_norm / (total_norm + 1e-6)``, capped at 1, as in PyTorch.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Tensors whose ``.grad`` is clipped (those without a gradient are skipped).
    max_norm : float
        The largest total norm allowed.
    norm_type : float or 'inf', default 2
    error_if_nonfinite : bool, default False
        Raise when the total norm is nan or inf instead of scaling by it.

    Returns
    -------
    Tensor
        The total norm before clipping (0-d).

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.zeros(2, requires_grad=True)
    >>> (w * st.tensor([3.0, 4.0])).sum().backward()
    >>> round(st.optim.clip_grad_norm_([w], max_norm=1.0).item(), 4), [round(v, 3) for v in w.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    grads = _grads(parameters)
    total = _total_norm(grads, _norm_type(norm_type))
    if not grads:
        return total
    value = float(total.item())
    if error_if_nonfinite and not math.isfinite(value):
        raise OptimizerError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {value}; "
                             "pass error_if_nonfinite=False to clip anyway, or look for nan/inf in the loss")
    coef = float(max_norm) / (value + 1e-6)
    if coef < 1.0:  # multiplying by a coefficient capped at 1 would change nothing
        for g in grads:
            g.mul_(coef)
    return total


@no_grad()
def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> w = st.zeros(3, requires_grad=True)
    >>> (w * st.tensor([-5.0, 0.5, 5.0])).sum().backward()
    >>> st.optim.clip_grad_value_([w], 1.0); w.grad.tolist()
    [-1.0, 0.5, 1.0]
    """
    v = float(clip_value)
    if v < 0 or math.isnan(v):
        raise OptimizerError(f"clip_grad_value_: clip_value must be >= 0; got {clip_value!r}")
    for g in _grads(parameters):
        g.clamp_(-v, v)
