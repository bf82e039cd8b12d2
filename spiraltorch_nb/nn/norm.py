"""Normalization layers: LayerNorm, GroupNorm, BatchNorm1d, BatchNorm2d."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..autograd.grad_mode import no_grad
from ..errors import ShapeError
from ..ops import creation
from ..tensor import Tensor
from . import functional as F
from .module import Module
from .parameter import Parameter

__all__ = ["LayerNorm", "GroupNorm", "BatchNorm1d", "BatchNorm2d"]


def _affine_parameters(module: Module, shape: tuple[int, ...], affine: bool, bias: bool, device: Any,
                       dtype: Any) -> None:
    """The scale (ones) and shift (zeros) of a normalization layer, or None where switched off."""
    module.register_parameter("weight", Parameter(creation.ones(shape, device=device, dtype=dtype)) if affine else None)
    module.register_parameter("bias", Parameter(creation.zeros(shape, device=device, dtype=dtype))
                              if affine and bias else None)


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dimensions, then scale (ones) and shift (zeros).

    >>> import spiraltorch_nb as st
    >>> ln = st.nn.LayerNorm(4)
    >>> y = ln(st.randn(2, 4))
    >>> [round(v, 4) + 0.0 for v in y.mean(dim=-1).tolist()]
    [0.0, 0.0]
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = ns
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.has_bias = elementwise_affine and bias
        _affine_parameters(self, ns, elementwise_affine, bias, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.has_bias}")


class GroupNorm(Module):
    """Normalize each of ``num_groups`` channel groups of (N, C, ...) inputs, then scale and shift per channel."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Any = None, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ShapeError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        self.has_bias = affine and bias
        _affine_parameters(self, (num_channels,), affine, bias, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(f"GroupNorm expects (N, {self.num_channels}, ...); got shape {tuple(x.shape)}",
                             op="group_norm", shapes=(tuple(x.shape),))
        n = x.shape[0]
        g = x.reshape(n, self.num_groups, -1)
        mu = g.mean(dim=2, keepdim=True)
        gc = g - mu
        var = (gc * gc).mean(dim=2, keepdim=True)
        y = (gc * (var + self.eps).rsqrt()).reshape(x.shape)
        shape = (1, self.num_channels) + (1,) * (x.ndim - 2)
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.has_bias}"


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.has_bias = affine and bias
        if affine:
            self.weight = Parameter(creation.ones(num_features, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(creation.zeros(num_features, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", creation.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", creation.tensor(0, dtype="int64", device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean back to 0, running variance to 1, the batch count to 0."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.fill_(0.0)
                self.running_var.fill_(1.0)
                self.num_batches_tracked.fill_(0)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ShapeError(f"{type(self).__name__}({self.num_features}) expects input of shape {self._layout} with "
                             f"C={self.num_features}; got {tuple(x.shape)}", op="batch_norm", shapes=(tuple(x.shape),))
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats and x.numel() // x.shape[1] <= 1:
            raise ShapeError(f"{type(self).__name__}: batch statistics need more than one value per channel; got input "
                             f"of shape {tuple(x.shape)}. Use a larger batch or call .eval()", op="batch_norm")
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.has_bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, with running statistics for evaluation."""

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, with running statistics for evaluation.

    >>> import spiraltorch_nb as st
    >>> bn = st.nn.BatchNorm2d(3)
    >>> _ = bn(st.randn(4, 3, 5, 5))
    >>> int(bn.num_batches_tracked.item()), bn.running_mean.shape
    (1, (3,))
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"
