"""Neural-network functions, as in ``torch.nn.functional`` (import as ``F``).

Composite functions here are written with Tensor operations and so run on every
backend and differentiate (twice) automatically; softmax and log-softmax use fused
kernels where a backend has them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import DTypeError, ShapeError
from ..ops.registry import dispatch as _d

__all__ = [
    "relu", "leaky_relu", "gelu", "silu", "softplus", "sigmoid", "tanh", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits",
    "binary_cross_entropy", "dropout", "layer_norm", "batch_norm", "linear", "conv2d", "max_pool2d",
    "avg_pool2d", "embedding", "pad", "unfold", "fold", "one_hot", "normalize",
    "scaled_dot_product_attention",
]


def _t(x: Any) -> Any:
    if not hasattr(x, "_be"):
        raise TypeError(f"expected a Tensor; got {type(x).__name__}")
    return x


def relu(x: Any, inplace: bool = False) -> Any:
    return _d("relu", x)


def leaky_relu(x: Any, negative_slope: float = 0.01, inplace: bool = False) -> Any:
    return _d("leaky_relu", x, negative_slope=negative_slope)


def gelu(x: Any, approximate: str = "none") -> Any:
    """GELU, exact (erf) or ``approximate="tanh"``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh'; got {approximate!r}")
    return _d("gelu", x, approximate=approximate)


def silu(x: Any, inplace: bool = False) -> Any:
    return _d("silu", x)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    return _d("softplus", x, beta=beta, threshold=threshold)


def sigmoid(x: Any) -> Any:
    return _d("sigmoid", x)


def tanh(x: Any) -> Any:
    return _d("tanh", x)


def softmax(x: Any, dim: int = -1, dtype: Any = None) -> Any:
    x = x if dtype is None else x.to(dtype)
    return x.softmax(dim)


def log_softmax(x: Any, dim: int = -1, dtype: Any = None) -> Any:
    x = x if dtype is None else x.to(dtype)
    return x.log_softmax(dim)


