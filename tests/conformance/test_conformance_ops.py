"""Cross-backend conformance: every core op on every available backend against the cpu backend.

One table of cases, parametrized over the ``device`` fixture (cpu, wgpu, cuda, each when
available). A case draws small random shapes (at most 64 elements: wgpu may be a software
adapter), builds its inputs, and names the op; ``check_op(..., against="cpu")`` compares
forward, first and second derivatives with the cpu backend within
``helpers.CONFORMANCE_TOLERANCES``. Floating inputs are float32 and integer inputs int32
(the types every backend holds). Each floating input reaches the op through a random
view (contiguous, transposed, permuted, a strided slice, or an expanded broadcast), so
non-contiguous layouts are exercised on the device. ``empty_*`` cases always use a size-0
dimension, ``optimizer_updates`` checks the in-place update operators, and
``test_every_cpu_operator_is_covered_by_a_case`` fails when a built-in operator with a cpu
forward is run by no case.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from helpers import CONFORMANCE_SETTINGS, F, check_op, lib, run_st, values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

import spiraltorch_nb as st
from spiraltorch_nb.ops.registry import global_operator_registry, set_dispatch_observer

MAX_NUMEL = 64


class Draw:
    """Shapes, values and views for one example (hypothesis draws + a seeded NumPy generator)."""

    def __init__(self, data: Any, seed: int) -> None:
        self.data = data
        self.rng = np.random.default_rng(seed)

    def pick(self, strategy: Any) -> Any:
        return self.data.draw(strategy)

    def int(self, lo: int, hi: int) -> int:
        return self.pick(hst.integers(lo, hi))

    def shape(self, min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4) -> tuple:
        shape = tuple(self.pick(hst.lists(hst.integers(min_side, max_side), min_size=min_dims, max_size=max_dims)))
        while math.prod(shape) > MAX_NUMEL:
            shape = shape[1:]
        return shape if len(shape) >= min_dims else shape + (min_side or 1,) * (min_dims - len(shape))

    def broadcast(self, num: int = 2, min_side: int = 0) -> list[tuple]:
        full = self.shape(min_side=min_side)
        out = []
        for _ in range(num):
            k = self.int(0, len(full))
            out.append(tuple(s if self.pick(hst.booleans()) else 1 for s in full[len(full) - k:]))
        return out

    def viewed(self, shape: tuple, domain: str = "real",
               expand: bool = True) -> tuple[np.ndarray, Callable[[Any], Any]]:
        """A base array and a view that turns it into ``shape`` (often non-contiguous)."""
        nd = len(shape)
        kinds = ["contiguous"]
        if nd >= 2:
            kinds += ["transposed", "permuted"]
        if nd >= 1 and math.prod(shape) * 2 <= MAX_NUMEL:
            kinds.append("strided")
        if expand and nd >= 1 and any(s != 1 for s in shape):
            kinds.append("expanded")
        kind = self.pick(hst.sampled_from(kinds))
        if kind == "transposed":
            base = shape[:-2] + (shape[-1], shape[-2])
            return values(self.rng, base, domain), lambda x: x.transpose(-1, -2)
        if kind == "permuted":
            perm = self.pick(hst.permutations(range(nd)))
            inv = [perm.index(i) for i in range(nd)]
            base = tuple(shape[p] for p in perm)
            return values(self.rng, base, domain), lambda x: x.permute(*inv)
        if kind == "strided":
            offset = self.int(0, 1)
            base = shape[:-1] + (2 * shape[-1] + offset,)
            return values(self.rng, base, domain), lambda x: x[..., offset::2]
        if kind == "expanded":
            base = tuple(1 if self.pick(hst.booleans()) else s for s in shape)
            return values(self.rng, base, domain), lambda x: x.expand(*shape)
        return values(self.rng, shape, domain), lambda x: x

    def ints(self, shape: tuple, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.rng.integers(lo, hi, shape), dtype=np.int32)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Draw], tuple[list, Callable[..., Any]]]
    order: int = 2
    tol_scale: float = 1.0


CASES: list[Case] = []


def case(name: str, order: int = 2, tol_scale: float = 1.0) -> Callable[[Callable], Callable]:
    def register(make: Callable) -> Callable:
        CASES.append(Case(name, make, order, tol_scale))
        return make
    return register


def unary(name: str, op: Callable[[Any], Any], domain: str = "real", order: int = 2, min_side: int = 0) -> None:
    def make(d: Draw) -> tuple[list, Callable]:
        a, v = d.viewed(d.shape(min_side=min_side), domain)
        return [a], lambda x: op(v(x))
    case(name, order)(make)


def binary(name: str, op: Callable[[Any, Any], Any], domain: str = "real", domain2: str | None = None,
           order: int = 2) -> None:
    def make(d: Draw) -> tuple[list, Callable]:
        sa, sb = d.broadcast(2)
        a, va = d.viewed(sa, domain)
        b, vb = d.viewed(sb, domain2 or domain)
        return [a, b], lambda x, y: op(va(x), vb(y))
    case(name, order)(make)


# ---- elementwise --------------------------------------------------------------------------
for _name, _op, _dom in [
    ("neg", lambda x: -x, "real"), ("abs", lambda x: x.abs(), "nonzero"), ("exp", lambda x: x.exp(), "real"),
    ("log", lambda x: x.log(), "positive"), ("log1p", lambda x: x.log1p(), "unit"),
    ("expm1", lambda x: x.expm1(), "real"), ("sqrt", lambda x: x.sqrt(), "positive"),
    ("rsqrt", lambda x: x.rsqrt(), "positive"), ("sin", lambda x: x.sin(), "wide"),
    ("cos", lambda x: x.cos(), "wide"), ("tanh", lambda x: x.tanh(), "wide"),
    ("sigmoid", lambda x: x.sigmoid(), "wide"), ("erf", lambda x: x.erf(), "real"),
    ("relu", lambda x: x.relu(), "nonzero"), ("leaky_relu", lambda x: F(x).leaky_relu(x, 0.1), "nonzero"),
    ("gelu", lambda x: F(x).gelu(x), "wide"), ("gelu_tanh", lambda x: F(x).gelu(x, approximate="tanh"), "wide"),
    ("silu", lambda x: F(x).silu(x), "wide"), ("softplus", lambda x: F(x).softplus(x, beta=2.0, threshold=4.0), "wide"),
    ("clamp", lambda x: x.clamp(-0.5, 0.8), "wide"), ("clamp_min", lambda x: x.clamp(min=0.2), "wide"),
    ("square", lambda x: x.square(), "real"), ("reciprocal", lambda x: x.reciprocal(), "nonzero"),
    ("pow_scalar", lambda x: x ** 3, "real"), ("pow_frac", lambda x: x ** 0.5, "positive"),
    ("rpow", lambda x: 2.0 ** x, "real"), ("rsub", lambda x: 1.0 - x, "real"), ("rdiv", lambda x: 3.0 / x, "nonzero"),
    ("scalar_chain", lambda x: (x * 2.0 + 1.0) / 3.0 - 0.5, "real"),
]:
    unary(_name, _op, _dom)

for _name, _op in [("sign", lambda x: x.sign()), ("floor", lambda x: x.floor()), ("ceil", lambda x: x.ceil()),
                   ("round", lambda x: x.round()), ("floordiv_scalar", lambda x: x // 0.7),
                   ("gt_scalar", lambda x: x > 0.1), ("eq_self", lambda x: x == x)]:
    unary(_name, _op, "wide", order=0)

for _name, _op, _d2 in [
    ("add", lambda a, b: a + b, None), ("sub", lambda a, b: a - b, None), ("mul", lambda a, b: a * b, None),
    ("div", lambda a, b: a / b, "nonzero"), ("maximum", lambda a, b: lib(a).maximum(a, b), None),
    ("minimum", lambda a, b: lib(a).minimum(a, b), None), ("atan2", lambda a, b: lib(a).atan2(a, b), "nonzero"),
    ("mixed", lambda a, b: (a * b).tanh() + a / (1.0 + b * b), None),
]:
    binary(_name, _op, domain2=_d2)
binary("pow", lambda a, b: a ** b, "positive")
binary("remainder", lambda a, b: a % b, "wide", "nonzero", order=1)
binary("floordiv", lambda a, b: a // b, "wide", "nonzero", order=0)
for _name, _op in [("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b), ("gt", lambda a, b: a > b),
                   ("ge", lambda a, b: a >= b), ("eq", lambda a, b: a == b.round()), ("ne", lambda a, b: a != b),
                   ("logical", lambda a, b: ((a > 0) & (b < 0) | ~(a < b), (a > 0) ^ (b > 0)))]:
    binary(_name, _op, order=0)


@case("where")
def _where(d: Draw) -> tuple[list, Callable]:
    sc, sa, sb = d.broadcast(3)
    a, va = d.viewed(sa)
    b, vb = d.viewed(sb)
    c = np.asarray(d.rng.random(sc) > 0.5)
    return [c, a, b], lambda c, x, y: lib(x).where(c, va(x), vb(y)) + lib(x).where(c, 0.5, va(x) * 2.0)


@case("masked_fill")
def _masked_fill(d: Draw) -> tuple[list, Callable]:
    s = d.shape()
    a, va = d.viewed(s)
    return [a, np.asarray(d.rng.random(s) > 0.5)], lambda x, m: va(x).masked_fill(m, -1.0)


@case("inplace")
def _inplace(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1)
    a, va = d.viewed(s)
    b = values(d.rng, s[1:])

    def fn(x: Any, y: Any) -> Any:
        z = va(x) * 1.0
        z += y
        z *= x.sum()
        z.clamp_(-2.0, 2.0)
        return z
    return [a, b], fn


# ---- reductions -------------------------------------------------------------------------------
def _dim(d: Draw, nd: int, multi: bool = True) -> Any:
    if nd == 0:
        return None
    opts = [hst.none(), hst.integers(-nd, nd - 1)]
    if multi:
        opts.append(hst.lists(hst.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple))
    return d.pick(hst.one_of(*opts))


def reduction(name: str, op: Callable[[Any, Any, bool], Any], min_side: int = 0, multi: bool = True,
              order: int = 2, min_dims: int = 0, expand: bool = True) -> None:
    def make(d: Draw) -> tuple[list, Callable]:
        s = d.shape(min_dims=min_dims, min_side=min_side)
        dim = _dim(d, len(s), multi)
        keep = d.pick(hst.booleans())
        a, v = d.viewed(s, expand=expand)
        return [a], lambda x: op(v(x), dim, keep)
    case(name, order)(make)


def _kw(dim: Any, keep: bool) -> dict:
    return {} if dim is None else {"dim": dim, "keepdim": keep}


reduction("sum", lambda x, dim, keep: x.sum(**_kw(dim, keep)))
reduction("mean", lambda x, dim, keep: x.mean(**_kw(dim, keep)), min_side=1)
reduction("var", lambda x, dim, keep: x.var(**_kw(dim, keep)), min_side=2)
# no expanded inputs: equal values have std 0, where its derivative is NaN on one backend and
# huge on another (the GPU's variance is a rounding error above 0)
reduction("std", lambda x, dim, keep: x.std(**_kw(dim, keep), correction=0), min_side=2, expand=False)
reduction("prod", lambda x, dim, keep: x.prod(**_kw(dim, keep)), multi=False, min_side=1)
reduction("amax", lambda x, dim, keep: x.amax(**_kw(dim, keep)), min_side=1)
reduction("amin", lambda x, dim, keep: x.amin(**_kw(dim, keep)), min_side=1)
reduction("max", lambda x, dim, keep: tuple(x.max(dim, keep)) if dim is not None else x.max(), min_side=1,
          multi=False, min_dims=1)
reduction("min", lambda x, dim, keep: tuple(x.min(dim, keep)) if dim is not None else x.min(), min_side=1,
          multi=False, min_dims=1)
reduction("argmax", lambda x, dim, keep: x.argmax(**_kw(dim, keep)), min_side=1, multi=False, order=0)
reduction("argmin", lambda x, dim, keep: x.argmin(**_kw(dim, keep)), min_side=1, multi=False, order=0)
reduction("logsumexp", lambda x, dim, keep: x.logsumexp(dim if dim is not None else tuple(range(x.ndim)), keep),
          min_side=1)
reduction("cumsum", lambda x, dim, keep: x.cumsum(dim if dim is not None else 0), multi=False, min_dims=1)


# ---- matmul ----------------------------------------------------------------------------------
@case("matmul")
def _matmul(d: Draw) -> tuple[list, Callable]:
    n, k, m = d.int(0, 4), d.int(0, 4), d.int(0, 4)
    kind = d.pick(hst.sampled_from(["vv", "vm", "mv", "mm", "batched"]))
    batch = (d.int(1, 2),) if kind == "batched" else ()
    sa = {"vv": (k,), "vm": (k,), "mv": (n, k), "mm": (n, k), "batched": (*batch, n, k)}[kind]
    sb = {"vv": (k,), "vm": (k, m), "mv": (k,), "mm": (k, m), "batched": (k, m)}[kind]
    a, va = d.viewed(sa)
    b, vb = d.viewed(sb)
    return [a, b], lambda x, y: va(x) @ vb(y)


@case("linear")
def _linear(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, max_dims=3, min_side=1)
    out = d.int(1, 4)
    x, vx = d.viewed(s)
    w, vw = d.viewed((out, s[-1]))
    return [x, w, values(d.rng, (out,))], lambda x, w, b: F(x).linear(vx(x), vw(w), b)


# ---- layout ------------------------------------------------------------------------------------
@case("reshape")
def _reshape(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1)
    a, v = d.viewed(s)
    return [a], lambda x: v(x).reshape(-1).reshape(*reversed(s)).flatten() * 2.0


@case("permute_transpose")
def _permute(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=2)
    perm = d.pick(hst.permutations(range(len(s))))
    a, v = d.viewed(s)
    return [a], lambda x: v(x).permute(*perm).transpose(0, -1).exp()


@case("squeeze_unsqueeze")
def _squeeze(d: Draw) -> tuple[list, Callable]:
    s = d.shape(max_side=2)
    a, v = d.viewed(s)
    u = d.int(-len(s) - 1, len(s))
    return [a], lambda x: v(x).unsqueeze(u).squeeze() * 3.0


@case("expand")
def _expand(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, max_side=3)
    base = tuple(1 if d.pick(hst.booleans()) else v for v in s)
    a = values(d.rng, base)
    lead = d.int(1, 3)
    return [a], lambda x: x.expand(lead, *s).sin()


@case("flip")
def _flip(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1)
    a, v = d.viewed(s)
    return [a], lambda x: v(x).flip(0).flip(-1) * 1.5


@case("cat_stack")
def _cat(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, max_side=3)
    nd = len(s)
    dim = d.int(-nd, nd - 1)
    s2 = list(s)
    s2[dim] = d.int(0, 3)
    a, va = d.viewed(s)
    b, vb = d.viewed(tuple(s2))
    c = values(d.rng, s)
    return [a, b, c], lambda x, y, z: (lib(x).cat([va(x), vb(y)], dim=dim), lib(x).stack([va(x), z], dim=-1))


@case("split_chunk")
def _split(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=1)
    dim = d.int(0, len(s) - 1)
    size = d.int(1, 3)
    a, v = d.viewed(s)
    return [a], lambda x: (*v(x).split(size, dim), *v(x).chunk(2, dim))


@case("pad")
def _pad(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=2, min_side=2)
    pad = (d.int(-1, 2), d.int(0, 2), d.int(0, 1), d.int(-1, 1))
    a, v = d.viewed(s)
    return [a], lambda x: F(x).pad(v(x), pad, value=0.5)


@case("getitem_basic")
def _getitem(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=2, min_side=1)
    i = d.int(-s[0], s[0] - 1)
    step = d.int(1, 2)
    a, v = d.viewed(s)
    return [a], lambda x: (v(x)[i], v(x)[::step, None, 1:], v(x)[..., -1])


@case("getitem_advanced")
def _getitem_adv(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=1)
    a, v = d.viewed(s)
    mask = np.asarray(d.rng.random(s) > 0.5)
    idx = d.ints((d.int(0, 5),), -s[0], s[0])  # repeats: gradients add up
    return [a, mask, idx], lambda x, m, i: (v(x)[m], v(x)[i])


@case("setitem")
def _setitem(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=1)
    a, v = d.viewed(s)
    row = values(d.rng, s[1:])
    mask = np.asarray(d.rng.random(s) > 0.5)
    idx = np.asarray(d.rng.permutation(s[0])[:d.int(1, s[0])], dtype=np.int32)

    def fn(x: Any, r: Any, m: Any, i: Any) -> Any:
        z = v(x) * 1.0
        z[0] = r
        z[m] = -1.0
        z[i] = z[i] * 2.0
        return z * x.sum()
    return [a, row, mask, idx], fn


@case("gather_index_select")
def _gather(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=1)
    nd = len(s)
    dim = d.int(-nd, nd - 1)
    idx_shape = tuple(d.int(0, 3) if k == dim % nd else d.int(0, n) for k, n in enumerate(s))
    a, v = d.viewed(s)
    gi = d.ints(idx_shape, 0, s[dim])
    si = d.ints((d.int(0, 4),), 0, s[dim])
    return [a, gi, si], lambda x, g, i: (v(x).gather(dim, g), v(x).index_select(dim, i))


# ---- neural-network functions ------------------------------------------------------------------
@case("softmax")
def _softmax(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1)
    dim = d.int(-len(s), len(s) - 1)
    a, v = d.viewed(s, "wide")
    return [a], lambda x: (F(x).softmax(v(x), dim=dim), F(x).log_softmax(v(x), dim=dim))


@case("cross_entropy")
def _cross_entropy(d: Draw) -> tuple[list, Callable]:
    n, c = d.int(1, 4), d.int(2, 5)
    extra = (d.int(1, 2),) if d.pick(hst.booleans()) else ()
    x, v = d.viewed((n, c, *extra), "wide")
    t = d.ints((n, *extra), 0, c)
    t.reshape(-1)[0] = -1
    smoothing = d.pick(hst.sampled_from([0.0, 0.2]))
    red = d.pick(hst.sampled_from(["mean", "sum", "none"]))
    p = d.rng.uniform(0.0, 1.0, (n, c, *extra))
    p /= p.sum(axis=1, keepdims=True)
    w = d.rng.uniform(0.5, 2.0, c)

    def fn(x: Any, t: Any, p: Any, w: Any) -> Any:
        kw = {"label_smoothing": smoothing, "reduction": red}
        return (F(x).cross_entropy(v(x), t, ignore_index=-1, **kw), F(x).cross_entropy(v(x), p, **kw),
                F(x).cross_entropy(v(x), t, weight=w, ignore_index=-1, **kw))
    return [x, t, p, w], fn


@case("losses")
def _losses(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=1)
    a, v = d.viewed(s, "wide")
    y = d.rng.uniform(0.0, 1.0, s)
    w = d.rng.uniform(0.5, 2.0, s[-1:])
    return [a, y, w], lambda x, y, w: (F(x).mse_loss(v(x), y), F(x).l1_loss(v(x), y, reduction="sum"),
                                       F(x).binary_cross_entropy_with_logits(v(x), y, weight=w, pos_weight=w))


@case("layer_norm", tol_scale=3.0)  # second derivatives through 1/sqrt(var) lose float32 digits
def _layer_norm(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=2)
    k = d.int(1, min(2, len(s)))
    ns = s[len(s) - k:]
    # no expanded inputs: constant rows have variance 0, where the gradient is rounding
    # noise amplified by 1/sqrt(eps) and differs between backends
    x, v = d.viewed(s, "wide", expand=False)
    w, b = values(d.rng, ns) + 1.0, values(d.rng, ns)
    return [x, np.asarray(w), b], lambda x, w, b: F(x).layer_norm(v(x), ns, w, b)


@case("conv2d")
def _conv2d(d: Draw) -> tuple[list, Callable]:
    groups = d.pick(hst.sampled_from([1, 2]))
    cin, cout = groups, groups * d.int(1, 2)
    kh, kw = d.int(1, 2), d.int(1, 3)
    stride, padding, dilation = d.int(1, 2), d.int(0, 1), d.int(1, 2)
    lo_h = max(1, dilation * (kh - 1) + 1 - 2 * padding)
    lo_w = max(1, dilation * (kw - 1) + 1 - 2 * padding)
    h, w = d.int(lo_h, max(lo_h, 4)), d.int(lo_w, max(lo_w, 4))
    x, v = d.viewed((1, cin, h, w))
    wt = values(d.rng, (cout, cin // groups, kh, kw))
    b = values(d.rng, (cout,))
    return [x, wt, b], lambda x, wt, b: F(x).conv2d(v(x), wt, b, stride=stride, padding=padding, dilation=dilation,
                                                    groups=groups)


@case("pool2d")
def _pool(d: Draw) -> tuple[list, Callable]:
    k = d.int(1, 2)
    stride = d.int(1, 2)
    padding = d.int(0, k // 2)
    h, w = d.int(k, 4), d.int(k, 4)
    x, v = d.viewed((1, d.int(1, 2), h, w))
    return [x], lambda x: (F(x).max_pool2d(v(x), k, stride, padding), F(x).avg_pool2d(v(x), k, stride, padding))


@case("embedding")
def _embedding(d: Draw) -> tuple[list, Callable]:
    vocab, dim = d.int(1, 5), d.int(1, 3)
    w, v = d.viewed((vocab, dim))
    idx = d.ints(d.shape(max_dims=2, max_side=3), 0, vocab)
    return [idx, w], lambda i, w: F(w).embedding(i, v(w), padding_idx=0)


# ---- integers (int32 on every backend) ---------------------------------------------------------
@case("int32_arithmetic", order=0)
def _ints(d: Draw) -> tuple[list, Callable]:
    sa, sb = d.broadcast(2)
    a = d.ints(sa, -9, 10)
    b = d.ints(sb, 1, 5) * np.where(d.rng.random(sb) > 0.5, 1, -1).astype(np.int32)

    def fn(a: Any, b: Any) -> Any:
        return (a + b, a - b, a * b, a // b, a % b, a / b, -a, abs(a), a * 2, 3 - a, a > b, a == b,
                lib(a).maximum(a, b), lib(a).where(a > 0, a, b), (a + b).float() * 0.5)
    return [a, b], fn


@case("int32_reductions", order=0)
def _int_reduce(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1, min_side=1)
    a = d.ints(s, -5, 6)
    dim = d.int(0, len(s) - 1)
    return [a], lambda a: (a.sum(), a.sum(dim=dim), a.amax(dim=dim), a.argmax(dim=dim), a.cumsum(dim),
                           (a > 0).sum(dim=dim), (a > 0).any(), (a > -5).all())


@case("cast", order=1)
def _cast(d: Draw) -> tuple[list, Callable]:
    s = d.shape()
    a, v = d.viewed(s, "wide")
    return [a], lambda x: (v(x).to(lib(x).int32), (v(x) > 0).float() * v(x), v(x).int().float(), (v(x) * 1).bool())


# ---- first derivatives through fused backward kernels ------------------------------------------
# With create_graph (order 2) backward is written with Tensor ops so it can be differentiated
# again; a plain backward runs the backends' fused backward kernels instead, checked here.
@case("fused_backward", order=1)
def _fused_backward(d: Draw) -> tuple[list, Callable]:
    n, c, out = d.int(1, 4), d.int(2, 5), d.int(1, 3)
    x, vx = d.viewed((n, c), "wide")
    w, vw = d.viewed((out, c))
    t = d.ints((n,), 0, c)
    return [x, w, values(d.rng, (out,)), t], lambda x, w, b, t: (
        F(x).cross_entropy(vx(x), t), F(x).cross_entropy(vx(x), t, reduction="sum", label_smoothing=0.1),
        F(x).linear(vx(x), vw(w), b))


# ---- in-place arithmetic and optimizer updates (no autograd) ------------------------------------
@case("inplace_no_grad", order=0)
def _inplace_no_grad(d: Draw) -> tuple[list, Callable]:
    s = d.shape(min_dims=1)
    a, va = d.viewed(s)
    b = values(d.rng, s[1:])
    c = values(d.rng, s, "nonzero")

    def fn(x: Any, y: Any, z: Any) -> Any:
        out = va(x).clone()
        out += y
        out -= z * 0.5
        out *= 2.0
        out /= z
        return out, va(x).clone()
    return [a, b, c], fn


UPDATES = ("axpy_", "lerp_", "addcmul_", "addcdiv_", "maximum_")


@case("optimizer_updates", order=0)
def _updates(d: Draw) -> tuple[list, Callable]:
    s = d.shape()
    p = values(d.rng, s)
    g, vg = d.viewed(s)
    m, vm = d.viewed(s)
    den = values(d.rng, s, "positive")  # addcdiv_ divides by it, as Adam by sqrt(v) + eps
    alpha = d.pick(hst.sampled_from([1.0, -0.25]))  # axpy_ has a path without the multiply
    weight = d.pick(hst.sampled_from([0.1, 0.9]))  # lerp_ takes another formula from 0.5 up
    value = d.pick(hst.sampled_from([0.5, -2.0]))
    transposed = len(s) >= 2 and d.pick(hst.booleans())

    def fn(p: Any, g: Any, m: Any, den: Any) -> Any:
        calls = {"axpy_": ((vg(g),), {"alpha": alpha}), "lerp_": ((vg(g),), {"weight": weight}),
                 "addcmul_": ((vg(g), vm(m)), {"value": value}), "addcdiv_": ((vm(m), den), {"value": value}),
                 "maximum_": ((vm(m),), {})}
        outs = []
        for name in UPDATES:
            args, attrs = calls[name]
            dst = p.clone()
            st.ops.dispatch(name, dst, *args, **attrs)
            outs.append(dst)
        alias = p.clone()  # the operand is the destination itself
        st.ops.dispatch("addcmul_", alias, alias, alias, value=value)
        outs.append(alias)
        if transposed:  # a non-contiguous destination
            dst = p.clone()
            st.ops.dispatch("lerp_", dst.transpose(0, 1), vg(g).transpose(0, 1), weight=weight)
            outs.append(dst)
        return tuple(outs)
    return [p, g, m, den], fn


# ---- empty tensors ---------------------------------------------------------------------------------
# Random shapes reach a size-0 dimension only now and then; these cases always do, for
# one representative of each op family.
EMPTY_SHAPES = [(0,), (0, 3), (3, 0), (2, 0, 3), (1, 0)]


@case("empty_unary")
def _empty_unary(d: Draw) -> tuple[list, Callable]:
    a, v = d.viewed(d.pick(hst.sampled_from(EMPTY_SHAPES)))
    return [a], lambda x: (v(x).exp(), v(x).relu(), v(x).sigmoid() * 2.0, -v(x), F(x).gelu(v(x)), v(x) > 0)


@case("empty_binary")
def _empty_binary(d: Draw) -> tuple[list, Callable]:
    sa, sb = d.pick(hst.sampled_from([((0, 3), (3,)), ((2, 0, 1), (1, 4)), ((0,), ()), ((3, 0), (3, 1)),
                                      ((0, 1), (1, 0))]))
    a, va = d.viewed(sa)
    b, vb = d.viewed(sb, "nonzero")
    return [a, b], lambda x, y: (va(x) + vb(y), va(x) * vb(y), va(x) / vb(y), lib(x).maximum(va(x), vb(y)),
                                 lib(x).where(va(x) > vb(y), va(x), vb(y)), va(x) < vb(y))


@case("empty_reductions")
def _empty_reductions(d: Draw) -> tuple[list, Callable]:
    s = d.pick(hst.sampled_from(EMPTY_SHAPES[1:]))
    dim = d.int(0, len(s) - 1)
    keep = d.pick(hst.booleans())
    a, v = d.viewed(s)

    def fn(x: Any) -> Any:
        y = v(x)
        outs = [y.sum(), y.sum(dim=dim, keepdim=keep), y.prod(dim=dim, keepdim=keep), y.cumsum(dim),
                y.logsumexp(dim, keep)]  # over a size-0 dimension: -inf, as in torch
        if s[dim]:  # max, min and mean over a size-0 dimension have no value (an error, as in torch)
            outs += [y.mean(dim=dim, keepdim=keep), y.amax(dim=dim, keepdim=keep), y.argmin(dim=dim)]
        return tuple(outs)
    return [a], fn


@case("empty_matmul")
def _empty_matmul(d: Draw) -> tuple[list, Callable]:
    # inner dimension 0 (the product is zeros), outer dimensions 0, and an empty batch
    sa, sb = d.pick(hst.sampled_from([((3, 0), (0, 2)), ((0,), (0,)), ((2, 0), (0,)), ((0, 3), (3, 2)),
                                      ((2, 3), (3, 0)), ((2, 0, 3), (3, 2)), ((0, 2, 3), (3, 4))]))
    a, va = d.viewed(sa)
    b, vb = d.viewed(sb)
    return [a, b], lambda x, y: va(x) @ vb(y)


@case("empty_cat")
def _empty_cat(d: Draw) -> tuple[list, Callable]:
    a, va = d.viewed((0, 3))
    b, vb = d.viewed((2, 3))
    c, vc = d.viewed((2, 0))
    return [a, b, c], lambda x, y, z: (lib(x).cat([va(x), vb(y)], dim=0), lib(x).cat([vb(y), vc(z)], dim=1),
                                       lib(x).cat([va(x), va(x)], dim=1), lib(x).stack([vc(z), vc(z)], dim=0))


@case("empty_indexing")
def _empty_indexing(d: Draw) -> tuple[list, Callable]:
    a, va = d.viewed((3, 2))
    e, ve = d.viewed((0, 3))
    none = np.zeros((3, 2), dtype=bool)
    idx = np.zeros((0,), dtype=np.int32)

    def fn(x: Any, y: Any, m: Any, i: Any) -> Any:
        z = va(x) * 1.0
        z[m] = -1.0  # an all-false mask writes nothing
        return (va(x)[m], va(x)[i], va(x)[2:2], va(x)[:, 1:1] * 2.0, va(x).index_select(0, i),
                va(x).gather(0, i.reshape(0, 1)), ve(y)[:, 1], ve(y)[i], ve(y).flip(0), z)
    return [a, e, none, idx], fn


@case("empty_softmax_cross_entropy")
def _empty_softmax(d: Draw) -> tuple[list, Callable]:
    x, vx = d.viewed((0, 4), "wide")
    y, vy = d.viewed((3, 0), "wide")
    t = np.zeros((0,), dtype=np.int32)
    red = d.pick(hst.sampled_from(["mean", "sum", "none"]))  # mean over no rows is NaN, as in torch
    return [x, y, t], lambda x, y, t: (F(x).softmax(vx(x), dim=-1), F(x).log_softmax(vx(x), dim=0),
                                       F(y).softmax(vy(y), dim=0), F(x).cross_entropy(vx(x), t, reduction=red))


SEEDS = hst.integers(0, 2**32 - 1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@CONFORMANCE_SETTINGS
@given(data=hst.data(), seed=SEEDS)
def test_op_matches_cpu(device: str, case: Case, data: Any, seed: int) -> None:
    d = Draw(data, seed)
    inputs, fn = case.make(d)
    with np.errstate(all="ignore"):
        check_op(fn, *inputs, against="cpu", device=device, dtype="float32", order=case.order, seed=seed,
                 tol_scale=case.tol_scale, label=case.name)


def test_every_case_has_a_unique_name() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) > 80


# Built-in operators with a cpu forward that no case above needs to run, each with the
# reason. Keep it short: a new operator gets a case, not an entry here.
COVERAGE_EXEMPT: dict[str, str] = {}


class _OpsSeen:
    """Dispatch observer: the name of every operator whose native forward ran."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def on_op(self, op: Any, backend: Any, args: Any, outputs: Any, start_ns: int, duration_ns: int,
              phase: Any) -> None:
        self.names.add(op.name)


