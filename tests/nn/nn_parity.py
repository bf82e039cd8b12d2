"""Module parity with torch.nn: same weights in, same outputs and gradients out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import spiraltorch_nb as st

torch = __import__("pytest").importorskip("torch")

#: float32 forward / gradient tolerances (|a - b| <= atol + rtol * |b|)
FWD = {"rtol": 1e-5, "atol": 1e-5}
GRAD = {"rtol": 1e-4, "atol": 1e-5}


def torch_state(module: Any) -> dict[str, np.ndarray]:
    """A torch module's state dict as NumPy arrays (what a user would hand to load_state_dict)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def check_module(st_mod: st.nn.Module, t_mod: Any, inputs: Sequence[Any], *, kwargs: dict | None = None,
                 st_kwargs: dict | None = None, select: Callable[[Any], Any] = _first, train: bool = False,
                 fwd: dict | None = None, grad: dict | None = None, seed: int = 0) -> None:
    """Load ``t_mod``'s weights into ``st_mod``, then compare outputs, input grads and parameter grads.

    ``inputs`` are NumPy arrays (floating ones require grad) or other values passed as they are;
    ``kwargs`` go to both forwards (NumPy arrays converted per library).
    """
    fwd = fwd or FWD
    grad = grad or GRAD
    st_mod.load_state_dict(torch_state(t_mod))
    st_mod.train(train)
    t_mod.train(train)

    def conv(lib: str, a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        rg = a.dtype.kind == "f"
        return st.tensor(a, requires_grad=rg) if lib == "st" else torch.tensor(a, requires_grad=rg)

    s_in = [conv("st", a) for a in inputs]
    t_in = [conv("torch", a) for a in inputs]
    kw = kwargs or {}
    s_kw = {k: conv("st", v) for k, v in (st_kwargs if st_kwargs is not None else kw).items()}
    t_kw = {k: conv("torch", v) for k, v in kw.items()}
    s_out = select(st_mod(*s_in, **s_kw))
    t_out = select(t_mod(*t_in, **t_kw))
    t_np = t_out.detach().numpy()
    np.testing.assert_allclose(s_out.numpy(), t_np, **fwd, err_msg="forward")
    w = np.random.default_rng(seed).standard_normal(t_np.shape).astype(t_np.dtype)
    (s_out * st.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for i, (s, t) in enumerate(zip(s_in, t_in, strict=True)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            np.testing.assert_allclose(s.grad.numpy(), t.grad.numpy(), **grad, err_msg=f"grad of input {i}")
    t_params = dict(t_mod.named_parameters())
    s_params = dict(st_mod.named_parameters())
    assert sorted(s_params) == sorted(t_params)
    for name, p in s_params.items():
        tg = t_params[name].grad
        if tg is None:
            assert p.grad is None or not np.any(p.grad.numpy()), name
            continue
        np.testing.assert_allclose(p.grad.numpy(), tg.numpy(), **grad, err_msg=f"grad of {name}")
