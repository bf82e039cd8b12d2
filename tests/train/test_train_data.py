"""DataLoader: batching, shuffling, seeds, drop_last, sources and devices."""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.train import DataLoader, DataLoaderError

X = np.arange(23 * 3, dtype=np.float64).reshape(23, 3)
Y = np.arange(23, dtype=np.int64)


def _rows(loader: DataLoader) -> list[np.ndarray]:
    return [yb.numpy().copy() for _, yb in loader]


def test_batches_cover_the_data_in_order_without_shuffle() -> None:
    loader = DataLoader(X, Y, batch_size=5)
    batches = list(loader)
    assert len(loader) == len(batches) == 5
    assert [tuple(xb.shape) for xb, _ in batches] == [(5, 3)] * 4 + [(3, 3)]
    assert all(isinstance(xb, st.Tensor) and isinstance(yb, st.Tensor) for xb, yb in batches)
    np.testing.assert_array_equal(np.concatenate([xb.numpy() for xb, _ in batches]), X)
    assert batches[0][1].dtype == st.int64 and batches[0][0].dtype == st.float64


def test_drop_last() -> None:
    loader = DataLoader(X, Y, batch_size=5, drop_last=True)
    ys = _rows(loader)
    assert len(loader) == len(ys) == 4
    assert sum(len(y) for y in ys) == 20


def test_shuffle_is_a_permutation_reproducible_and_new_each_epoch() -> None:
    loader = DataLoader(X, Y, batch_size=4, shuffle=True, seed=11)
    e0 = np.concatenate(_rows(loader))
    e1 = np.concatenate(_rows(loader))
    assert sorted(e0.tolist()) == list(range(23)) and sorted(e1.tolist()) == list(range(23))
    assert e0.tolist() != list(range(23)) and e0.tolist() != e1.tolist()
    again = DataLoader(X, Y, batch_size=4, shuffle=True, seed=11)
    np.testing.assert_array_equal(np.concatenate(_rows(again)), e0)
    np.testing.assert_array_equal(np.concatenate(_rows(again)), e1)
    again.set_epoch(0)
    np.testing.assert_array_equal(np.concatenate(_rows(again)), e0)
    other = DataLoader(X, Y, batch_size=4, shuffle=True, seed=12)
    assert np.concatenate(_rows(other)).tolist() != e0.tolist()
    # inputs and targets stay paired
    for xb, yb in DataLoader(X, Y, batch_size=4, shuffle=True, seed=3):
        np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])


def test_unseeded_shuffle_follows_manual_seed() -> None:
    st.manual_seed(5)
    a = np.concatenate(_rows(DataLoader(X, Y, batch_size=8, shuffle=True)))
    st.manual_seed(5)
    b = np.concatenate(_rows(DataLoader(X, Y, batch_size=8, shuffle=True)))
    np.testing.assert_array_equal(a, b)


def test_sources_tuple_tensors_dtype_and_no_aliasing() -> None:
    w = np.linspace(0, 1, 23)
    loader = DataLoader((X, Y, w), batch_size=10, dtype=st.float32)
    xb, yb, wb = next(iter(loader))
    assert xb.dtype == st.float32 and wb.dtype == st.float32 and yb.dtype == st.int64
    single = list(DataLoader(st.tensor(X), batch_size=10))
    assert all(len(b) == 1 for b in single) and single[0][0].shape == (10, 3)
    # changing a batch in place never changes the data set
    with st.no_grad():
        single[0][0].mul_(0.0)
    assert X[1, 1] == 4.0 and DataLoader(X, batch_size=10).__iter__().__next__()[0].numpy()[1, 1] == 4.0


def test_errors_and_repr() -> None:
    with pytest.raises(st.ShapeError, match="different numbers of samples"):
        DataLoader(X, Y[:5])
    with pytest.raises(DataLoaderError, match="batch_size"):
        DataLoader(X, Y, batch_size=0)
    with pytest.raises(DataLoaderError, match="scalar"):
        DataLoader(np.float64(3.0))
    assert "batch_size=5" in repr(DataLoader(X, Y, batch_size=5))


def test_batches_on_a_device(device: str) -> None:
    x32 = X.astype(np.float32)
    loader = DataLoader(x32, Y, batch_size=7, shuffle=True, seed=0, device=device)
    batches = list(loader)
    assert all(xb.device.type == device and yb.device.type == device for xb, yb in batches)
    np.testing.assert_array_equal(np.sort(np.concatenate([yb.numpy() for _, yb in batches])), Y)
    got = np.concatenate([xb.numpy() for xb, _ in batches])
    np.testing.assert_array_equal(np.sort(got[:, 0]), np.sort(x32[:, 0]))
    # a device tensor as the source is indexed on its device
    src = st.tensor(x32, device=device)
    from_dev = np.concatenate([b[0].numpy() for b in DataLoader(src, batch_size=7, shuffle=True, seed=0,
                                                                 device=device)])
    np.testing.assert_array_equal(from_dev, got)
