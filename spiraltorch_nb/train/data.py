"""DataLoader: mini-batches of tensors from NumPy arrays or tensors held in memory.

>>> import numpy as np, spiraltorch_nb as st
>>> x, y = np.arange(10.0).reshape(5, 2), np.array([0, 1, 0, 1, 1])
>>> loader = st.train.DataLoader(x, y, batch_size=2)
>>> len(loader), [tuple(xb.shape) for xb, yb in loader]
(3, [(2, 2), (2, 2), (1, 2)])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..device import Device, get_default_device
from ..dtypes import get_dtype
from ..errors import ShapeError, SpiralTorchError
from ..tensor import Tensor

__all__ = ["DataLoader", "DataLoaderError"]


class DataLoaderError(SpiralTorchError, ValueError):
    """DataLoader arguments that cannot be used."""


def _as_source(a: Any, i: int, dtype: Any) -> np.ndarray | Tensor:
    """A NumPy array (cpu data, indexed on the host) or a device tensor (indexed on its device)."""
    if isinstance(a, Tensor):
        if a.device.type == "cpu":
            a = a.detach().numpy()
        else:
            t = a.detach()
            if dtype is not None and t.dtype.is_floating_point and t.dtype is not dtype:
                t = t.to(dtype)
            return t
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.ndim == 0:
        raise DataLoaderError(f"DataLoader: array {i} is a scalar; each array needs a first (sample) dimension")
    if arr.dtype.kind == "O":
        raise DataLoaderError(f"DataLoader: array {i} has dtype object (ragged or mixed data); pass numeric arrays "
                              "of one shape per sample")
    if dtype is not None and arr.dtype.kind == "f" and arr.dtype != dtype.np:
        arr = arr.astype(dtype.np)
    return arr


def _holds_int64(device: Device) -> bool:
    from ..backends import get_backend

    return any(d.name == "int64" for d in get_backend(device).dtypes)


class DataLoader:
    """Iterate over mini-batches of in-memory arrays, optionally shuffled.

    Parameters
    ----------
    x : array-like, Tensor, or tuple of them
        Inputs with samples along the first dimension; a tuple gives several arrays
        batched together (e.g. ``(x, y, weights)``).
    y : array-like or Tensor, optional
        Targets, batched with ``x``.
    batch_size : int, default 32
    shuffle : bool, default False
        A new permutation each epoch (each ``iter()``), derived from ``seed`` and the
        epoch number, so runs repeat exactly.
    seed : int, optional
        The shuffling seed; when omitted it is drawn from the generator that
        ``st.manual_seed`` seeds.
    drop_last : bool, default False
        Skip the last batch when it is smaller than ``batch_size``.
    device : str or Device, optional
        Where batches are created; the default device when omitted.
    dtype : dtype, optional
        Convert floating-point arrays to this dtype (integer labels are left alone,
        except that int64 becomes int32 on a device without 64-bit integers, like wgpu).

    Yields
    ------
    tuple of Tensor
        One tensor per array: ``(xb, yb)``, or ``(xb,)`` without targets.
    """

    def __init__(self, x: Any, y: Any = None, *, batch_size: int = 32, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, device: Any = None, dtype: Any = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise DataLoaderError(f"DataLoader: batch_size must be a positive integer; got {batch_size!r}")
        dt = get_dtype(dtype) if dtype is not None else None
        arrays = tuple(x) if isinstance(x, tuple) else (x,)
        if y is not None:
            arrays = arrays + (y,)
        if not arrays:
            raise DataLoaderError("DataLoader: got no arrays; pass x (and y)")
        self._sources = [_as_source(a, i, dt) for i, a in enumerate(arrays)]
        lengths = [int(s.shape[0]) for s in self._sources]
        if len(set(lengths)) != 1:
            raise ShapeError(f"DataLoader: the arrays have different numbers of samples {lengths}; every array "
                             "needs the same first dimension", shapes=tuple(tuple(s.shape) for s in self._sources))
        self.num_samples = lengths[0]
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = Device(device) if device is not None else None
        if seed is None:
            from ..backends.random import generator

            seed = int(generator("cpu").integers(0, 2**62))
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next ``iter()`` uses."""
        self.epoch = int(epoch)

    def permutation(self, epoch: int | None = None) -> np.ndarray:
        """The sample order of ``epoch`` (the next one by default): ``arange`` unless shuffling."""
        e = self.epoch if epoch is None else int(epoch)
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, e]).permutation(self.num_samples)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self.permutation() if self.shuffle else None
        self.epoch += 1
        device = self.device if self.device is not None else get_default_device()
        n, bs = self.num_samples, self.batch_size
        stop = (n // bs) * bs if self.drop_last else n
        int64_ok = _holds_int64(device)
        for start in range(0, stop, bs):
            end = min(start + bs, n)
            idx = order[start:end] if order is not None else None
            yield tuple(self._batch(src, start, end, idx, device, int64_ok) for src in self._sources)

    @staticmethod
    def _batch(src: np.ndarray | Tensor, start: int, end: int, idx: np.ndarray | None, device: Device,
               int64_ok: bool) -> Tensor:
        from ..ops.creation import as_tensor, tensor

        if isinstance(src, Tensor):
            if idx is None:
                part = src[start:end].clone()
            else:
                part = src[tensor(idx.astype(np.int32), device=src.device)]
            return part if part.device == device else part.to(device)
        # a fresh array per batch: a batch changed in place never changes the data set
        part = src[idx] if idx is not None else src[start:end].copy()
        if part.dtype == np.int64 and not int64_ok:
            part = part.astype(np.int32)  # e.g. integer labels for wgpu, which has no 64-bit integers
        return as_tensor(part, device=device)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(s.shape)) for s in self._sources)
        return (f"DataLoader({shapes}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, batches={len(self)})")
