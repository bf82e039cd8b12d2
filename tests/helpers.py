"""The one op-checking helper: forward, gradients and second derivatives against a reference.

``check_op(fn, *inputs)`` runs ``fn`` on spiraltorch_nb tensors and on a reference, then
compares the outputs, the first derivatives (a vector-Jacobian product with random
output weights) and the second derivatives (the gradient of a random weighted sum of
the first gradients, taken with ``create_graph=True``). The reference is either PyTorch
(parity tests) or spiraltorch_nb's own cpu backend (conformance tests of other
backends), so the same call checks every op on every backend, as in tinygrad's
``helper_test_op``.

Inputs are NumPy arrays (floating arrays become tensors of the checked dtype that
require grad; integer and bool arrays keep their dtype) or plain Python values passed
through unchanged. ``fn`` receives tensors; :func:`lib` and :func:`F` return the module
(``spiraltorch_nb`` or ``torch``) matching a tensor, so one lambda serves both sides when
the names agree. All tolerances live in :data:`TOLERANCES` and
:data:`CONFORMANCE_TOLERANCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as hst
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import spiraltorch_nb as st

try:
    import torch
except ImportError:  # parity tests skip; conformance tests do not need torch
    torch = None

__all__ = [
    "TOLERANCES", "CONFORMANCE_TOLERANCES", "Tol", "Result", "check_op", "run_st", "run_torch",
    "lib", "F", "values", "shapes", "broadcast_shapes", "PARITY_SETTINGS", "CONFORMANCE_SETTINGS",
    "assert_close",
]


@dataclass(frozen=True)
class Tol:
    """Relative and absolute tolerance of one comparison (``|a - b| <= atol + rtol * |b|``)."""

    rtol: float
    atol: float

    def scaled(self, factor: float) -> Tol:
        return Tol(self.rtol * factor, self.atol * factor)


#: parity with PyTorch, by dtype and by what is compared (forward, first and second derivatives)
TOLERANCES: dict[str, dict[str, Tol]] = {
    "float32": {"forward": Tol(1e-5, 1e-5), "grad": Tol(1e-4, 1e-4), "grad2": Tol(1e-3, 1e-3)},
    "float64": {"forward": Tol(1e-10, 1e-11), "grad": Tol(1e-9, 1e-10), "grad2": Tol(1e-8, 1e-9)},
}

#: another backend against the cpu backend (float32 only: wgpu has no 64-bit types); GPU
#: transcendental functions are allowed a few more ulps than NumPy's
CONFORMANCE_TOLERANCES: dict[str, Tol] = {
    "forward": Tol(1e-4, 1e-5),
    "grad": Tol(1e-3, 1e-4),
    "grad2": Tol(1e-3, 1e-3),
}

#: hypothesis settings of the parity suite (modest, so it runs in a couple of minutes)
PARITY_SETTINGS = settings(max_examples=15, deadline=None, database=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.filter_too_much])
#: the conformance suite runs on a software GPU: fewer, smaller examples
CONFORMANCE_SETTINGS = settings(max_examples=6, deadline=None, database=None,
                                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                       HealthCheck.filter_too_much,
                                                       HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------------
# one lambda for both libraries
# ---------------------------------------------------------------------------------

def _is_torch(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def lib(x: Any) -> Any:
    """``torch`` for a torch tensor, ``spiraltorch_nb`` otherwise."""
    return torch if _is_torch(x) else st


def F(x: Any) -> Any:  # noqa: N802 - mirrors the usual ``F`` alias
    """``torch.nn.functional`` or ``spiraltorch_nb.nn.functional``, matching ``x``."""
    return torch.nn.functional if _is_torch(x) else st.nn.functional


# ---------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------

def values(rng: np.random.Generator, shape: Sequence[int], domain: str = "real") -> np.ndarray:
    """Random float64 values for an op's domain.

    ``real``: standard normal; ``positive``: [0.5, 2); ``unit``: (-0.9, 0.9);
    ``nonzero``: magnitude in [0.5, 2) with a random sign (no kinks, no division by ~0);
    ``wide``: normal times 3 (exercises saturating branches).
    """
    shape = tuple(shape)
    # np.asarray: for shape () the generator returns a NumPy scalar, not a 0-d array
    if domain == "real":
        return np.asarray(rng.standard_normal(shape))
    if domain == "positive":
        return np.asarray(rng.uniform(0.5, 2.0, shape))
    if domain == "unit":
        return np.asarray(rng.uniform(-0.9, 0.9, shape))
    if domain == "nonzero":
        return np.asarray(rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape))
    if domain == "wide":
        return np.asarray(rng.standard_normal(shape) * 3.0)
    raise ValueError(f"unknown domain {domain!r}")


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4) -> Any:
    """A hypothesis strategy of shapes (sizes may be 0 when ``min_side`` is 0)."""
    return hst.lists(hst.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def broadcast_shapes(num: int = 2, min_dims: int = 0, max_dims: int = 3, min_side: int = 0,
                     max_side: int = 4) -> Any:
    """A hypothesis strategy of ``num`` mutually broadcastable shapes."""
    return mutually_broadcastable_shapes(num_shapes=num, min_dims=min_dims, max_dims=max_dims,
                                         min_side=min_side, max_side=max_side).map(lambda s: s.input_shapes)


# ---------------------------------------------------------------------------------
# running one side
# ---------------------------------------------------------------------------------

@dataclass
class Result:
    """Outputs, first and second derivatives of one run, as NumPy arrays (None where absent)."""

    outputs: list[np.ndarray]
    dtypes: list[str]
    grads: list[np.ndarray] | None
    grads2: list[np.ndarray] | None


def _as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, list | tuple) else [out]


def _weights(seed: int, arrays_shapes: Sequence[tuple[int, ...]], salt: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, salt])
    return [np.asarray(rng.uniform(0.5, 1.5, s) * rng.choice([-1.0, 1.0], s)) for s in arrays_shapes]


def _is_diff_input(a: Any, k: int, nondiff: Sequence[int]) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f" and k not in nondiff


def run_st(fn: Callable[..., Any], inputs: Sequence[Any], *, device: str = "cpu", dtype: str = "float32",
           order: int = 2, nondiff: Sequence[int] = (), seed: int = 0) -> Result:
    """Run ``fn`` on spiraltorch_nb tensors on ``device``; derivatives up to ``order`` (0, 1 or 2)."""
    xs: list[Any] = []
    diff: list[Any] = []
    for k, a in enumerate(inputs):
        if isinstance(a, np.ndarray):
            if a.dtype.kind == "f":
                t = st.tensor(a.astype(dtype), device=device)
                if _is_diff_input(a, k, nondiff) and order > 0:
                    t.requires_grad_()
                    diff.append(t)
            else:
                t = st.tensor(a, device=device)
            xs.append(t)
        else:
            xs.append(a)
    outs = _as_list(fn(*xs))
    res = Result([o.numpy().copy() for o in outs], [o.dtype.name for o in outs], None, None)
    if order == 0 or not diff:
        return res
    live = [o for o in outs if o.requires_grad]
    zeros = [np.zeros(tuple(x.shape)) for x in diff]
    if not live:
        res.grads, res.grads2 = zeros, (zeros if order > 1 else None)
        return res
    w = [st.tensor(a.astype(dtype), device=device) for a in _weights(seed, [tuple(o.shape) for o in live], 1)]
    g1 = st.grad(live, diff, w, create_graph=order > 1, allow_unused=True)
    res.grads = [z if g is None else g.numpy().astype(np.float64) for g, z in zip(g1, zeros, strict=True)]
    if order < 2:
        return res
    v = _weights(seed, [tuple(x.shape) for x in diff], 2)
    terms = [(g * st.tensor(vk.astype(dtype), device=device)).sum()
             for g, vk in zip(g1, v, strict=True) if g is not None and g.requires_grad]
    if not terms:
        res.grads2 = zeros
        return res
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    g2 = st.grad(total, diff, allow_unused=True)
    res.grads2 = [z if g is None else g.numpy().astype(np.float64) for g, z in zip(g2, zeros, strict=True)]
    return res


_TORCH_DTYPES: dict[str, Any] = {}


def _torch_dtype(name: str) -> Any:
    if not _TORCH_DTYPES:
        _TORCH_DTYPES.update(float16=torch.float16, float32=torch.float32, float64=torch.float64,
                             int32=torch.int32, int64=torch.int64, uint32=torch.uint32, bool=torch.bool)
    return _TORCH_DTYPES[name]


def _torch_dtype_name(dt: Any) -> str:
    return str(dt).removeprefix("torch.")


def run_torch(fn: Callable[..., Any], inputs: Sequence[Any], *, dtype: str = "float32", order: int = 2,
              nondiff: Sequence[int] = (), seed: int = 0) -> Result:
    """Run ``fn`` on torch tensors (the parity reference); derivatives up to ``order``."""
    xs: list[Any] = []
    diff: list[Any] = []
    for k, a in enumerate(inputs):
        if isinstance(a, np.ndarray):
            if a.dtype.kind == "f":
                t = torch.tensor(a.astype(dtype))
                if _is_diff_input(a, k, nondiff) and order > 0:
                    t.requires_grad_()
                    diff.append(t)
            else:
                t = torch.tensor(a)
            xs.append(t)
        else:
            xs.append(a)
    outs = _as_list(fn(*xs))
    res = Result([o.detach().numpy().copy() for o in outs], [_torch_dtype_name(o.dtype) for o in outs], None, None)
    if order == 0 or not diff:
        return res
    live = [o for o in outs if o.requires_grad]
    zeros = [np.zeros(tuple(x.shape)) for x in diff]
    if not live:
        res.grads, res.grads2 = zeros, (zeros if order > 1 else None)
        return res
    w = [torch.tensor(a.astype(dtype)) for a in _weights(seed, [tuple(o.shape) for o in live], 1)]
    g1 = torch.autograd.grad(live, diff, w, create_graph=order > 1, allow_unused=True)
    res.grads = [z if g is None else g.detach().numpy(force=True).astype(np.float64) for g, z in zip(g1, zeros, strict=True)]
    if order < 2:
        return res
    v = _weights(seed, [tuple(x.shape) for x in diff], 2)
    terms = [(g * torch.tensor(vk.astype(dtype))).sum()
             for g, vk in zip(g1, v, strict=True) if g is not None and g.requires_grad]
    if not terms:
        res.grads2 = zeros
        return res
    g2 = torch.autograd.grad(sum(terms), diff, allow_unused=True)
    res.grads2 = [z if g is None else g.detach().numpy(force=True).astype(np.float64) for g, z in zip(g2, zeros, strict=True)]
    return res


# ---------------------------------------------------------------------------------
# comparing
# ---------------------------------------------------------------------------------

def assert_close(got: np.ndarray, want: np.ndarray, tol: Tol, what: str) -> None:
    """Same shape and values within ``tol`` (NaN equal to NaN, infinities equal by sign)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != reference shape {want.shape}")
    if got.dtype.kind in "biu" and want.dtype.kind in "biu":
        if not np.array_equal(got, want):
            raise AssertionError(f"{what}: integer values differ\n got: {got}\nwant: {want}")
        return
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    ok = np.isclose(g, w, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    if not ok.all():
        bad = np.argwhere(~ok)[:5].tolist()
        err = float(np.nanmax(np.abs(g - w)[~ok]))
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} values differ (max abs diff {err:.3g}, "
                             f"rtol={tol.rtol}, atol={tol.atol}) at {bad}\n got: {g.ravel()[:8]}\nwant: {w.ravel()[:8]}")


