"""Bad inputs: each error has the right class, names the op and says how to fix it."""

from __future__ import annotations

import re

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.errors import (
    AutogradError,
    DeviceError,
    DTypeError,
    OperatorError,
    ShapeError,
    SpiralTorchError,
)

WGPU = probe("wgpu")
needs_wgpu = pytest.mark.skipif(not WGPU["available"], reason=f"a second device is needed: wgpu unavailable "
                                                              f"({WGPU['reason']})")


def _message(exc_info: pytest.ExceptionInfo) -> str:
    return str(exc_info.value)


def _assert_names(msg: str, *parts: str) -> None:
    for p in parts:
        assert p in msg, f"{p!r} missing from the message: {msg}"


# ---- shapes ---------------------------------------------------------------------------------

def test_broadcast_mismatch_names_the_op_both_shapes_and_a_fix() -> None:
    with pytest.raises(ShapeError) as info:
        st.ones(2, 3) + st.ones(4)
    msg = _message(info)
    _assert_names(msg, "add", "(2, 3)", "(4,)", "unsqueeze")
    assert info.value.op == "add" and info.value.shapes == ((2, 3), (4,))
    assert isinstance(info.value, ValueError) and isinstance(info.value, SpiralTorchError)


def test_matmul_mismatch_names_both_shapes_and_a_fix() -> None:
    with pytest.raises(ShapeError) as info:
        st.ones(2, 3) @ st.ones(4, 5)
    _assert_names(_message(info), "matmul", "(2, 3)", "(4, 5)", ".mT")


@pytest.mark.parametrize("call, parts", [
    (lambda: st.ones(2, 3).reshape(4), ("reshape", "(2, 3)", "(4,)")),
    (lambda: st.cat([st.ones(2, 3), st.ones(3, 2)]), ("cat", "(2, 3)", "(3, 2)", "must match")),
    (lambda: st.stack([st.ones(2), st.ones(3)]), ("stack", "(2,)", "(3,)", "same shape")),
    (lambda: st.ones(3, 1).expand(2, 2), ("expand", "(3, 1)", "only size-1 dimensions expand")),
    (lambda: st.ones(2, 3).permute(0, 0), ("permute", "(0, 0)", "(2, 3)")),
    (lambda: st.nn.functional.mse_loss(st.ones(2, 3), st.ones(3)), ("mse_loss", "(2, 3)", "(3,)", "reshape")),
    (lambda: st.ones(2).item(), ("item", "(2,)", "sum().item()")),
], ids=["reshape", "cat", "stack", "expand", "permute", "mse_loss", "item"])
def test_other_shape_errors_name_the_op_and_shapes(call, parts) -> None:
    with pytest.raises(ShapeError) as info:
        call()
    _assert_names(_message(info), *parts)


def test_in_place_op_cannot_broadcast_the_tensor_it_changes() -> None:
    x = st.ones(3)
    with pytest.raises(ShapeError) as info:
        x += st.ones(2, 3)
    _assert_names(_message(info), "add", "(3,)", "(2, 3)", "in-place")


# ---- devices ------------------------------------------------------------------------------------

@needs_wgpu
def test_device_mismatch_names_the_op_both_devices_and_the_fix() -> None:
    with pytest.raises(DeviceError) as info:
        st.ones(2) + st.ones(2, device="wgpu")
    msg = _message(info)
    _assert_names(msg, "add", "cpu", "wgpu", ".to(")
    assert info.value.op == "add" and set(info.value.devices) == {"cpu", "wgpu"}
    with pytest.raises(DeviceError) as info:
        st.ones(2, device="wgpu").matmul(st.ones(2))
    _assert_names(_message(info), "matmul", "cpu", "wgpu")


@needs_wgpu
def test_device_mismatch_in_indexing_and_assignment() -> None:
    x = st.zeros(3)
    with pytest.raises(DeviceError) as info:
        x[st.tensor([0, 1], device="wgpu")]
    _assert_names(_message(info), "getitem", "cpu", "wgpu", ".to(")
    with pytest.raises(DeviceError) as info:
        x[0:2] = st.ones(2, device="wgpu")
    _assert_names(_message(info), "setitem", "cpu", "wgpu", ".to(")


def test_unknown_and_unavailable_devices_say_why() -> None:
    with pytest.raises(DeviceError) as info:
        st.zeros(2, device="tpu")
    _assert_names(_message(info), "tpu", "'cpu'", "'wgpu'", "'cuda'")
    if not probe("cuda")["available"]:
        with pytest.raises(st.DeviceUnavailableError) as info:
            st.zeros(2, device="cuda")
        assert info.value.reason and info.value.reason in _message(info)


# ---- the tape -------------------------------------------------------------------------------------

