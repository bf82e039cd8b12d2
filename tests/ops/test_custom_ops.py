"""Custom operators: dispatch, gradients, telemetry, discovery and plugins, like built-ins."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.errors import AutogradError, OperatorError, PluginError
from spiraltorch_nb.ops import registry as ops_registry
from spiraltorch_nb.ops.registry import Operator, OperatorBuilder, custom_op, set_dispatch_observer
from spiraltorch_nb.plugins import Plugin, PluginMetadata, PluginRegistry

REG = st.ops.global_operator_registry()
WGPU = probe("wgpu")
needs_wgpu = pytest.mark.skipif(not WGPU["available"], reason=f"wgpu unavailable: {WGPU['reason']}")


@pytest.fixture
def names():
    """Unique operator names; whatever a test registered under them is removed afterwards."""
    made: list[str] = []

    def make(stem: str = "op") -> str:
        name = f"test_{stem}_{uuid.uuid4().hex[:8]}"
        made.append(name)
        return name

    yield make
    for name in made:
        if name in REG:
            REG.unregister(name)


def cube_backward(inputs, outputs, grads):
    (x,) = inputs
    return [grads[0] * 3 * x * x]


def make_cube(name: str, register: bool = True) -> Operator:
    return (OperatorBuilder(name, 1, 1)
            .with_backend("cpu", lambda x: x ** 3)
            .with_backward(cube_backward)
            .with_metadata(description="x cubed", category="test")
            .build(register=register))


def split_forward(x):
    return np.maximum(x, 0), np.minimum(x, 0)


def split_backward(inputs, outputs, grads):
    (x,) = inputs
    return [st.where(x > 0, grads[0], grads[1])]


def f64(values, requires_grad=True):
    return st.tensor(values, dtype=st.float64, requires_grad=requires_grad)


# ---- dispatch --------------------------------------------------------------------------

def test_built_op_is_registered_and_dispatched_by_name_and_by_call(names):
    name = names("cube")
    op = make_cube(name)
    assert name in REG and REG.get(name) is op
    x = st.tensor([1.0, -2.0, 3.0])
    np.testing.assert_allclose(op(x).numpy(), [1.0, -8.0, 27.0])
    np.testing.assert_allclose(st.ops.dispatch(name, x).numpy(), [1.0, -8.0, 27.0])
    assert op.metadata == {"description": "x cubed", "category": "test"}
    assert op.backends == ["cpu"] and not op.builtin


def test_unregistered_build_is_callable_but_not_discoverable(names):
    name = names("private")
    op = make_cube(name, register=False)
    assert name not in REG
    assert op(st.tensor([2.0])).item() == 8.0
    with pytest.raises(OperatorError, match="no operator named"):
        st.ops.dispatch(name, st.tensor([2.0]))


def test_forward_and_backward_receive_keyword_attributes(names):
    op = (OperatorBuilder(names("scale"), 1, 1)
          .with_backend("cpu", lambda x, factor=1.0: x * factor)
          .with_backward(lambda inputs, outputs, grads, factor=1.0: [grads[0] * factor])
          .build())
    x = st.tensor([1.0, 2.0], requires_grad=True)
    y = op(x, factor=2.5)
    np.testing.assert_allclose(y.numpy(), [2.5, 5.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.5, 2.5])


def test_forward_gets_native_arrays_and_results_stay_on_the_tape(names):
    seen = []

    def forward(x):
        seen.append(type(x))
        return x + 1

    op = OperatorBuilder(names("native"), 1, 1).with_backend("cpu", forward).with_backward(
        lambda i, o, g: [g[0]]).build()
    y = op(st.tensor([1.0], requires_grad=True))
    assert seen == [np.ndarray]
    assert isinstance(y, st.Tensor) and y.grad_fn is not None and y.grad_fn.name == op.name


def test_dtype_rule_metadata_promotes_like_built_ins(names):
    op = (OperatorBuilder(names("halve"), 1, 1).with_backend("cpu", lambda x: x / 2)
          .with_metadata(dtype_rule="promote_float").build())
    assert op.dtype_rule == "promote_float" and "dtype_rule" not in op.metadata
    y = op(st.tensor([1, 3]))
    assert y.dtype == st.float32
    np.testing.assert_allclose(y.numpy(), [0.5, 1.5])


def test_builder_rejects_bad_input_with_clear_errors():
    with pytest.raises(OperatorError, match="no forward"):
        OperatorBuilder("test_no_forward").build()
    with pytest.raises(OperatorError, match="unknown backend 'tpu'"):
        OperatorBuilder("test_tpu").with_backend("tpu", lambda x: x)
    with pytest.raises(OperatorError, match="must be callable"):
        OperatorBuilder("test_not_callable").with_backend("cpu", 3)
    with pytest.raises(OperatorError, match="Python identifier"):
        OperatorBuilder("not a name").with_backend("cpu", lambda x: x).build()
    assert "test_no_forward" not in REG and "test_tpu" not in REG


def test_calling_with_the_wrong_number_of_inputs_names_the_arity(names):
    op = OperatorBuilder(names("pair"), 2, 1).with_backend("cpu", lambda a, b: a * b).build()
    with pytest.raises(OperatorError, match=r"takes 2 input\(s\) but was called with 1"):
        op(st.tensor([1.0]))


def test_a_failing_forward_is_reported_with_the_op_and_inputs(names):
    name = names("boom")
    op = OperatorBuilder(name, 1, 1).with_backend("cpu", lambda x: 1 / 0).build()
    with pytest.raises(OperatorError, match=rf"{name} on cpu .*ZeroDivisionError"):
        op(st.tensor([1.0]))


# ---- gradients -------------------------------------------------------------------------

def test_first_and_second_order_gradients_of_a_tensor_op_backward(names):
    op = make_cube(names("cube"))
    x = f64([1.0, -2.0, 0.5])
    (g,) = st.grad(op(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * np.array([1.0, -2.0, 0.5]) ** 2)
    assert g.requires_grad  # the backward was recorded, so it can be differentiated again
    (g2,) = st.grad(g.sum(), x)
    np.testing.assert_allclose(g2.numpy(), 6 * np.array([1.0, -2.0, 0.5]))


def test_gradcheck_and_gradgradcheck_pass_on_custom_ops(names):
    op = make_cube(names("cube"))
    x = f64([0.3, -1.2, 2.0])
    assert st.autograd.gradcheck(op, (x,))
    assert st.autograd.gradgradcheck(op, (x,))
    assert st.autograd.gradcheck(lambda t: op(t * t).sum(), (x,))


def test_gradcheck_catches_a_wrong_backward(names):
    wrong = (OperatorBuilder(names("wrong"), 1, 1).with_backend("cpu", lambda x: x ** 3)
             .with_backward(lambda inputs, outputs, grads: [grads[0] * 2 * inputs[0]]).build())
    x = f64([0.5, 1.5])
    assert st.autograd.gradcheck(wrong, (x,), raise_exception=False) is False
    with pytest.raises(AutogradError, match="differs from finite differences"):
        st.autograd.gradcheck(wrong, (x,))


def test_backward_may_use_the_saved_output(names):
    def exp_backward(inputs, outputs, grads):
        return [grads[0] * outputs[0]]

    op = OperatorBuilder(names("exp"), 1, 1).with_backend("cpu", np.exp).with_backward(exp_backward).build()
    x = f64([0.0, 1.0, -0.5])
    assert st.autograd.gradcheck(op, (x,))
    assert st.autograd.gradgradcheck(op, (x,))


def test_two_input_op_gradients_and_none_for_a_constant_input(names):
    def mul_backward(inputs, outputs, grads):
        a, b = inputs
        return [grads[0] * b, grads[0] * a]

    op = (OperatorBuilder(names("mul"), 2, 1).with_backend("cpu", lambda a, b: a * b)
          .with_backward(mul_backward).build())
    a, b = f64([1.0, 2.0]), f64([3.0, -4.0])
    assert st.autograd.gradcheck(op, (a, b))
    c = f64([5.0, 6.0], requires_grad=False)
    op(a, c).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [5.0, 6.0])
    assert c.grad is None


def test_multi_output_op_forward_and_gradients(names):
    op = (OperatorBuilder(names("split"), 1, 2).with_backend("cpu", split_forward)
          .with_backward(split_backward).build())
    x = f64([1.5, -2.0, 0.5, -0.25])
    pos, neg = op(x)
    np.testing.assert_allclose(pos.numpy(), [1.5, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(neg.numpy(), [0.0, -2.0, 0.0, -0.25])
    assert pos.grad_fn is neg.grad_fn
    # only one output used: the other's gradient arrives as zeros
    (3 * pos).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 0.0, 3.0, 0.0])
    assert st.autograd.gradcheck(op, (f64([1.5, -2.0, 0.5, -0.25]),))


def test_backward_returning_the_wrong_number_of_gradients_is_a_clear_error(names):
    op = (OperatorBuilder(names("bad_count"), 2, 1).with_backend("cpu", lambda a, b: a + b)
          .with_backward(lambda inputs, outputs, grads: [grads[0]]).build())
    x = st.tensor([1.0], requires_grad=True)
    with pytest.raises(OperatorError, match="returned 1 gradients for 2 inputs"):
        op(x, x).sum().backward()


def test_backward_returning_a_wrong_shape_or_type_is_a_clear_error(names):
    shape = (OperatorBuilder(names("bad_shape"), 1, 1).with_backend("cpu", lambda x: x * 2)
             .with_backward(lambda i, o, g: [st.ones(3)]).build())
    kind = (OperatorBuilder(names("bad_kind"), 1, 1).with_backend("cpu", lambda x: x * 2)
            .with_backward(lambda i, o, g: [np.ones(2)]).build())
    with pytest.raises(OperatorError, match=r"gradient of shape \(3,\) for an input of shape \(2,\)"):
        shape(st.tensor([1.0, 2.0], requires_grad=True)).sum().backward()
    with pytest.raises(OperatorError, match="must return Tensors"):
        kind(st.tensor([1.0, 2.0], requires_grad=True)).sum().backward()


def test_op_without_backward_says_how_to_add_one(names):
    op = OperatorBuilder(names("nograd"), 1, 1).with_backend("cpu", lambda x: x * 2).build()
    x = st.tensor([1.0], requires_grad=True)
    with pytest.raises(AutogradError, match=r"has no backward formula.*with_backward"):
        op(x).sum().backward()
    with st.no_grad():
        assert op(x).grad_fn is None


def test_composite_op_is_differentiated_through_its_tensor_ops(names):
    op = OperatorBuilder(names("softsign"), 1, 1).with_composite(lambda x: x / (1 + x.abs())).build()
    x = f64([0.5, -1.5, 2.0])
    np.testing.assert_allclose(op(x).numpy(), x.numpy() / (1 + np.abs(x.numpy())))
    assert st.autograd.gradcheck(op, (x,))


def test_composite_custom_op_runs_on_every_backend(names, device):
    op = OperatorBuilder(names("softsign"), 1, 1).with_composite(lambda x: x / (1 + x.abs())).build()
    values = np.array([0.5, -1.5, 2.0], dtype=np.float32)
    x = st.tensor(values, device=device, requires_grad=True)
    y = op(x)
    assert y.device.type == device
    np.testing.assert_allclose(y.numpy(), values / (1 + np.abs(values)), rtol=1e-5)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + np.abs(values)) ** 2, rtol=1e-4)


# ---- the decorator -----------------------------------------------------------------------

def test_custom_op_decorator_names_counts_inputs_and_documents(names):
    name = names("axpy")

    @custom_op(name, backward=lambda inputs, outputs, grads: [grads[0] * 2.0, grads[0]])
    def axpy(x, y):
        """Twice x plus y.

        More text that is not the summary.
        """
        return 2.0 * x + y

    assert isinstance(axpy, Operator) and axpy.name == name and REG.get(name) is axpy
    assert axpy.num_inputs == 2
    assert axpy.metadata["description"] == "Twice x plus y."
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    np.testing.assert_allclose(axpy(a, b).numpy(), [5.0, 8.0])
    assert st.autograd.gradcheck(axpy, (a, b))


def test_custom_op_decorator_takes_the_function_name_and_metadata():
    try:
        @custom_op(category="demo", backward=lambda i, o, g: [g[0] * 0.5])
        def test_decorated_halve(x, scale=1.0):
            return x * 0.5 * scale

        assert "test_decorated_halve" in REG
        assert test_decorated_halve.num_inputs == 1  # parameters with defaults are attributes
        assert test_decorated_halve.metadata["category"] == "demo"
        assert test_decorated_halve(st.tensor([4.0]), scale=3.0).item() == 6.0
    finally:
        if "test_decorated_halve" in REG:
            REG.unregister("test_decorated_halve")


# ---- registration rules ------------------------------------------------------------------

def test_rebuilding_the_same_op_replaces_it_like_a_rerun_cell(names):
    name = names("rerun")
    before = len(REG)
    first = OperatorBuilder(name).with_backend("cpu", lambda x: x + 1).build()
    second = OperatorBuilder(name).with_backend("cpu", lambda x: x + 2).build()
    assert len(REG) == before + 1
    assert REG.get(name) is second and first is not second
    assert st.ops.dispatch(name, st.tensor([0.0])).item() == 2.0


def test_taken_names_need_replace_true(names):
    name = names("taken")
    make_cube(name)
    with pytest.raises(OperatorError, match="already registered; pass replace=True"):
        REG.register(make_cube(name, register=False))
    with pytest.raises(OperatorError, match="already registered"):
        OperatorBuilder(name).with_backend("cpu", lambda x: x).build(replace=False)
    replacement = REG.register(make_cube(name, register=False), replace=True)
    assert REG.get(name) is replacement


def test_builtin_names_cannot_be_taken_or_removed():
    add = REG.get("add")
    with pytest.raises(OperatorError, match="built-in"):
        OperatorBuilder("add", 2, 1).with_backend("cpu", np.subtract).build()
    with pytest.raises(OperatorError, match="built-in"):
        REG.register(Operator("add", 2, forwards={"cpu": np.subtract}), replace=True)
    with pytest.raises(OperatorError, match="built-in"):
        REG.unregister("mul")
    assert REG.get("add") is add and "mul" in REG
    assert (st.tensor([1.0]) + st.tensor([2.0])).item() == 3.0


def test_unregister_removes_and_unknown_names_suggest_close_ones(names):
    name = names("gone")
    op = make_cube(name)
    assert REG.unregister(name) is op
    assert name not in REG
    with pytest.raises(OperatorError, match="no operator named"):
        REG.unregister(name)
    with pytest.raises(OperatorError, match="did you mean 'matmul'"):
        REG.get("matmull")


# ---- discovery ---------------------------------------------------------------------------

def test_custom_ops_are_listed_by_backend_like_built_ins(names):
    cpu_only = make_cube(names("cpu_only"))
    composite = OperatorBuilder(names("comp"), 1, 1).with_composite(lambda x: x * 2).build()
    gpu = OperatorBuilder(names("gpu"), 1, 1).with_backend("wgpu", lambda x: x).build()
    everything = REG.list()
    on_cpu = REG.list(backend="cpu")
    on_wgpu = REG.list(backend="wgpu")
    assert {cpu_only.name, composite.name, gpu.name} <= set(everything)
    assert everything == sorted(everything)
    assert "add" in on_cpu and cpu_only.name in on_cpu and composite.name in on_cpu
    assert gpu.name not in on_cpu
    assert composite.name in on_wgpu and gpu.name in on_wgpu and cpu_only.name not in on_wgpu
    for name in on_wgpu:
        assert REG.get(name).supports("wgpu")
    with pytest.raises(OperatorError, match="unknown backend 'tpu'"):
        REG.list(backend="tpu")


@needs_wgpu
def test_wgpu_listing_includes_the_backends_kernels():
    on_wgpu = REG.list(backend="wgpu")
    assert "add" in on_wgpu and "matmul" in on_wgpu


def test_missing_backend_error_lists_the_backends_the_op_has(names):
    name = names("cuda_only")
    op = OperatorBuilder(name, 1, 1).with_backend("cuda", lambda x: x).build()
    with pytest.raises(OperatorError, match=rf"'{name}' has no implementation for backend 'cpu' \(it has: cuda\)"):
        op(st.tensor([1.0]))


@needs_wgpu
def test_cpu_only_op_on_wgpu_tensors_names_the_backends_it_has(names):
    name = names("cpu_only")
    op = make_cube(name)
    x = st.tensor([1.0, 2.0], device="wgpu")
    with pytest.raises(OperatorError, match=rf"'{name}' has no implementation for backend 'wgpu' \(it has: cpu\)") as err:
        op(x)
    assert "with_backend('wgpu'" in str(err.value) and err.value.backend == "wgpu"
    np.testing.assert_allclose(op(x.to("cpu")).numpy(), [1.0, 8.0])


@needs_wgpu
def test_op_with_a_wgpu_forward_receives_the_device_storage(names):
    seen = []

    def forward(x):
        seen.append(type(x).__module__)
        return x

    op = OperatorBuilder(names("wgpu_id"), 1, 1).with_backend("wgpu", forward).build()
    x = st.tensor([1.0, 2.0], device="wgpu")
    y = op(x)
    assert y.device.type == "wgpu" and seen and not seen[0].startswith("numpy")
    np.testing.assert_allclose(y.numpy(), [1.0, 2.0])


# ---- telemetry ---------------------------------------------------------------------------

class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, list]] = []

    def on_op(self, op, backend, args, outputs, start_ns, duration_ns, phase):
        assert duration_ns >= 0
        self.calls.append((op.name, backend.name, phase, [tuple(o.shape) for o in outputs]))


def test_dispatch_observer_sees_custom_ops_in_both_phases(names):
    cube = make_cube(names("cube"))
    split = OperatorBuilder(names("split"), 1, 2).with_backend("cpu", split_forward).with_backward(
        split_backward).build()
    observer = Observer()
    previous = set_dispatch_observer(observer)
    try:
        x = st.tensor([1.0, -2.0], requires_grad=True)
        pos, _ = split(cube(x))
        pos.sum().backward()
    finally:
        set_dispatch_observer(previous)
    forward = [c for c in observer.calls if c[2] == "forward"]
    assert (cube.name, "cpu", "forward", [(2,)]) in forward
    assert (split.name, "cpu", "forward", [(2,), (2,)]) in forward
    backward_ops = {c[0] for c in observer.calls if c[2] == "backward"}
    assert {"mul", "where"} <= backward_ops  # the custom backwards ran through dispatch too
    assert ops_registry.get_dispatch_observer() is previous


def test_telemetry_recorder_records_custom_ops(names):
    record = getattr(st.telemetry, "record", None)
    if record is None:
        pytest.skip("spiraltorch_nb.telemetry.record is not available")
    cube = make_cube(names("cube"))
    x = st.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    seen = []
    with st.plugins.global_registry().events.subscribe("telemetry.op", seen.append), record() as rec:
        cube(x).sum().backward()
    rows = rec.ops.filter(op=cube.name)
    assert rows.height == 1
    assert rows["backend"].to_list() == ["cpu"] and rows["phase"].to_list() == ["forward"]
    assert rows["shapes"].to_list() == [[[2, 2]]]
    assert "mul" in rec.ops.filter(phase="backward")["op"].to_list()
    assert any(e.payload.get("op") == cube.name for e in seen)


# ---- plugins -----------------------------------------------------------------------------

class ActivationOps(Plugin):
    """Registers two operators (builder and decorator forms) and can fail after doing so."""

    def __init__(self, prefix: str, fail: bool = False) -> None:
        self.metadata = PluginMetadata(f"ops-{prefix}", "1.0", capabilities=["operators"])
        self.prefix = prefix
        self.fail = fail
        self.seen_in_unload: list[bool] = []

    @property
    def op_names(self) -> list[str]:
        return [f"{self.prefix}_cube", f"{self.prefix}_neg"]

    def on_load(self, ctx):
        make_cube(self.op_names[0])
        custom_op(self.op_names[1], backward=lambda i, o, g: [-g[0]])(lambda x: -x)
        if self.fail:
            raise RuntimeError("kernel cache unavailable")

    def on_unload(self, ctx):
        self.seen_in_unload = [name in REG for name in self.op_names]


def test_operators_plugin_registers_on_load_and_removes_on_unload():
    plugin = ActivationOps(f"plug_{uuid.uuid4().hex[:6]}")
    registry = PluginRegistry()
    events = []
    registry.events.subscribe("plugin.*", lambda e: events.append(e.topic))
    registry.register(plugin)
    assert registry.find_by_capability("operators") == [plugin]
    assert not any(name in REG for name in plugin.op_names)
    registry.load(plugin.metadata.id)
    assert all(name in REG for name in plugin.op_names)
    x = st.tensor([2.0], requires_grad=True)
    y = st.ops.dispatch(plugin.op_names[1], st.ops.dispatch(plugin.op_names[0], x))
    y.backward()
    assert y.item() == -8.0 and x.grad.item() == -12.0
    assert set(plugin.op_names) <= set(REG.list(backend="cpu"))
    registry.unload(plugin.metadata.id)
    assert plugin.seen_in_unload == [True, True]
    assert not any(name in REG for name in plugin.op_names)
    assert "plugin.loaded" in events and "plugin.unloaded" in events
    registry.load(plugin.metadata.id)  # loading again after an unload works
    assert all(name in REG for name in plugin.op_names)
    registry.unload(plugin.metadata.id)
    assert not any(name in REG for name in plugin.op_names)


def test_failed_operators_plugin_load_leaves_the_registry_as_it_was():
    plugin = ActivationOps(f"plug_{uuid.uuid4().hex[:6]}", fail=True)
    before = REG.list()
    registry = PluginRegistry()
    registry.register(plugin)
    with pytest.raises(PluginError, match="kernel cache unavailable"):
        registry.load(plugin.metadata.id)
    assert REG.list() == before
    assert not registry.is_loaded(plugin.metadata.id)


def test_plugin_replacing_a_user_op_restores_it_on_unload(names):
    name = names("shared")
    mine = make_cube(name)

    class Override(Plugin):
        metadata = PluginMetadata(f"override-{name}", "1.0", capabilities=["operators"])

        def on_load(self, ctx):
            OperatorBuilder(name).with_backend("cpu", lambda x: x * 0).build()

    registry = PluginRegistry()
    registry.register(Override())
    registry.load(Override.metadata.id)
    assert REG.get(name) is not mine and st.ops.dispatch(name, st.tensor([3.0])).item() == 0.0
    registry.unload(Override.metadata.id)
    assert REG.get(name) is mine