def _compare(got: Result, want: Result, tols: dict[str, Tol], scale: float, dtype_check: Callable[[str, str], bool],
             label: str) -> None:
    if len(got.outputs) != len(want.outputs):
        raise AssertionError(f"{label}: {len(got.outputs)} outputs, reference has {len(want.outputs)}")
    for k, (a, b, da, db) in enumerate(zip(got.outputs, want.outputs, got.dtypes, want.dtypes, strict=True)):
        if not dtype_check(da, db):
            raise AssertionError(f"{label}: output {k} has dtype {da}, reference {db}")
        assert_close(a, b, tols["forward"].scaled(scale), f"{label}: output {k}")
    for kind, g, w in (("grad", got.grads, want.grads), ("grad2", got.grads2, want.grads2)):
        if w is None:
            continue
        if g is None:
            raise AssertionError(f"{label}: no {kind} computed but the reference has one")
        for k, (a, b) in enumerate(zip(g, w, strict=True)):
            assert_close(a, b, tols[kind].scaled(scale), f"{label}: {kind} of input {k}")


def check_op(fn: Callable[..., Any], *inputs: Any, torch_fn: Callable[..., Any] | None = None,
             against: str = "torch", device: str = "cpu", dtype: str = "float32", order: int = 2,
             nondiff: Sequence[int] = (), tol_scale: float = 1.0, seed: int = 0, label: str = "") -> Result:
    """Check ``fn``'s forward and derivatives (up to ``order``) against a reference.

    Parameters
    ----------
    fn
        Takes tensors (and the plain values among ``inputs``), returns a tensor or a tuple.
    inputs
        NumPy arrays or plain values; floating arrays (except indices in ``nondiff``) are
        differentiated.
    torch_fn
        The PyTorch spelling when it differs from ``fn`` (``against="torch"`` only).
    against
        ``"torch"``: parity with PyTorch on the cpu. ``"cpu"``: run on ``device`` and
        compare with the cpu backend (conformance).
    order
        0: forward only; 1: and first derivatives; 2: and second derivatives.
    tol_scale
        Multiplies the stated tolerances for an op known to lose precision (say why).

    Returns
    -------
    Result
        The spiraltorch_nb side, for further assertions.
    """
    label = label or getattr(fn, "__name__", "op")
    if against == "torch":
        if torch is None:
            import pytest

            pytest.skip("torch is not installed")
        got = run_st(fn, inputs, device=device, dtype=dtype, order=order, nondiff=nondiff, seed=seed)
        want = run_torch(torch_fn or fn, inputs, dtype=dtype, order=order, nondiff=nondiff, seed=seed)
        _compare(got, want, TOLERANCES[dtype], tol_scale, lambda a, b: a == b, label)
        return got
    if against == "cpu":
        got = run_st(fn, inputs, device=device, dtype=dtype, order=order, nondiff=nondiff, seed=seed)
        want = run_st(fn, inputs, device="cpu", dtype=dtype, order=order, nondiff=nondiff, seed=seed)
        _compare(got, want, CONFORMANCE_TOLERANCES, tol_scale, _same_kind_on(device), f"{label} on {device}")
        return got
    raise ValueError(f"against must be 'torch' or 'cpu'; got {against!r}")


def _same_kind_on(device: str) -> Callable[[str, str], bool]:
    """Dtype check for conformance: equal, or the same kind where the backend lacks the cpu's type."""
    from spiraltorch_nb.backends import get_backend

    held = {d.name for d in get_backend(device).dtypes}

    def ok(got: str, want: str) -> bool:
        if got == want:
            return True
        return want not in held and st.dtypes.get_dtype(got).kind == st.dtypes.get_dtype(want).kind

    return ok
