"""The bounded, incrementally sent series behind the dashboard's curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from spiraltorch_nb.widgets._series import DownsampledSeries, pack_points


class FrontEnd:
    """What telemetry_dashboard.js does with each item: replace, or drop the tail and append."""

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.tail = False

    def apply(self, reset: bool, xs: np.ndarray, ys: np.ndarray, tail: bool) -> None:
        if reset:
            self.xs, self.ys = list(xs), list(ys)
        else:
            if self.tail:
                self.xs.pop()
                self.ys.pop()
            self.xs += list(xs)
            self.ys += list(ys)
        self.tail = tail


def test_memory_stays_bounded_and_means_are_exact() -> None:
    s = DownsampledSeries(capacity=64)
    raw = np.random.default_rng(0).standard_normal(100_000)
    for i, v in enumerate(raw):
        s.append(float(i), float(v))
    assert s.total == 100_000
    assert s.n < 64 and s.stride & (s.stride - 1) == 0  # a power of two
    xs, ys = s.snapshot()
    whole = s.n * s.stride
    expected = raw[:whole].reshape(s.n, s.stride).mean(axis=1)
    np.testing.assert_allclose(ys[:s.n], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(xs[:s.n], np.arange(whole).reshape(s.n, s.stride).mean(axis=1))
    # the open bucket is the mean of the raw points after the last whole bucket
    assert math.isclose(ys[-1], raw[whole:].mean())


@settings(max_examples=40, deadline=None)
@given(sizes=hs.lists(hs.integers(min_value=0, max_value=700), min_size=1, max_size=12),
       capacity=hs.sampled_from([4, 8, 16, 64]))
def test_front_end_copy_matches_after_every_update(sizes: list[int], capacity: int) -> None:
    s = DownsampledSeries(capacity=capacity)
    front = FrontEnd()
    step = 0
    for size in sizes:
        for _ in range(size):
            s.append(float(step), float(step % 7))
            step += 1
        if s.dirty:
            front.apply(*s.take())
        xs, ys = s.snapshot()
        assert front.xs == list(xs) and front.ys == list(ys)
        assert not s.dirty


def test_extend_equals_appending_one_by_one() -> None:
    xs = np.arange(10_007, dtype=np.float64)
    ys = np.sin(xs)
    one, bulk = DownsampledSeries(64), DownsampledSeries(64)
    for x, y in zip(xs, ys, strict=True):
        one.append(x, y)
    for a, b in ((0, 5), (5, 3001), (3001, 10_007)):
        bulk.extend(xs[a:b], ys[a:b])
    assert (one.n, one.stride, one.total) == (bulk.n, bulk.stride, bulk.total)
    for u, v in zip(one.snapshot(), bulk.snapshot(), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-12)


def test_points_sent_grow_logarithmically() -> None:
    """Sending every 100 steps: the whole run costs O(capacity * log n) points, not n."""

    def points_sent(n: int) -> int:
        s = DownsampledSeries(capacity=1024)
        sent = 0
        for i in range(n):
            s.append(float(i), 1.0)
            if i % 100 == 99:
                sent += s.take()[1].size
        return sent

    small, large = points_sent(25_000), points_sent(100_000)
    assert large < 100_000 / 4  # far fewer than one per step
    assert large < 1.6 * small  # four times the steps, not four times the bytes


def test_pack_points_layout() -> None:
    buf = pack_points(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert np.frombuffer(buf, dtype="<f8").tolist() == [1.0, 2.0, 3.0, 4.0]


def test_capacity_must_be_even() -> None:
    with pytest.raises(ValueError, match="even"):
        DownsampledSeries(capacity=7)
