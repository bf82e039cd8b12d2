"""PyTorch parity of layout and indexing ops: reshape ... pad, __getitem__/__setitem__, gather."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import PARITY_SETTINGS, F, check_op, lib, shapes, values
from hypothesis import given
from hypothesis import strategies as hst

DTYPES = ("float32", "float64")
SEEDS = hst.integers(0, 2**32 - 1)


def _x(seed: int, shape: tuple) -> np.ndarray:
    return values(np.random.default_rng(seed), shape)


# ---- reshape family -------------------------------------------------------------------

@hst.composite
def reshape_target(draw: Any) -> tuple:
    """A shape and another shape with the same number of elements (maybe with a -1)."""
    shape = draw(shapes(0, 4, 0, 4))
    n = int(np.prod(shape))
    if n == 0:
        return shape, draw(hst.sampled_from([(0,), (2, 0), (0, 3, 1)]))
    factors = []
    rest = n
    for p in (2, 3, 5, 7):
        while rest % p == 0:
            factors.append(p)
            rest //= p
    factors = draw(hst.permutations(factors))
    cut = sorted(draw(hst.lists(hst.integers(0, len(factors)), max_size=3)))
    parts, start = [], 0
    for c in [*cut, len(factors)]:
        parts.append(int(np.prod(factors[start:c])))
        start = c
    if draw(hst.booleans()):
        parts[draw(hst.integers(0, len(parts) - 1))] = -1
    return shape, tuple(parts)


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(st_=reshape_target(), seed=SEEDS)
def test_reshape_view(dtype: str, st_: tuple, seed: int) -> None:
    shape, target = st_
    x = _x(seed, shape)
    check_op(lambda x: x.reshape(target) * x.reshape(-1).sum(), x, dtype=dtype, seed=seed, label=f"reshape{target}")
    check_op(lambda x: x.reshape(*target), x, dtype=dtype, seed=seed, label="reshape_varargs")
    check_op(lambda x: x.view(target), x, dtype=dtype, seed=seed, label="view")
    check_op(lambda x: lib(x).reshape(x, target), x, dtype=dtype, seed=seed, label="st.reshape")
    check_op(lambda x: x.reshape(target).view_as(x), x, dtype=dtype, seed=seed, label="view_as")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 4, 0, 3), data=hst.data(), seed=SEEDS)
def test_flatten_squeeze_unsqueeze(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    nd = len(shape)
    x = _x(seed, shape)
    a = data.draw(hst.integers(-nd, nd - 1))
    b = data.draw(hst.integers(-nd, nd - 1))
    start, end = sorted((a % nd, b % nd))
    check_op(lambda x: x.flatten(), x, dtype=dtype, label="flatten")
    check_op(lambda x: x.flatten(start, end), x, dtype=dtype, label=f"flatten({start},{end})")
    check_op(lambda x: lib(x).flatten(x, start_dim=start), x, dtype=dtype, label="st.flatten")
    check_op(lambda x: x.squeeze(), x, dtype=dtype, label="squeeze")
    check_op(lambda x: x.squeeze(a), x, dtype=dtype, label=f"squeeze({a})")
    both = tuple(sorted({a % nd, b % nd}))
    check_op(lambda x: x.squeeze(both), x, dtype=dtype, label=f"squeeze({both})")
    u = data.draw(hst.integers(-nd - 1, nd))
    check_op(lambda x: x.unsqueeze(u), x, dtype=dtype, label=f"unsqueeze({u})")
    check_op(lambda x: lib(x).unsqueeze(x, u).squeeze(u), x, dtype=dtype, label="st.unsqueeze")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 4, 0, 4), data=hst.data(), seed=SEEDS)
def test_transpose_permute(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    nd = len(shape)
    x = _x(seed, shape)
    d0 = data.draw(hst.integers(-nd, nd - 1))
    d1 = data.draw(hst.integers(-nd, nd - 1))
    perm = data.draw(hst.permutations(range(nd)))
    check_op(lambda x: x.transpose(d0, d1) * 2.0, x, dtype=dtype, label=f"transpose({d0},{d1})")
    check_op(lambda x: lib(x).transpose(x, d0, d1), x, dtype=dtype, label="st.transpose")
    check_op(lambda x: x.permute(*perm).exp(), x, dtype=dtype, label=f"permute{perm}")
    check_op(lambda x: x.permute(perm), x, dtype=dtype, label="permute_tuple")
    check_op(lambda x: lib(x).permute(x, tuple(perm)), x, dtype=dtype, label="st.permute")
    check_op(lambda x: x.flip(tuple(perm[:1])), x, dtype=dtype, label="flip")
    if nd == 2:
        check_op(lambda x: x.T @ x, x, dtype=dtype, label="T")
        check_op(lambda x: x.t().sin(), x, dtype=dtype, label="t")
    if nd >= 2:
        check_op(lambda x: x.mT, x, dtype=dtype, label="mT")


@hst.composite
def expand_shapes(draw: Any) -> tuple:
    base = draw(shapes(0, 3, 0, 3))
    lead = draw(shapes(0, 2, 0, 3))
    target = list(lead)
    for s in base:
        target.append(draw(hst.integers(0, 3)) if s == 1 else s)
    spec = [t if (i < len(lead) or draw(hst.booleans())) else -1 for i, t in enumerate(target)]
    return base, tuple(target), tuple(spec)


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(sh=expand_shapes(), seed=SEEDS)
def test_expand(dtype: str, sh: tuple, seed: int) -> None:
    base, target, spec = sh
    x = _x(seed, base)
    if spec:
        check_op(lambda x: x.expand(*spec) * 1.5, x, dtype=dtype, label=f"expand{spec}")
    check_op(lambda x: x.expand(target).cos(), x, dtype=dtype, label="expand_tuple")
    check_op(lambda x: x.broadcast_to(target), x, dtype=dtype, label="broadcast_to")
    y = np.zeros(target)
    check_op(lambda x, y: x.expand_as(y), x, y, dtype=dtype, label="expand_as")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 3, 0, 3), data=hst.data(), seed=SEEDS)
def test_cat_stack(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    nd = len(shape)
    dim = data.draw(hst.integers(-nd, nd - 1))
    sizes = data.draw(hst.lists(hst.integers(0, 3), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    parts = []
    for s in sizes:
        sh = list(shape)
        sh[dim] = s
        parts.append(values(rng, sh))
    check_op(lambda *ts: lib(ts[0]).cat(list(ts), dim=dim), *parts, dtype=dtype, label=f"cat(dim={dim})")
    check_op(lambda *ts: lib(ts[0]).cat(ts, dim), *parts, dtype=dtype, label="cat_tuple")
    check_op(lambda *ts: lib(ts[0]).concat(list(ts), dim=dim), *parts, dtype=dtype, label="concat")
    same = [values(rng, shape) for _ in sizes]
    sdim = data.draw(hst.integers(-nd - 1, nd))
    check_op(lambda *ts: lib(ts[0]).stack(list(ts), dim=sdim), *same, dtype=dtype, label=f"stack(dim={sdim})")
    check_op(lambda *ts: lib(ts[0]).stack(ts) * ts[0], *same, dtype=dtype, label="stack_mul")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 3, 0, 5), data=hst.data(), seed=SEEDS)
def test_split_chunk_unbind(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    nd = len(shape)
    dim = data.draw(hst.integers(-nd, nd - 1))
    n = shape[dim]
    x = _x(seed, shape)
    size = data.draw(hst.integers(1, 4))
    check_op(lambda x: x.split(size, dim), x, dtype=dtype, label=f"split({size}, {dim})")
    check_op(lambda x: lib(x).split(x, size, dim=dim), x, dtype=dtype, label="st.split")
    cuts = sorted(data.draw(hst.lists(hst.integers(0, n), max_size=3)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    check_op(lambda x: x.split(sizes, dim=dim), x, dtype=dtype, label=f"split({sizes}, {dim})")
    chunks = data.draw(hst.integers(1, 5))
    if n:  # torch and ours agree on chunk sizes; torch returns a single empty chunk for n == 0
        check_op(lambda x: x.chunk(chunks, dim), x, dtype=dtype, label=f"chunk({chunks}, {dim})")
        check_op(lambda x: lib(x).chunk(x, chunks, dim=dim), x, dtype=dtype, label="st.chunk")
    check_op(lambda x: x.unbind(dim) if n else (x * 1,), x, dtype=dtype, label=f"unbind({dim})")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 4, 1, 4), data=hst.data(), value=hst.sampled_from([0.0, -1.5]), seed=SEEDS)
def test_pad(dtype: str, shape: tuple, data: Any, value: float, seed: int) -> None:
    """Constant padding of the last dimensions; negative sizes crop."""
    x = _x(seed, shape)
    k = data.draw(hst.integers(1, len(shape)))
    pad: list[int] = []
    for d in range(k):
        size = shape[-1 - d]
        lo = data.draw(hst.integers(-min(size - 1, 1), 2))
        hi = data.draw(hst.integers(-min(size - 1 - max(-lo, 0), 1), 2))
        pad += [lo, hi]
    check_op(lambda x: F(x).pad(x, tuple(pad), value=value), x, dtype=dtype, label=f"pad{pad}")
    check_op(lambda x: F(x).pad(x, pad) * x.sum(), x, dtype=dtype, label="pad_default")


@pytest.mark.parametrize("sizes", [(1, 1), (2, 1), (2, 3), (3, 1, 2), (0, 2)])
def test_repeat(sizes: tuple) -> None:
    x = np.arange(6.0).reshape(2, 3)
    check_op(lambda x: x.repeat(*sizes), x, dtype="float64", label=f"repeat{sizes}")


# ---- indexing -----------------------------------------------------------------------------

@hst.composite
def basic_key(draw: Any, shape: tuple) -> tuple:
    """A basic index: ints, slices with positive steps, None and at most one Ellipsis."""
    key: list[Any] = []
    dims = list(range(len(shape)))
    consumed = draw(hst.integers(0, len(shape)))
    for d in dims[:consumed]:
        n = shape[d]
        kind = draw(hst.sampled_from(["int", "slice", "full", "none"] if n else ["slice", "full", "none"]))
        if kind == "int":
            key.append(draw(hst.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(hst.one_of(hst.none(), hst.integers(-n - 1, n + 1)))
            stop = draw(hst.one_of(hst.none(), hst.integers(-n - 1, n + 1)))
            step = draw(hst.one_of(hst.none(), hst.integers(1, 3)))
            key.append(slice(start, stop, step))
        elif kind == "full":
            key.append(slice(None))
        else:
            key.append(None)
            key.append(slice(None))
    if draw(hst.booleans()):
        # an Ellipsis covers the dims no entry names: anywhere when every dim is named
        # (it then covers none), else at the end
        where = draw(hst.integers(0, len(key))) if consumed == len(shape) else len(key)
        key.insert(where, Ellipsis)
    return tuple(key)


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(0, 4, 0, 4), data=hst.data(), seed=SEEDS)
def test_getitem_basic(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    x = _x(seed, shape)
    key = data.draw(basic_key(shape))
    check_op(lambda x: x[key] * 2.0, x, dtype=dtype, label=f"x[{key}]")
    if len(key) == 1:
        check_op(lambda x: x[key[0]], x, dtype=dtype, label=f"x[{key[0]}]")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 3, 0, 4), data=hst.data(), seed=SEEDS)
def test_getitem_advanced(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    """Bool masks and integer arrays (with repeated indices, whose gradients add up)."""
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    mask = np.asarray(rng.random(shape) > 0.5)
    check_op(lambda x, m: x[m], x, mask, dtype=dtype, label="x[mask]")
    lead = np.asarray(rng.random(shape[:1]) > 0.3)
    check_op(lambda x, m: x[m].exp(), x, lead, dtype=dtype, label="x[mask_dim0]")
    n = shape[0]
    if n:
        idx_shape = data.draw(shapes(0, 2, 0, 3))
        idx = np.asarray(rng.integers(-n, n, idx_shape))
        check_op(lambda x, i: x[i], x, idx, dtype=dtype, label="x[int_tensor]")
        lst = [int(v) for v in rng.integers(0, n, data.draw(hst.integers(1, 4)))]
        check_op(lambda x: x[lst] * 3.0, x, dtype=dtype, label=f"x[{lst}]")
        if len(shape) >= 2 and shape[1]:
            cols = np.asarray(rng.integers(0, shape[1], idx.shape))
            check_op(lambda x, i, j: x[i, j], x, idx, cols, dtype=dtype, label="x[i, j]")
            check_op(lambda x, i: x[:, i[..., None]] if i.ndim else x[:, i], x, np.asarray(cols),
                     dtype=dtype, label="x[:, i]")
            if shape[-1]:
                check_op(lambda x, i: x[..., 0][i], x, idx, dtype=dtype, label="x[..., 0][i]")


@hst.composite
def setitem_case(draw: Any) -> tuple:
    shape = draw(shapes(1, 3, 1, 4))
    kind = draw(hst.sampled_from(["basic", "mask", "int_array", "int"]))
    if kind == "basic":
        key = draw(basic_key(shape))
    elif kind == "int":
        key = (draw(hst.integers(-shape[0], shape[0] - 1)),)
    elif kind == "mask":
        key = ("mask",)
    else:
        key = ("perm", draw(hst.integers(1, shape[0])))  # distinct indices: writes do not collide
    return shape, key


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=setitem_case(), scalar=hst.booleans(), broadcast=hst.booleans(), seed=SEEDS)
def test_setitem(dtype: str, case: tuple, scalar: bool, broadcast: bool, seed: int) -> None:
    """``z[key] = v`` on a non-leaf: gradients reach both the tensor and the written value."""
    shape, key = case
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    extra: list[np.ndarray] = []
    if key == ("mask",):
        extra = [np.asarray(rng.random(shape) > 0.5)]
    elif key and key[0] == "perm":
        extra = [np.asarray(rng.permutation(shape[0])[:key[1]])]
    target = np.zeros(shape)[extra[0] if extra else key].shape
    if broadcast:
        target = target[1:]  # one dimension fewer: v broadcasts over the first
    v = values(rng, target)

    def fn(x: Any, v: Any, *k: Any) -> Any:
        z = x * 1.0
        z[k[0] if k else key] = 0.5 if scalar else v
        return z * x

    check_op(fn, x, v, *extra, dtype=dtype, seed=seed, label=f"setitem {key} scalar={scalar}")


@hst.composite
def gather_case(draw: Any) -> tuple:
    shape = draw(shapes(1, 3, 1, 4))
    nd = len(shape)
    dim = draw(hst.integers(-nd, nd - 1))
    idx_shape = tuple(draw(hst.integers(0, s)) if i != dim % nd else draw(hst.integers(0, 4))
                      for i, s in enumerate(shape))
    return shape, dim, idx_shape


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=gather_case(), seed=SEEDS)
def test_gather(dtype: str, case: tuple, seed: int) -> None:
    shape, dim, idx_shape = case
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    idx = np.asarray(rng.integers(0, shape[dim], idx_shape))
    check_op(lambda x, i: x.gather(dim, i), x, idx, dtype=dtype, label=f"gather({dim})")
    check_op(lambda x, i: lib(x).gather(x, dim, i).sin(), x, idx, dtype=dtype, label=f"st.gather({dim})")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 3, 1, 4), data=hst.data(), seed=SEEDS)
def test_index_select(dtype: str, shape: tuple, data: Any, seed: int) -> None:
    nd = len(shape)
    dim = data.draw(hst.integers(-nd, nd - 1))
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    idx = np.asarray(rng.integers(0, shape[dim], data.draw(hst.integers(0, 5))))
    check_op(lambda x, i: x.index_select(dim, i), x, idx, dtype=dtype, label=f"index_select({dim})")
    check_op(lambda x, i: lib(x).index_select(x, dim, i) ** 2, x, idx, dtype=dtype, label="st.index_select")
