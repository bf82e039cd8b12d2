"""``.to(device)`` between every pair of available backends: values survive, gradients flow back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe

BACKENDS = ("cpu", "wgpu", "cuda")


def _pairs() -> list:
    params = []
    for src, dst in itertools.permutations(BACKENDS, 2):
        missing = [b for b in (src, dst) if not probe(b)["available"]]
        marks = [pytest.mark.skip(reason="; ".join(f"{b} unavailable: {probe(b)['reason']}" for b in missing))] \
            if missing else []
        params.append(pytest.param(src, dst, marks=marks, id=f"{src}->{dst}"))
    return params


@pytest.mark.parametrize("src, dst", _pairs())
def test_move_keeps_values_and_routes_gradients(src: str, dst: str) -> None:
    data = np.arange(12, dtype=np.float32).reshape(3, 4) / 4.0
    x = st.tensor(data, device=src, requires_grad=True)
    y = x.to(dst)
    assert y.device == st.device(dst) and y.dtype == st.float32
    np.testing.assert_array_equal(y.numpy(), data)
    ((y * y).sum() * 0.5).backward()  # d/dx = x, computed on dst, returned to src
    assert x.grad.device == st.device(src)
    np.testing.assert_allclose(x.grad.numpy(), data, rtol=1e-6)


@pytest.mark.parametrize("src, dst", _pairs())
def test_move_of_integer_and_bool_tensors(src: str, dst: str) -> None:
    ints = st.tensor([[1, -2], [3, 4]], dtype="int32", device=src)
    flags = st.tensor([True, False, True], device=src)
    assert ints.to(dst).tolist() == [[1, -2], [3, 4]] and ints.to(dst).dtype == st.int32
    assert flags.to(dst).tolist() == [True, False, True]