def test_backward_through_a_freed_graph() -> None:
    x = st.ones(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(AutogradError) as info:
        y.backward()
    _assert_names(_message(info), "second time", "'sum'", "retain_graph=True")


def test_backward_of_a_non_scalar_without_gradient() -> None:
    x = st.ones(3, requires_grad=True)
    with pytest.raises(AutogradError) as info:
        (x * 2).backward()
    _assert_names(_message(info), "backward", "(3,)", "y.sum().backward()", "gradient=")


def test_gradient_of_the_wrong_shape() -> None:
    x = st.ones(3, requires_grad=True)
    with pytest.raises(AutogradError) as info:
        (x * 2).backward(st.ones(2))
    _assert_names(_message(info), "backward", "(2,)", "(3,)")


def test_backward_of_something_off_the_tape() -> None:
    with pytest.raises(AutogradError) as info:
        st.ones(2).sum().backward()
    _assert_names(_message(info), "backward", "requires_grad=True", "no_grad")


def test_in_place_change_of_a_tensor_backward_still_needs() -> None:
    x = st.ones(3, requires_grad=True)
    y = x.exp()  # exp saves its output
    y.add_(1.0)
    with pytest.raises(AutogradError) as info:
        y.sum().backward()
    msg = _message(info)
    _assert_names(msg, "'exp'", "in-place", "version", ".clone()")
    assert info.value.op == "exp"


def test_in_place_change_of_a_saved_input() -> None:
    x = st.ones(3, requires_grad=True)
    h = x * 2.0
    y = h.sin()  # sin saves its input
    h.mul_(3.0)
    with pytest.raises(AutogradError) as info:
        y.sum().backward()
    _assert_names(_message(info), "'sin'", "in-place", ".clone()")
    assert h._version == 1


def test_integer_tensors_cannot_require_grad() -> None:
    for make in (lambda: st.tensor([1, 2], requires_grad=True), lambda: st.arange(3).requires_grad_()):
        with pytest.raises(AutogradError) as info:
            make()
        _assert_names(_message(info), "floating-point", "require", "int64", ".float()")


def test_grad_of_an_input_that_does_not_require_grad() -> None:
    x = st.ones(2, requires_grad=True)
    c = st.ones(2)
    with pytest.raises(AutogradError) as info:
        st.grad((x * c).sum(), c)
    _assert_names(_message(info), "grad", "input 0", "requires_grad=True")


def test_requires_grad_false_on_a_computed_tensor() -> None:
    y = st.ones(2, requires_grad=True) * 2
    with pytest.raises(AutogradError) as info:
        y.requires_grad_(False)
    _assert_names(_message(info), "requires_grad_(False)", ".detach()")


# ---- operators and dispatch -----------------------------------------------------------------------

def test_unknown_op_name_suggests_the_close_ones() -> None:
    with pytest.raises(OperatorError) as info:
        st.ops.dispatch("addd", st.ones(2), st.ones(2))
    msg = _message(info)
    _assert_names(msg, "'addd'", "did you mean", "'add'")
    assert info.value.op == "addd"


def test_op_missing_for_a_backend_names_it_and_the_fixes() -> None:
    op = (st.ops.OperatorBuilder("test_cuda_only_op", 1, 1)
          .with_backend("cuda", lambda x: x)
          .build())
    with pytest.raises(OperatorError) as info:
        op(st.ones(2))
    msg = _message(info)
    _assert_names(msg, "'test_cuda_only_op'", "backend 'cpu'", "it has: cuda", ".to('cuda')",
                  "with_backend('cpu', fn)")
    assert info.value.op == "test_cuda_only_op" and info.value.backend == "cpu"


@needs_wgpu
def test_op_missing_for_wgpu() -> None:
    op = (st.ops.OperatorBuilder("test_cpu_only_op", 1, 1)
          .with_backend("cpu", lambda x: np.negative(x))
          .build())
    np.testing.assert_array_equal(op(st.ones(2)).numpy(), [-1.0, -1.0])
    with pytest.raises(OperatorError) as info:
        op(st.ones(2, device="wgpu"))
    _assert_names(_message(info), "'test_cpu_only_op'", "'wgpu'", ".to('cpu')", "with_backend('wgpu', fn)")


def test_op_without_backward_refuses_to_differentiate() -> None:
    op = st.ops.OperatorBuilder("test_no_backward_op", 1, 1).with_backend("cpu", lambda x: x * 2).build()
    x = st.ones(2, requires_grad=True)
    y = op(x)
    with pytest.raises(AutogradError) as info:
        y.sum().backward()
    _assert_names(_message(info), "'test_no_backward_op'", "no backward", "with_backward(fn)", "detach()")


def test_backward_returning_the_wrong_number_of_gradients() -> None:
    op = (st.ops.OperatorBuilder("test_bad_arity_backward", 1, 1)
          .with_backend("cpu", lambda x: x * 2)
          .with_backward(lambda i, o, g: [g[0], g[0]])
          .build())
    with pytest.raises(OperatorError) as info:
        op(st.ones(2, requires_grad=True)).sum().backward()
    _assert_names(_message(info), "'test_bad_arity_backward'", "returned 2 gradients for 1 inputs", "one")


def test_backward_returning_a_wrong_shape() -> None:
    op = (st.ops.OperatorBuilder("test_bad_shape_backward", 1, 1)
          .with_backend("cpu", lambda x: x * 2)
          .with_backward(lambda i, o, g: [g[0].sum()])
          .build())
    with pytest.raises(OperatorError) as info:
        op(st.ones(2, requires_grad=True)).sum().backward()
    _assert_names(_message(info), "'test_bad_shape_backward'", "shape ()", "(2,)")


def test_a_custom_op_cannot_replace_a_builtin() -> None:
    with pytest.raises(OperatorError) as info:
        st.ops.OperatorBuilder("add", 2, 1).with_backend("cpu", lambda a, b: a).build()
    _assert_names(_message(info), "'add'", "built-in", "another name")


def test_op_needs_a_tensor_argument() -> None:
    with pytest.raises(OperatorError) as info:
        st.ops.dispatch("add", 1.0, 2.0)
    _assert_names(_message(info), "add()", "at least one Tensor", "float")


def test_dtype_errors_name_the_problem() -> None:
    with pytest.raises(DTypeError) as info:
        st.zeros(2, dtype="complex64")
    _assert_names(_message(info), "complex64", "float32", "int64")
    with pytest.raises(DTypeError) as info:
        st.ones(2)[st.tensor([0.0])]
    _assert_names(_message(info), "indices", "integer or bool", "float32")
    x = st.zeros(2, dtype=st.int64)
    with pytest.raises(DTypeError) as info:
        x += 0.5
    msg = _message(info)
    _assert_names(msg, "add", "int64", "float32")
    assert re.search(r"out-of-place|convert", msg)
