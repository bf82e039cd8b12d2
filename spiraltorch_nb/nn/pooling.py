"""Pooling layers over (N, C, H, W): MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class MaxPool2d(Module):
    """Max over ``kernel_size`` windows (``stride`` defaults to the kernel size)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        if return_indices or ceil_mode:
            raise NotImplementedError("MaxPool2d: return_indices and ceil_mode are not supported yet")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode=False")


class AvgPool2d(Module):
    """Mean over ``kernel_size`` windows (zero padding counted, as PyTorch's default)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        if ceil_mode or not count_include_pad:
            raise NotImplementedError("AvgPool2d: ceil_mode and count_include_pad=False are not supported yet")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _bins(n: int, out: int) -> list[tuple[int, int]]:
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Module):
    """Average into a fixed ``output_size`` whatever the input size (``1`` is global average pooling)."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: Tensor) -> Tensor:
        from ..functions import cat

        if x.ndim != 4:
            raise ShapeError(f"AdaptiveAvgPool2d expects (N, C, H, W); got shape {tuple(x.shape)}",
                             op="adaptive_avg_pool2d", shapes=(tuple(x.shape),))
        h, w = x.shape[2], x.shape[3]
        size = (self.output_size,) * 2 if isinstance(self.output_size, int) else self.output_size
        oh = h if size[0] is None else size[0]
        ow = w if size[1] is None else size[1]
        if h % oh == 0 and w % ow == 0:
            return F.avg_pool2d(x, (h // oh, w // ow))
        rows = []
        for h0, h1 in _bins(h, oh):
            cols = [x[:, :, h0:h1, w0:w1].mean(dim=(2, 3), keepdim=True) for w0, w1 in _bins(w, ow)]
            rows.append(cat(cols, dim=3))
        return cat(rows, dim=2)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