def _reduce(loss: Any, reduction: str, op: str) -> Any:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def nll_loss(logp: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Any:
    """Negative log-likelihood of class indices ``target`` under log-probabilities ``logp`` (N, C, ...)."""
    _t(logp)
    _t(target)
    if target.dtype.is_floating_point:
        raise DTypeError(f"nll_loss: target must hold integer class indices; got {target.dtype.name}", op="nll_loss")
    if logp.ndim < 1 or tuple(target.shape) != tuple(logp.shape[:1]) + tuple(logp.shape[2:]):
        raise ShapeError(f"nll_loss: input of shape {tuple(logp.shape)} (N, C, ...) needs a target of shape "
                         f"{tuple(logp.shape[:1]) + tuple(logp.shape[2:])}; got {tuple(target.shape)}",
                         op="nll_loss", shapes=(tuple(logp.shape), tuple(target.shape)))
    valid = target != ignore_index
    safe = _d("where", valid, target, 0)
    picked = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = valid.to(logp.dtype)
    if weight is not None:
        w = w * weight[safe]
    loss = -picked * w
    if reduction == "mean":
        return _weighted_mean(loss.sum(), w.sum())
    return _reduce(loss, reduction, "nll_loss")


def _weighted_mean(total: Any, weight_sum: Any) -> Any:
    """``total / weight_sum``; with every target ignored NaN as in torch, with a 0 (not NaN) gradient."""
    empty = weight_sum == 0
    return total / _d("where", empty, 1.0, weight_sum) + _d("where", empty, math.nan, weight_sum * 0.0)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """Cross-entropy between logits ``input`` (N, C, ...) and class indices (or class probabilities).

    >>> import spiraltorch_nb as st
    >>> logits = st.tensor([[2.0, 0.5, -1.0]])
    >>> round(st.nn.functional.cross_entropy(logits, st.tensor([0])).item(), 4)
    0.2413
    """
    _t(input)
    _t(target)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    if input.ndim == 2 and weight is None and not target.dtype.is_floating_point:
        if tuple(target.shape) != (input.shape[0],):
            raise ShapeError(f"cross_entropy: logits of shape {tuple(input.shape)} need class indices of shape "
                             f"({input.shape[0]},); got {tuple(target.shape)}", op="cross_entropy",
                             shapes=(tuple(input.shape), tuple(target.shape)))
        return _d("cross_entropy", input, target, ignore_index=ignore_index, label_smoothing=float(label_smoothing),
                  reduction=reduction)
    return _cross_entropy_composite(input, target, weight, ignore_index, reduction, label_smoothing)


def _cross_entropy_composite(input: Any, target: Any, weight: Any, ignore_index: int, reduction: str,
                             label_smoothing: float) -> Any:
    logp = input.log_softmax(1 if input.ndim > 1 else 0)
    if target.dtype.is_floating_point:  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise ShapeError(f"cross_entropy: probability targets must have the input's shape {tuple(input.shape)}; "
                             f"got {tuple(target.shape)}", op="cross_entropy")
        n_cls = input.shape[1] if input.ndim > 1 else input.shape[0]
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / n_cls
        if weight is not None:  # class weights scale each class's term (the mean stays over samples)
            target = target * weight.reshape((n_cls,) + (1,) * max(input.ndim - 2, 0))
        loss = -(logp * target).sum(dim=1 if input.ndim > 1 else 0)
        return _reduce(loss, reduction, "cross_entropy")
    if input.ndim == 1:  # one sample: (C,) logits, a 0-d target; reduction='none' gives a 0-d loss
        out = _cross_entropy_composite(input.unsqueeze(0), target.reshape(1), weight, ignore_index, reduction,
                                       label_smoothing)
        return out.reshape(()) if reduction == "none" else out
    nll = nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll
    n_cls = logp.shape[1]
    valid = (target != ignore_index).to(logp.dtype)
    if weight is None:
        smooth = -logp.mean(dim=1) * valid
        denom = valid.sum()
    else:  # as PyTorch: class-weighted smoothing term, normalized by the targets' weights
        smooth = -(logp * weight.reshape((1, n_cls) + (1,) * (logp.ndim - 2))).sum(dim=1) * (valid / n_cls)
        denom = (weight[_d("where", valid > 0, target, 0)] * valid).sum()
    smooth = _weighted_mean(smooth.sum(), denom) if reduction == "mean" else _reduce(smooth, reduction, "cross_entropy")
    return nll * (1 - label_smoothing) + smooth * label_smoothing


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    _check_same_shape(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    _check_same_shape(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction, "l1_loss")


def _check_same_shape(a: Any, b: Any, op: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(f"{op}: input shape {tuple(a.shape)} and target shape {tuple(b.shape)} differ; "
                         "reshape one of them (broadcasting a loss is almost always a bug)",
                         op=op, shapes=(tuple(a.shape), tuple(b.shape)))


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Any:
    """Sigmoid + binary cross-entropy in one numerically stable expression."""
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    # log(1 + exp(-|x|)) + max(x, 0) - x * y ; with pos_weight p: (1 + (p - 1) y) * softplus(-x) + (1 - y) x
    if pos_weight is None:
        loss = input.clamp(min=0.0) - input * target + (-input.abs()).exp().log1p()
    else:
        lw = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + lw * ((-input.abs()).exp().log1p() + (-input).clamp(min=0.0))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Any:
    _check_same_shape(input, target, "binary_cross_entropy")
    logx = input.log().clamp(min=-100.0)
    log1mx = (1.0 - input).log().clamp(min=-100.0)
    loss = -(target * logx + (1.0 - target) * log1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def dropout(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1]; got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    from ..ops.creation import rand

    keep = rand(tuple(x.shape), dtype=x.dtype, device=x.device) >= p
    return x * keep * (1.0 / (1.0 - p))


def layer_norm(x: Any, normalized_shape: Sequence[int] | int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Normalize over the last ``len(normalized_shape)`` dimensions, then scale and shift."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    ns = tuple(normalized_shape)
    if tuple(x.shape[-len(ns):]) != ns:
        raise ShapeError(f"layer_norm: the input's trailing shape {tuple(x.shape[-len(ns):])} does not match "
                         f"normalized_shape {ns}", op="layer_norm", shapes=(tuple(x.shape), ns))
    if x.device.type == "cuda" and ns:  # one fused kernel instead of eight elementwise passes
        from ..ops.fused import layer_norm as _fused_layer_norm

        return _fused_layer_norm(x, ns, weight, bias, eps)
    dims = tuple(range(x.ndim - len(ns), x.ndim))
    mu = x.mean(dim=dims, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(dim=dims, keepdim=True)
    y = xc * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Any:
    """Batch normalization over (N, C, ...) inputs; updates running stats in place when training."""
    dims = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        mu = x.mean(dim=dims, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(dim=dims, keepdim=True)
        if running_mean is not None:
            from ..autograd.grad_mode import no_grad

            n = x.numel() // x.shape[1]
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mu.reshape(-1).detach() * momentum)
                running_var.mul_(1 - momentum).add_(var.reshape(-1).detach() * (momentum * n / max(n - 1, 1)))
    else:
        mu = running_mean.reshape(shape)
        var = running_var.reshape(shape)
        xc = x - mu
    y = xc * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """``x @ weight.T + bias``."""
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input has {x.shape[-1]} features but the weight {tuple(weight.shape)} expects "
                         f"{weight.shape[-1]}", op="linear", shapes=(tuple(x.shape), tuple(weight.shape)))
    if bias is None:
        return _d("linear", x, weight)
    return _d("linear", x, weight, bias)


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair; got {v}")
    return (int(v[0]), int(v[1]))


def unfold(x: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Any:
    """Extract sliding blocks: (N, C, H, W) -> (N, C*kh*kw, L), as ``torch.nn.functional.unfold``."""
    if x.ndim != 4:
        raise ShapeError(f"unfold: expected a 4-d input (N, C, H, W); got shape {tuple(x.shape)}", op="unfold")
    return _d("unfold", x, kernel_size=_pair(kernel_size, "kernel_size"), dilation=_pair(dilation, "dilation"),
              padding=_pair(padding, "padding"), stride=_pair(stride, "stride"))


def fold(x: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Any:
    """The adjoint of :func:`unfold`: sum blocks back into (N, C, H, W)."""
    return _d("fold", x, output_size=_pair(output_size, "output_size"), kernel_size=_pair(kernel_size, "kernel_size"),
              dilation=_pair(dilation, "dilation"), padding=_pair(padding, "padding"), stride=_pair(stride, "stride"))


def _out_hw(h: int, w: int, k: tuple, d: tuple, p: tuple, s: tuple) -> tuple[int, int]:
    return ((h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1)


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Any:
    """2-d convolution (cross-correlation) of (N, C_in, H, W) with (C_out, C_in/groups, kh, kw)."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ShapeError(f"conv2d: expected a 4-d input and weight; got {tuple(x.shape)} and {tuple(weight.shape)}",
                         op="conv2d", shapes=(tuple(x.shape), tuple(weight.shape)))
    n, c, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    if c != cin_g * groups or cout % groups:
        raise ShapeError(f"conv2d: input has {c} channels but the weight {tuple(weight.shape)} with groups={groups} "
                         f"expects {cin_g * groups} (and out channels divisible by groups)",
                         op="conv2d", shapes=(tuple(x.shape), tuple(weight.shape)))
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            d = _pair(dilation, "dilation")
            total = (d[0] * (kh - 1), d[1] * (kw - 1))
            padding = (total[0] // 2, total[1] // 2)
            if total[0] % 2 or total[1] % 2:  # an odd total: the extra row/column goes at the end, as in torch
                x = pad(x, (0, total[1] % 2, 0, total[0] % 2))
                h, w = x.shape[2], x.shape[3]
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    s, p, d = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    oh, ow = _out_hw(h, w, (kh, kw), d, p, s)
    cols = unfold(x, (kh, kw), d, p, s)  # (N, C*kh*kw, L)
    if groups == 1:
        out = weight.reshape(cout, -1) @ cols  # (N, Cout, L)
    else:
        cols = cols.reshape(n, groups, cin_g * kh * kw, oh * ow)
        out = weight.reshape(groups, cout // groups, cin_g * kh * kw) @ cols  # (N, G, Cout/G, L)
    out = out.reshape(n, cout, oh, ow)
    if bias is not None:
        out = out + bias.reshape(1, cout, 1, 1)
    return out


def _pool_args(kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> tuple:
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] else _pair(stride, "stride")
    return k, s, _pair(padding, "padding"), _pair(dilation, "dilation")


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over sliding windows of (N, C, H, W)."""
    if ceil_mode or return_indices:
        raise NotImplementedError("max_pool2d: ceil_mode and return_indices are not supported yet")
    k, s, p, d = _pool_args(kernel_size, stride, padding, dilation)
    n, c, h, w = x.shape
    oh, ow = _out_hw(h, w, k, d, p, s)
    cols = _d("unfold", x, kernel_size=k, dilation=d, padding=p, stride=s, fill=-math.inf)
    return cols.reshape(n, c, k[0] * k[1], oh * ow).amax(dim=2).reshape(n, c, oh, ow)


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Any:
    """Mean over sliding windows of (N, C, H, W) (padding counted, as PyTorch's default)."""
    if ceil_mode or not count_include_pad:
        raise NotImplementedError("avg_pool2d: ceil_mode and count_include_pad=False are not supported yet")
    k, s, p, d = _pool_args(kernel_size, stride, padding, 1)
    n, c, h, w = x.shape
    oh, ow = _out_hw(h, w, k, d, p, s)
    cols = _d("unfold", x, kernel_size=k, dilation=d, padding=p, stride=s)
    return cols.reshape(n, c, k[0] * k[1], oh * ow).mean(dim=2).reshape(n, c, oh, ow)


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight`` picked by the integer tensor ``input``."""
    if input.dtype.is_floating_point:
        raise DTypeError(f"embedding: indices must be integers; got {input.dtype.name}", op="embedding")
    out = weight[input.reshape(-1)]
    if padding_idx is not None:  # that row is looked up but never trained, as in torch
        pad_row = padding_idx + weight.shape[0] if padding_idx < 0 else padding_idx
        out = _d("where", (input.reshape(-1) == pad_row).unsqueeze(1), out.detach(), out)
    return out.reshape(*input.shape, weight.shape[1])


def pad(x: Any, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Any:
    """Pad (or crop, with negative sizes) the last dimensions: ``pad=(left, right, top, bottom, ...)``."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported yet (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: needs an even number of sizes, at most 2 per dimension; got {tuple(pad)} for "
                         f"shape {tuple(x.shape)}", op="pad")
    return _d("pad", x, pad=tuple(int(p) for p in pad), value=value)


def one_hot(x: Any, num_classes: int = -1) -> Any:
    """Integer class indices -> one-hot vectors of the device's default integer type (int64 on cpu)."""
    from ..ops.creation import arange

    n = int(x.max().item()) + 1 if num_classes < 0 else num_classes
    hot = x.unsqueeze(-1) == arange(n, device=x.device)
    return hot.to(x._be.default_int)


def normalize(x: Any, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Any:
    return x / x.norm(p=p, dim=dim, keepdim=True).clamp(min=eps)


def scaled_dot_product_attention(q: Any, k: Any, v: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Any:
    """softmax(q k^T / sqrt(d) + mask) v, with an optional causal or boolean/additive mask."""
    d = q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) * (scale if scale is not None else 1.0 / math.sqrt(d))
    if is_causal:
        from ..ops.creation import ones

        lq, lk = q.shape[-2], k.shape[-2]
        causal = ones(lq, lk, device=q.device).numpy()
        import numpy as np

        mask = np.triu(causal, k=1).astype(bool)
        from ..ops.creation import tensor

        scores = _d("where", tensor(mask, device=q.device), -math.inf, scores)
    if attn_mask is not None:
        if attn_mask.dtype.is_bool:
            scores = _d("where", attn_mask, scores, -math.inf)
        else:
            scores = scores + attn_mask
    attn = scores.softmax(-1)
    if dropout_p:
        attn = dropout(attn, dropout_p)
    return attn @ v
