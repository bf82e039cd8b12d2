"""Moving int64 module state to a device without int64 (wgpu): narrowed to int32 only when it fits."""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.nn._state import to_device

_INFO = probe("wgpu")
pytestmark = pytest.mark.skipif(not _INFO["available"], reason=f"wgpu unavailable: {_INFO['reason']}")


class Counter(st.nn.Module):
    def __init__(self, count: object) -> None:
        super().__init__()
        self.lin = st.nn.Linear(2, 2)
        self.register_buffer("count", st.tensor(count, dtype="int64"))


def test_int64_state_in_int32_range_is_narrowed() -> None:
    bn = st.nn.BatchNorm1d(3)
    bn.num_batches_tracked.fill_(2**31 - 1)
    bn.to("wgpu")
    assert bn.num_batches_tracked.device == "wgpu" and bn.num_batches_tracked.dtype is st.int32
    assert bn.num_batches_tracked.item() == 2**31 - 1
    m = Counter([-(2**31), 0, 7])
    m.to("wgpu")
    assert m.count.dtype is st.int32 and m.count.tolist() == [-(2**31), 0, 7]


@pytest.mark.parametrize("values, shown", [(2**31, "the value 2147483648"),
                                           ([-(2**31) - 1, 5, 2**40], "values from -2147483649 to 1099511627776")])
def test_int64_state_out_of_int32_range_is_a_dtype_error(values: object, shown: str) -> None:
    t = st.tensor(values, dtype="int64")
    with pytest.raises(st.DTypeError) as info:
        to_device(t, "wgpu", name="layer.count")
    msg = str(info.value)
    assert "module state 'layer.count'" in msg and shown in msg
    assert "int32's range -2147483648 to 2147483647" in msg and "wrap" in msg
    assert info.value.op == "to_device" and info.value.dtype is st.int64
    assert t.device == "cpu" and t.dtype is st.int64 and np.array_equal(t.numpy(), np.asarray(values))


def test_module_to_refuses_to_wrap_a_buffer() -> None:
    m = Counter(2**33)
    with pytest.raises(st.DTypeError, match=r"module state 'count' holds the value 8589934592.*int32's range"):
        m.to("wgpu")
    assert m.count.device == "cpu" and m.count.item() == 2**33


def test_empty_and_int32_tensors_pass_through() -> None:
    e = to_device(st.zeros(0, dtype="int64"), "wgpu", name="empty")
    assert e.dtype is st.int32 and e.shape == (0,)
    i = to_device(st.tensor([2**31 - 1], dtype="int32"), "wgpu")
    assert i.dtype is st.int32 and i.tolist() == [2**31 - 1]
    assert to_device(st.tensor([2**40], dtype="int64"), "cpu").item() == 2**40


def test_a_move_that_fails_part_way_leaves_every_tensor_in_place() -> None:
    """Module.to is all-or-nothing; the error names the state-dict key of the tensor that failed."""
    model = st.nn.Sequential(st.nn.Linear(3, 4), Counter(2**40))  # the Linear's tensors can move, the count cannot
    model[0].weight.grad = st.ones(4, 3)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(st.DTypeError, match=r"module state '1\.count'"):
        model.to("wgpu")
    for k, v in model.state_dict().items():
        assert v.device == "cpu"
        np.testing.assert_array_equal(v.numpy(), before[k])
    assert model[0].weight.grad.device == "cpu"
