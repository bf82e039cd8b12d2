"""Bounded, incrementally sent series for live charts.

A training run may log a million points; a chart needs a few thousand. Each
:class:`DownsampledSeries` keeps at most ``capacity`` points: raw points are averaged
into buckets of ``stride`` points, and when the store fills up, neighbouring pairs are
merged and the stride doubles. So a series of ``n`` raw points costs
``O(capacity)`` memory, and sending it costs ``O(capacity * log2(n / capacity))``
bytes over the whole run: new points are sent as they come, and the whole (halved)
series is re-sent only when it is compacted, which happens once per doubling.

The last, partly filled bucket is sent too, marked as a provisional ``tail`` point
that the next update replaces, so the curve reaches the latest step at once.

>>> s = DownsampledSeries(capacity=4)
>>> for step in range(10):
...     s.append(step, float(step))
>>> s.stride, s.total
(4, 10)
>>> reset, xs, ys, tail = s.take()
>>> reset, xs.tolist(), tail
(True, [1.5, 5.5, 8.5], True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["DownsampledSeries", "pack_points"]


class DownsampledSeries:
    """At most ``capacity`` bucket-mean points of a growing (x, y) series, with send bookkeeping."""

    __slots__ = ("capacity", "x", "y", "n", "sent", "stride", "total", "reset", "_ax", "_ay", "_an",
                 "_tail_sent", "last_x", "last_y")

    def __init__(self, capacity: int = 2048) -> None:
        if capacity < 4 or capacity % 2:
            raise ValueError(f"capacity must be an even number >= 4; got {capacity}")
        self.capacity = capacity
        self.x = np.empty(capacity, dtype=np.float64)
        self.y = np.empty(capacity, dtype=np.float64)
        self.n = 0          # committed points held
        self.sent = 0       # committed points already sent
        self.stride = 1     # raw points per committed point
        self.total = 0      # raw points seen
        self.reset = True   # the next take() must replace the front end's copy
        self._ax = 0.0      # the open bucket: sums and count
        self._ay = 0.0
        self._an = 0
        self._tail_sent = False
        self.last_x = math.nan
        self.last_y = math.nan

    def append(self, x: float, y: float) -> None:
        """Add one raw point."""
        self.total += 1
        self._tail_sent = False
        self.last_x, self.last_y = x, y
        self._ax += x
        self._ay += y
        self._an += 1
        if self._an >= self.stride:
            self._commit()

    def extend(self, xs: Any, ys: Any) -> None:
        """Add many raw points at once (a history read from a frame); same result as appending each."""
        xs = np.asarray(xs, dtype=np.float64).ravel()
        ys = np.asarray(ys, dtype=np.float64).ravel()
        if xs.shape != ys.shape:
            raise ValueError(f"extend needs as many x as y values; got {xs.size} and {ys.size}")
        i, n = 0, xs.size
        self._tail_sent = False
        while i < n:
            stride = self.stride
            if self._an or n - i < stride:  # finish the open bucket (or start one that stays open)
                k = min(n - i, stride - self._an)
                self._ax += float(xs[i:i + k].sum())
                self._ay += float(ys[i:i + k].sum())
                self._an += k
                self.total += k
                i += k
                if self._an >= stride:
                    self._commit()
                continue
            buckets = min(self.capacity - self.n, (n - i) // stride)
            end = i + buckets * stride
            self.x[self.n:self.n + buckets] = xs[i:end].reshape(buckets, stride).mean(axis=1)
            self.y[self.n:self.n + buckets] = ys[i:end].reshape(buckets, stride).mean(axis=1)
            self.n += buckets
            self.total += buckets * stride
            i = end
            if self.n == self.capacity:
                self._compact()
        if n:
            self.last_x, self.last_y = float(xs[-1]), float(ys[-1])

    def _commit(self) -> None:
        k = self.n
        self.x[k] = self._ax / self._an
        self.y[k] = self._ay / self._an
        self.n = k + 1
        self._ax = self._ay = 0.0
        self._an = 0
        if self.n == self.capacity:  # compact at once, so every later bucket has the new stride
            self._compact()

    def _compact(self) -> None:
        half = self.n // 2
        x, y = self.x, self.y
        x[:half] = (x[0:2 * half:2] + x[1:2 * half:2]) * 0.5
        y[:half] = (y[0:2 * half:2] + y[1:2 * half:2]) * 0.5
        self.n = half
        self.stride *= 2
        self.sent = 0
        self.reset = True

    @property
    def dirty(self) -> bool:
        """Whether :meth:`take` has something new to send."""
        return self.reset or self.sent < self.n or (self._an > 0 and not self._tail_sent)

    def take(self) -> tuple[bool, np.ndarray, np.ndarray, bool]:
        """What the front end lacks: ``(reset, xs, ys, tail)``; marks it sent.

        ``reset``: replace the stored series with these points (else append them).
        ``tail``: the last point is the open bucket's mean, to be replaced next time.
        """
        reset = self.reset
        start = 0 if reset else self.sent
        xs = self.x[start:self.n]
        ys = self.y[start:self.n]
        tail = self._an > 0
        if tail:
            xs = np.append(xs, self._ax / self._an)
            ys = np.append(ys, self._ay / self._an)
        else:
            xs, ys = xs.copy(), ys.copy()
        self.sent = self.n
        self.reset = False
        self._tail_sent = tail
        return reset, xs, ys, tail

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Every point held now (committed plus the open bucket), without changing send state."""
        xs, ys = self.x[:self.n].copy(), self.y[:self.n].copy()
        if self._an:
            xs = np.append(xs, self._ax / self._an)
            ys = np.append(ys, self._ay / self._an)
        return xs, ys

    def mark_all_unsent(self) -> None:
        """Make the next :meth:`take` send the whole series (a new view needs all of it)."""
        self.reset = True


def pack_points(xs: np.ndarray, ys: np.ndarray) -> bytes:
    """One little-endian float64 buffer: every x, then every y (what the front end unpacks)."""
    return np.concatenate([xs, ys]).astype("<f8", copy=False).tobytes()
