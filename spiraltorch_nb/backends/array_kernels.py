"""Forward kernels written once against an array namespace (NumPy or CuPy).

``build_kernels(xp, special)`` returns ``{op name: forward}``; the cpu backend calls it
with ``numpy``/``scipy.special`` and the cuda backend with ``cupy``/``cupyx.scipy.special``,
so both run the same code (CuPy mirrors NumPy's API). Kernels take native arrays and
keyword attributes and return native arrays; dtype promotion has already happened in
dispatch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, overload

__all__ = ["build_kernels", "normalize_dims"]


@overload
def normalize_dims(dim: None, ndim: int) -> None: ...
@overload
def normalize_dims(dim: int | Sequence[int], ndim: int) -> tuple[int, ...]: ...
def normalize_dims(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """``dim`` (None, an int or a sequence) as a tuple of non-negative axes, or None for all."""
    if dim is None:
        return None
    if isinstance(dim, int):
        dim = (dim,)
    out = []
    for d in dim:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % ndim if ndim else 0)
    return tuple(out)


def build_kernels(xp: Any, special: Any) -> dict[str, Callable[..., Any]]:
    """The kernel table for array namespace ``xp`` (see module docstring)."""
    k: dict[str, Callable[..., Any]] = {}
    asarray = xp.asarray
    SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
    INV_SQRT2 = 1.0 / math.sqrt(2.0)
    numpy_like = getattr(xp, "__name__", "") == "numpy"

    def scal(x: Any, v: Any) -> Any:
        # a Python scalar matched to the array's dtype so that float32 stays float32
        return x.dtype.type(v)

    # ---- unary ---------------------------------------------------------------
    k["neg"] = xp.negative
    k["abs"] = xp.abs
    k["sign"] = xp.sign
    k["exp"] = xp.exp
    k["log"] = xp.log
    k["log1p"] = xp.log1p
    k["expm1"] = xp.expm1
    k["sqrt"] = xp.sqrt
    k["sin"] = xp.sin
    k["cos"] = xp.cos
    k["tanh"] = xp.tanh
    k["floor"] = xp.floor
    k["ceil"] = xp.ceil
    k["round"] = xp.round
    k["logical_not"] = xp.logical_not
    k["erf"] = lambda x: special.erf(x).astype(x.dtype, copy=False)
    k["sigmoid"] = lambda x: special.expit(x).astype(x.dtype, copy=False)

    def rsqrt(x: Any) -> Any:
        return xp.reciprocal(xp.sqrt(x))

    zero_rows: dict[tuple[int, Any], Any] = {}

    def relu(x: Any) -> Any:
        if numpy_like and x.ndim and x.shape[-1] >= 16:
            # NumPy's maximum against a scalar has no vector loop; against a row of zeros
            # broadcast over the leading dims it has one (about 1.8x faster)
            key = (x.shape[-1], x.dtype)
            zeros = zero_rows.get(key)
            if zeros is None:
                if len(zero_rows) >= 64:
                    zero_rows.clear()
                zeros = zero_rows[key] = xp.zeros(x.shape[-1], dtype=x.dtype)
                zeros.flags.writeable = False
            return xp.maximum(x, zeros)
        return xp.maximum(x, scal(x, 0))

    def relu_grad(g: Any, x: Any) -> Any:
        return g * (x > 0)

    def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
        return xp.where(x > 0, x, x * scal(x, negative_slope))

    def gelu(x: Any, approximate: str = "none") -> Any:
        if approximate == "tanh":
            inner = scal(x, SQRT_2_OVER_PI) * (x + scal(x, 0.044715) * x * x * x)
            return scal(x, 0.5) * x * (scal(x, 1.0) + xp.tanh(inner))
        return (scal(x, 0.5) * x * (scal(x, 1.0) + special.erf(x * scal(x, INV_SQRT2)))).astype(x.dtype, copy=False)

    def silu(x: Any) -> Any:
        return (x * special.expit(x)).astype(x.dtype, copy=False)

    def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
        bx = x * scal(x, beta)
        soft = xp.log1p(xp.exp(xp.minimum(bx, scal(x, threshold)))) / scal(x, beta)
        return xp.where(bx > threshold, x, soft)

    def clamp(x: Any, min: Any = None, max: Any = None) -> Any:
        if min is not None:
            x = xp.maximum(x, min if not isinstance(min, float | int) else scal(x, min))
        if max is not None:
            x = xp.minimum(x, max if not isinstance(max, float | int) else scal(x, max))
        return x

    k.update(rsqrt=rsqrt, relu=relu, relu_grad=relu_grad, leaky_relu=leaky_relu, gelu=gelu, silu=silu,
             softplus=softplus, clamp=clamp)

    # ---- binary (Python scalars arrive as they were given) ---------------------------
    def binary(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(a: Any, b: Any) -> Any:
            if not hasattr(a, "dtype"):
                a = scal(b, a)
            elif not hasattr(b, "dtype"):
                b = scal(a, b)
            return fn(a, b)
        return run

    for name, fn in {
        "add": xp.add, "sub": xp.subtract, "mul": xp.multiply, "div": xp.true_divide,
        "floordiv": xp.floor_divide, "remainder": xp.remainder, "pow": xp.power,
        "maximum": xp.maximum, "minimum": xp.minimum, "eq": xp.equal, "ne": xp.not_equal,
        "lt": xp.less, "le": xp.less_equal, "gt": xp.greater, "ge": xp.greater_equal,
        "logical_and": xp.logical_and, "logical_or": xp.logical_or, "logical_xor": xp.logical_xor,
        "atan2": xp.arctan2,
    }.items():
        k[name] = binary(fn)

    def where(c: Any, a: Any, b: Any) -> Any:
        if not hasattr(a, "dtype") and not hasattr(b, "dtype"):
            # two Python scalars take torch's default dtypes: float32, else int64, else bool
            kinds = {type(a), type(b)}
            dt = xp.float32 if float in kinds else (xp.bool_ if kinds == {bool} else xp.int64)
            a = xp.asarray(a, dtype=dt)
        if not hasattr(a, "dtype"):
            a = scal(b, a)
        if not hasattr(b, "dtype"):
            b = scal(a, b)
        return xp.where(c, a, b)

    def cast(x: Any, dtype: Any) -> Any:
        return x.astype(dtype.np)

    def clone(x: Any) -> Any:
        return x.copy()

    k.update(where=where, cast=cast, clone=clone)

    # ---- reductions -------------------------------------------------------------
    def axes(x: Any, dim: Any) -> Any:
        return normalize_dims(dim, x.ndim)

    def rsum(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        dt = xp.int64 if x.dtype.kind in "biu" else None
        return asarray(xp.sum(x, axis=axes(x, dim), keepdims=keepdim, dtype=dt))

    def rmean(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        return asarray(xp.mean(x, axis=axes(x, dim), keepdims=keepdim, dtype=x.dtype))

    def rprod(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        dt = xp.int64 if x.dtype.kind in "biu" else None
        return asarray(xp.prod(x, axis=axes(x, dim), keepdims=keepdim, dtype=dt))

    def _empty_check(x: Any, dim: Any, name: str) -> None:
        ax = axes(x, dim)
        if x.size == 0 and (ax is None or any(x.shape[a] == 0 for a in ax)):
            raise ValueError(f"{name}() of an empty tensor over a zero-size dimension has no identity; give a non-empty input")

    def ramax(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        _empty_check(x, dim, "max")
        return asarray(xp.max(x, axis=axes(x, dim), keepdims=keepdim))

    def ramin(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        _empty_check(x, dim, "min")
        return asarray(xp.min(x, axis=axes(x, dim), keepdims=keepdim))

    def rarg(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(x: Any, dim: int | None = None, keepdim: bool = False) -> Any:
            _empty_check(x, dim, name)
            if dim is None:
                r = fn(x.reshape(-1))
                r = asarray(r, dtype=xp.int64)
                return r.reshape((1,) * x.ndim) if keepdim else r
            ax = axes(x, dim)[0]
            return asarray(fn(x, axis=ax, keepdims=keepdim), dtype=xp.int64)
        return run

    def cumsum(x: Any, dim: int) -> Any:
        dt = xp.int64 if x.dtype.kind in "biu" else x.dtype
        return xp.cumsum(x, axis=axes(x, dim)[0], dtype=dt)

    k.update(sum=rsum, mean=rmean, prod=rprod, amax=ramax, amin=ramin,
             argmax=rarg(xp.argmax, "argmax"), argmin=rarg(xp.argmin, "argmin"), cumsum=cumsum)

    # ---- linear algebra -------------------------------------------------------------
    def matmul(a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul needs tensors with at least one dimension; got shapes {a.shape} and {b.shape}")
        return asarray(xp.matmul(a, b))

    def linear(x: Any, w: Any, b: Any = None) -> Any:
        y = xp.matmul(x, w.T)
        if b is not None:
            y += b
        return y

    def linear_backward(g: Any, x: Any, w: Any, needs: tuple[bool, bool, bool] = (True, True, True)) -> Any:
        gx = xp.matmul(g, w) if needs[0] else None
        gw = gb = None
        if needs[1] or needs[2]:
            rows = math.prod(x.shape[:-1])  # not reshape(-1, ...): -1 is ambiguous when a size is 0
            g2 = g if g.ndim == 2 else g.reshape(rows, g.shape[-1])
            if needs[1]:
                gw = xp.matmul(g2.T, x if x.ndim == 2 else x.reshape(rows, x.shape[-1]))
            if needs[2]:
                gb = g2.sum(axis=0)
        return gx, gw, gb

    def matmul_backward(g: Any, a: Any, b: Any, needs: tuple[bool, bool] = (True, True)) -> Any:
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul_backward takes 2-d operands; got shapes {a.shape} and {b.shape}")
        return (asarray(xp.matmul(g, b.T)) if needs[0] else None,
                asarray(xp.matmul(a.T, g)) if needs[1] else None)

    k["matmul"] = matmul
    k["matmul_backward"] = matmul_backward
    k["linear"] = linear
    k["linear_backward"] = linear_backward

    # in-place updates (no tape: the autograd path uses the out-of-place ops)
    def inplace(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(a: Any, b: Any) -> Any:
            if not hasattr(b, "dtype"):
                b = scal(a, b)
            fn(a, b, out=a)
            return a
        return run

    for name, fn in {"add_": xp.add, "sub_": xp.subtract, "mul_": xp.multiply, "div_": xp.true_divide}.items():
        k[name] = inplace(fn)

    # optimizer updates (ops/update.py): in place, one temporary at most, torch's order
    def axpy_(x: Any, y: Any, alpha: float = 1.0) -> Any:
        if alpha == 1:
            xp.add(x, y, out=x)
        else:
            xp.add(x, xp.multiply(y, scal(x, alpha)), out=x)
        return x

    def lerp_(x: Any, y: Any, weight: float) -> Any:
        diff = asarray(xp.subtract(y, x))
        if weight < 0.5:
            xp.multiply(diff, scal(x, weight), out=diff)
            xp.add(x, diff, out=x)
        else:
            xp.multiply(diff, scal(x, 1.0 - weight), out=diff)
            xp.subtract(y, diff, out=x)
        return x

    def addcmul_(x: Any, a: Any, b: Any, value: float) -> Any:
        tmp = asarray(xp.multiply(a, scal(x, value)))
        xp.multiply(tmp, b, out=tmp)
        xp.add(x, tmp, out=x)
        return x

    def addcdiv_(x: Any, a: Any, b: Any, value: float) -> Any:
        tmp = asarray(xp.multiply(a, scal(x, value)))
        xp.divide(tmp, b, out=tmp)
        xp.add(x, tmp, out=x)
        return x

    def maximum_(x: Any, y: Any) -> Any:
        xp.maximum(x, y, out=x)
        return x

    k.update(axpy_=axpy_, lerp_=lerp_, addcmul_=addcmul_, addcdiv_=addcdiv_, maximum_=maximum_)

    # ---- layout ---------------------------------------------------------------------
    def reshape(x: Any, shape: tuple[int, ...]) -> Any:
        return x.reshape(shape)

    def permute(x: Any, dims: tuple[int, ...]) -> Any:
        return x.transpose(dims)

    def expand(x: Any, shape: tuple[int, ...]) -> Any:
        return xp.broadcast_to(x, shape)

    def flip(x: Any, dims: tuple[int, ...]) -> Any:
        return xp.flip(x, axis=dims)

    def cat(*xs: Any, dim: int = 0) -> Any:
        return xp.concatenate(xs, axis=dim)

    def pad(x: Any, pad: tuple[int, ...], value: float = 0.0) -> Any:
        # torch order: last dim first, (left, right) pairs; negative pads crop
        width = [(0, 0)] * x.ndim
        crop = [slice(None)] * x.ndim
        for i in range(len(pad) // 2):
            d = x.ndim - 1 - i
            lo, hi = pad[2 * i], pad[2 * i + 1]
            width[d] = (max(lo, 0), max(hi, 0))
            crop[d] = slice(max(-lo, 0), min(hi, 0) or None)
        out = xp.pad(x, width, mode="constant", constant_values=value)
        return out[tuple(crop)]

    def getitem(x: Any, key: Any) -> Any:
        return asarray(x[key])

    def getitem_grad(g: Any, key: Any, shape: tuple[int, ...]) -> Any:
        out = xp.zeros(shape, dtype=g.dtype)
        if _is_basic(key):
            out[key] = g
        else:
            _add_at(out, key, g)
        return out

    def index_put(x: Any, v: Any, key: Any, accumulate: bool = False) -> Any:
        out = x.copy()
        if not hasattr(v, "dtype"):
            v = scal(x, v)
        if accumulate:
            _add_at(out, key, v)
        else:
            out[key] = v
        return out

    def _add_at(out: Any, key: Any, v: Any) -> None:
        if hasattr(xp, "add") and hasattr(xp.add, "at"):
            xp.add.at(out, key, v)
        else:  # cupy
            import cupyx

            cupyx.scatter_add(out, key, v)

    def gather(x: Any, index: Any, dim: int) -> Any:
        # as in torch, the index may be smaller than x along the other dims (NumPy would broadcast)
        if index.ndim == x.ndim and index.shape != x.shape:
            x = x[tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(index.shape))]
        return xp.take_along_axis(x, index, axis=dim)

    def gather_grad(g: Any, index: Any, dim: int, shape: tuple[int, ...]) -> Any:
        out = xp.zeros(shape, dtype=g.dtype)
        # open-grid indices built by hand: cupy.indices has no ``sparse`` argument
        nd = index.ndim
        idx = [xp.arange(n).reshape((1,) * i + (n,) + (1,) * (nd - i - 1)) for i, n in enumerate(index.shape)]
        idx[dim] = index
        _add_at(out, tuple(idx), g)
        return out

    k.update(reshape=reshape, permute=permute, expand=expand, flip=flip, cat=cat, pad=pad,
             getitem=getitem, getitem_grad=getitem_grad, index_put=index_put,
             gather=gather, gather_grad=gather_grad)

    # ---- fused neural-network kernels ---------------------------------------------------
    errstate = getattr(xp, "errstate", None)

    def _quiet() -> Any:
        return errstate(divide="ignore", invalid="ignore") if errstate is not None else contextlib.nullcontext()

    # a row of all -inf (or with +inf) gives nan, as torch's does, without NumPy's warning
    def softmax(x: Any, dim: int = -1) -> Any:
        with _quiet():
            m = xp.max(x, axis=dim, keepdims=True) if x.size else 0
            e = xp.exp(x - m)
            return e / xp.sum(e, axis=dim, keepdims=True)

    def log_softmax(x: Any, dim: int = -1) -> Any:
        with _quiet():
            m = xp.max(x, axis=dim, keepdims=True) if x.size else 0
            z = x - m
            return z - xp.log(xp.sum(xp.exp(z), axis=dim, keepdims=True))

    def _ce_targets(t: Any, ignore_index: int, c: int) -> tuple[Any, Any]:
        """``(valid mask or None when every target counts, targets with ignored ones set to 0)``.

        Checks that the counted targets are class indices in ``[0, c)``. The usual case (an
        ``ignore_index`` outside ``[0, c)`` and every target in range) costs two reductions
        and no mask.
        """
        lo, hi = int(t.min()), int(t.max())
        if lo >= 0 and hi < c and not 0 <= ignore_index < c:
            return None, t
        valid = t != ignore_index
        safe = xp.where(valid, t, 0)
        if int(safe.min()) < 0 or int(safe.max()) >= c:
            raise IndexError(f"cross_entropy: target values must be in [0, {c}) or ignore_index={ignore_index}")
        return valid, safe

    def _shifted(x: Any) -> tuple[Any, int]:
        """``x - x.max(axis=1)`` of a 2-d array as a new array, and its class axis.

        NumPy reduces a short contiguous axis one row at a time, so for few classes the
        work runs class-major: on a transposed contiguous copy of shape ``(classes, rows)``
        (class axis 0), reduced across rows, about 3x faster. Elsewhere the result has
        ``x``'s layout (class axis 1). Per-row vectors broadcast against the class-major
        layout as they are and against the other with ``[:, None]``.
        """
        if numpy_like and x.shape[1] <= 64:
            w = x.T.copy()  # always a copy (ascontiguousarray would return x.T itself for one row)
            w -= xp.maximum.reduce(w, axis=0)
            return w, 0
        return x - x.max(axis=1, keepdims=True), 1

    def cross_entropy(x: Any, t: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                      reduction: str = "mean") -> Any:
        n, c = x.shape
        if n == 0:
            z = xp.zeros((0,), dtype=x.dtype)
            return z if reduction == "none" else asarray(xp.array(xp.nan if reduction == "mean" else 0, dtype=x.dtype))
        valid, safe = _ce_targets(t, ignore_index, c)
        z, axis = _shifted(x)
        rows = xp.arange(n)
        lse = xp.log(xp.exp(z).sum(axis=axis))
        loss = lse - (z[safe, rows] if axis == 0 else z[rows, safe])
        if label_smoothing:
            loss = loss * x.dtype.type(1.0 - label_smoothing) + x.dtype.type(label_smoothing) * (lse - z.mean(axis=axis))
        if valid is not None:
            loss = xp.where(valid, loss, x.dtype.type(0))
        if reduction == "mean":
            if valid is None:
                return asarray(loss.sum() / x.dtype.type(n))
            with _quiet():  # every target ignored: NaN, as in torch
                return asarray(loss.sum() / valid.sum().astype(x.dtype))  # astype: a CuPy count stays on the GPU
        if reduction == "sum":
            return asarray(loss.sum())
        return loss

    # first-order backward kernels (ops/fused.py routes to them when create_graph=False)
    def softmax_backward(g: Any, y: Any, dim: int = -1) -> Any:
        gy = g * y
        gy -= y * xp.sum(gy, axis=dim, keepdims=True)
        return gy

    def log_softmax_backward(g: Any, y: Any, dim: int = -1) -> Any:
        return g - xp.exp(y) * xp.sum(g, axis=dim, keepdims=True)

    def cross_entropy_backward(g: Any, x: Any, t: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                               reduction: str = "mean") -> Any:
        n, c = x.shape
        if n == 0:
            return xp.zeros_like(x)
        valid, safe = _ce_targets(t, ignore_index, c)
        # the gradient of row i is scale_i * (softmax(x_i) - smoothed one-hot(t_i)), where
        # scale_i is the incoming gradient, over the count for "mean", 0 for ignored rows
        if reduction == "none":
            scale = g if valid is None else valid * g
        else:
            scale = g.astype(x.dtype)
            if reduction == "mean":
                count = n if valid is None else int(valid.sum())
                if count == 0:  # every target ignored: the gradient is zero, as in torch
                    return xp.zeros_like(x)
                scale = scale / x.dtype.type(count)
            if valid is not None:
                scale = valid * scale
        p, axis = _shifted(x)  # a new array: everything below happens in place
        xp.exp(p, out=p)
        r = scale / p.sum(axis=axis)  # normalize and scale in one pass
        p *= r if axis == 0 else r[:, None]
        hit = scale * x.dtype.type(1.0 - label_smoothing)
        rows = xp.arange(n)
        if axis == 0:
            p[safe, rows] -= hit
        else:
            p[rows, safe] -= hit
        if label_smoothing:
            spread = scale * x.dtype.type(label_smoothing / c)
            p -= spread if axis == 0 or not getattr(spread, "ndim", 0) else spread[:, None]
        return p.T if axis == 0 else p

    k.update(softmax=softmax, log_softmax=log_softmax, cross_entropy=cross_entropy,
             softmax_backward=softmax_backward, log_softmax_backward=log_softmax_backward,
             cross_entropy_backward=cross_entropy_backward)

    # ---- im2col / col2im (conv2d and pooling are composed from these) -----------------
    def unfold(x: Any, kernel_size: tuple[int, int], dilation: tuple[int, int],
               padding: tuple[int, int], stride: tuple[int, int], fill: float = 0.0) -> Any:
        n, c, h, w = x.shape
        kh, kw = kernel_size
        dh, dw = dilation
        ph, pw = padding
        sh, sw = stride
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh <= 0 or ow <= 0:
            raise ValueError(f"the kernel {kernel_size} (dilation {dilation}) is larger than the padded input {(h + 2 * ph, w + 2 * pw)}")
        if ph or pw:
            x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant", constant_values=fill)
        cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
        for i in range(kh):
            hi = i * dh
            for j in range(kw):
                wj = j * dw
                cols[:, :, i, j] = x[:, :, hi:hi + sh * (oh - 1) + 1:sh, wj:wj + sw * (ow - 1) + 1:sw]
        return cols.reshape(n, c * kh * kw, oh * ow)

    def fold(cols: Any, output_size: tuple[int, int], kernel_size: tuple[int, int],
             dilation: tuple[int, int], padding: tuple[int, int], stride: tuple[int, int]) -> Any:
        n = cols.shape[0]
        kh, kw = kernel_size
        dh, dw = dilation
        ph, pw = padding
        sh, sw = stride
        h, w = output_size
        c = cols.shape[1] // (kh * kw)
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = cols.reshape(n, c, kh, kw, oh, ow)
        out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
        for i in range(kh):
            hi = i * dh
            for j in range(kw):
                wj = j * dw
                out[:, :, hi:hi + sh * (oh - 1) + 1:sh, wj:wj + sw * (ow - 1) + 1:sw] += cols[:, :, i, j]
        return out[:, :, ph:ph + h, pw:pw + w]

    k.update(unfold=unfold, fold=fold)
    return k


def _is_basic(key: Any) -> bool:
    """Whether an index key uses only ints, slices, None and Ellipsis (no advanced indexing)."""
    if not isinstance(key, tuple):
        key = (key,)
    return all(k is None or k is Ellipsis or isinstance(k, int | slice) for k in key)