def test_every_cpu_operator_is_covered_by_a_case() -> None:
    # Runs every case on the cpu (forward and the derivatives it checks) for two fixed
    # examples and records which operators' cpu kernels ran. User operators other tests
    # register are not the suite's to cover: only built-in ones count.
    seen = _OpsSeen()

    @settings(max_examples=2, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=hst.data(), seed=SEEDS)
    def run_every_case(data: Any, seed: int) -> None:
        for c in CASES:
            inputs, fn = c.make(Draw(data, seed))
            with np.errstate(all="ignore"):
                run_st(fn, inputs, device="cpu", order=c.order, seed=seed)

    previous = set_dispatch_observer(seen)
    try:
        run_every_case()
    finally:
        set_dispatch_observer(previous)
    builtin = {op.name for op in global_operator_registry() if op.builtin and "cpu" in op.forwards}
    missing = sorted(builtin - seen.names - set(COVERAGE_EXEMPT))
    assert not missing, (f"operators with a cpu forward that no conformance case runs: {missing}; add a case "
                         "(or, with the reason, an entry in COVERAGE_EXEMPT)")
    stale = sorted(n for n in COVERAGE_EXEMPT if n not in builtin or n in seen.names)
    assert not stale, f"COVERAGE_EXEMPT entries that are covered or no longer cpu operators: {stale}; remove them"
