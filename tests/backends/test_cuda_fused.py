"""Fused operators: values, gradients and second derivatives, on every backend.

The fused ops (``fused_bias_gelu``, ``fused_layer_norm``) and the first-order backward
helpers (``softmax_backward``, ``log_softmax_backward``, ``cross_entropy_backward``,
``*_backward``) must agree with the unfused chains. On the cpu they run their
composites and are checked against PyTorch; on cuda they run the kernels of
``kernels/cuda`` and are checked against the cpu (they skip with the reason when no GPU
is present).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_op

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.ops import dispatch
from spiraltorch_nb.ops.fused import bias_gelu, layer_norm

CUDA = probe("cuda")
needs_gpu = pytest.mark.skipif(not CUDA["available"], reason=f"cuda unavailable: {CUDA['reason']}")

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the torch parity rows skip
    torch = None


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _ce(reduction: str, ignore: int = -100, smoothing: float = 0.0):
    def st_fn(x, t):
        return st.nn.functional.cross_entropy(x, t, ignore_index=ignore, reduction=reduction,
                                              label_smoothing=smoothing)

    def torch_fn(x, t):
        return TF.cross_entropy(x, t, ignore_index=ignore, reduction=reduction, label_smoothing=smoothing)

    return st_fn, torch_fn


# ---- the composites, against PyTorch (every machine) -------------------------------------------
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bias_gelu_matches_torch(approximate: str, dtype: str) -> None:
    if torch is None:
        pytest.skip("torch is not installed")
    x, b = _rng().standard_normal((3, 4, 5)), _rng(1).standard_normal(5)
    check_op(lambda x, b: bias_gelu(x, b, approximate=approximate), x, b,
             torch_fn=lambda x, b: TF.gelu(x + b, approximate=approximate), dtype=dtype)


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_layer_norm_matches_torch(affine: str, dtype: str) -> None:
    if torch is None:
        pytest.skip("torch is not installed")
    x, w, b = _rng().standard_normal((4, 6)), _rng(1).standard_normal(6), _rng(2).standard_normal(6)
    n = 6

    def run(lib_ln):
        def fn(x, w, b):
            return lib_ln(x, n, w if affine != "none" else None, b if affine == "both" else None)
        return fn

    check_op(run(lambda x, n, w, b: layer_norm(x, n, w, b)), x, w, b,
             torch_fn=run(lambda x, n, w, b: TF.layer_norm(x, (n,), w, b)), dtype=dtype)


def test_fused_layer_norm_over_several_dims_matches_torch() -> None:
    if torch is None:
        pytest.skip("torch is not installed")
    x, w, b = _rng().standard_normal((2, 3, 4)), _rng(1).standard_normal((3, 4)), _rng(2).standard_normal((3, 4))
    check_op(lambda x, w, b: layer_norm(x, (3, 4), w, b), x, w, b,
             torch_fn=lambda x, w, b: TF.layer_norm(x, (3, 4), w, b))


def test_fused_shape_errors_name_the_shapes() -> None:
    with pytest.raises(st.ShapeError, match=r"\(2, 3\) and \(4,\)"):
        bias_gelu(st.ones(2, 3), st.ones(4))
    with pytest.raises(st.ShapeError, match="normalized_shape"):
        layer_norm(st.ones(2, 3), (4,))
    with pytest.raises(st.ShapeError, match="weight has shape"):
        layer_norm(st.ones(2, 3), 3, st.ones(2))
    with pytest.raises(ValueError, match="approximate"):
        bias_gelu(st.ones(2, 3), st.ones(3), approximate="fast")


@pytest.mark.parametrize("name, formula", [
    ("softmax_backward", lambda g, y: g * y - y * (g * y).sum(dim=-1, keepdim=True)),
    ("log_softmax_backward", lambda g, y: g - y.exp() * g.sum(dim=-1, keepdim=True)),
])
def test_softmax_backward_helpers_compute_the_formula(name: str, formula) -> None:
    g, y = st.tensor(_rng().standard_normal((3, 5))), st.tensor(_rng(1).standard_normal((3, 5))).softmax(-1)
    np.testing.assert_allclose(dispatch(name, g, y, dim=-1).numpy(), formula(g, y).numpy(), rtol=1e-6)


def test_cross_entropy_backward_helper_matches_autograd() -> None:
    x = st.tensor(_rng().standard_normal((6, 4)), requires_grad=True)
    t = st.tensor([0, 3, -100, 1, 2, 3])
    loss = st.nn.functional.cross_entropy(x, t, label_smoothing=0.1)
    (gx,) = st.grad(loss, [x])
    direct = dispatch("cross_entropy_backward", st.tensor(1.0), x.detach(), t, ignore_index=-100,
                      label_smoothing=0.1, reduction="mean")
    np.testing.assert_allclose(direct.numpy(), gx.numpy(), rtol=1e-6, atol=1e-7)
    assert np.all(direct.numpy()[2] == 0.0)  # the ignored row


# ---- the kernels, against the cpu (GPU only) ------------------------------------------------------
DTYPES = ["float32", "float64"]


def check_on_cuda(fn, *inputs, **kw) -> None:
    """Forward and first derivatives (the backward kernels), then second derivatives (the formulas).

    ``check_op`` with ``order=2`` takes first derivatives with ``create_graph=True``, which
    routes around the backward kernels; ``order=1`` is what exercises them.
    """
    check_op(fn, *inputs, against="cpu", device="cuda", order=1, **kw)
    check_op(fn, *inputs, against="cpu", device="cuda", order=2, **kw)
SOFTMAX_SHAPES = [(7,), (3, 10), (4, 1), (2, 3, 33), (5, 1000), (3, 5000)]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_kernels_match_cpu(fn: str, shape: tuple, dtype: str) -> None:
    x = _rng().standard_normal(shape) * 3.0
    check_on_cuda(lambda x: getattr(x, fn)(-1), x, dtype=dtype, label=fn)


@needs_gpu
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_over_a_leading_dim_uses_the_composite_and_matches(fn: str) -> None:
    x = _rng().standard_normal((6, 4, 3))
    check_on_cuda(lambda x: getattr(x, fn)(1), x, label=fn)


@needs_gpu
def test_softmax_kernel_is_the_one_that_ran() -> None:
    from spiraltorch_nb.backends.cuda import fused

    st.randn(4, 8, device="cuda").softmax(-1).numpy()
    assert any(key[2] == "softmax_forward_f32" for key in fused._functions)


@needs_gpu
def test_softmax_float16_computes_in_place_of_float32() -> None:
    x = _rng().standard_normal((8, 40)).astype(np.float16)
    got = st.tensor(x, device="cuda").softmax(-1).numpy()
    want = st.tensor(x.astype(np.float32)).softmax(-1).numpy()
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_kernel_matches_cpu(reduction: str, smoothing: float, dtype: str) -> None:
    x = _rng().standard_normal((9, 37)) * 2.0
    t = np.array([0, 36, 5, -100, 12, 12, 3, -100, 20])
    fn, _ = _ce(reduction, smoothing=smoothing)
    check_on_cuda(fn, x, t, dtype=dtype, label=f"cross_entropy {reduction}")


@needs_gpu
def test_cross_entropy_kernel_with_many_classes_matches_cpu() -> None:
    x = _rng().standard_normal((4, 3000))
    t = np.array([0, 2999, 1500, 7])
    fn, _ = _ce("mean")
    check_op(fn, x, t, against="cpu", device="cuda", order=1)


@needs_gpu
def test_cross_entropy_with_an_invalid_class_gives_nan_on_cuda() -> None:
    x = st.randn(3, 4, device="cuda")
    loss = st.nn.functional.cross_entropy(x, st.tensor([0, 9, 1], device="cuda"), reduction="none").numpy()
    assert np.isfinite(loss[[0, 2]]).all() and np.isnan(loss[1])


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 300)], ids=str)
def test_bias_gelu_kernel_matches_cpu(shape: tuple, approximate: str, dtype: str) -> None:
    x, b = _rng().standard_normal(shape) * 2.0, _rng(1).standard_normal(shape[-1:])
    check_on_cuda(lambda x, b: bias_gelu(x, b, approximate=approximate), x, b, dtype=dtype,
                  label=f"bias_gelu {approximate}")


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 1), (2, 700), (300, 33)], ids=str)
def test_layer_norm_kernel_matches_cpu(shape: tuple, affine: str, dtype: str) -> None:
    n = shape[-1]
    x = _rng().standard_normal(shape) * 2.0 + 1.0
    w, b = _rng(1).standard_normal(n), _rng(2).standard_normal(n)

    def fn(x, w, b):
        return st.nn.functional.layer_norm(x, n, w if affine in ("both", "weight") else None,
                                           b if affine in ("both", "bias") else None)

    check_on_cuda(fn, x, w, b, dtype=dtype, label=f"layer_norm {affine}")


@needs_gpu
def test_layer_norm_module_on_cuda_matches_cpu_over_two_dims() -> None:
    x, w, b = _rng().standard_normal((5, 3, 4)), _rng(1).standard_normal((3, 4)), _rng(2).standard_normal((3, 4))
    check_on_cuda(lambda x, w, b: st.nn.functional.layer_norm(x, (3, 4), w, b), x, w, b)


@needs_gpu
def test_fused_ops_keep_float16_on_cuda() -> None:
    x = st.tensor(_rng().standard_normal((4, 16)), dtype="float16", device="cuda")
    b = st.tensor(_rng(1).standard_normal(16), dtype="float16", device="cuda")
    assert bias_gelu(x, b).dtype == st.float16
    assert layer_norm(x, 16, b, b).dtype == st.float16
    ref = bias_gelu(x.float().cpu(), b.float().cpu()).numpy()
    np.testing.assert_allclose(bias_gelu(x, b).numpy().astype(np.float32), ref, rtol=5e-3, atol=5e-3)
