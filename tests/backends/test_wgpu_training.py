"""Training runs entirely on wgpu and follows the same loss curve as on the cpu."""

from __future__ import annotations

import os

import numpy as np
import pytest

import spiraltorch_nb as st
import spiraltorch_nb.nn.functional as F
from spiraltorch_nb.backends import get_backend, probe

_INFO = probe("wgpu")
if not _INFO["available"]:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"wgpu must be available in CI but is not: {_INFO['reason']}", pytrace=False)
    pytest.skip(f"wgpu unavailable: {_INFO['reason']}", allow_module_level=True)


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)
    return {
        "x": x, "y": y,
        "w1": (rng.standard_normal((32, 10)) * 0.3).astype(np.float32), "b1": np.zeros(32, np.float32),
        "w2": (rng.standard_normal((3, 32)) * 0.3).astype(np.float32), "b2": np.zeros(3, np.float32),
    }


def _train(device: str, data: dict[str, np.ndarray], steps: int = 30, lr: float = 0.5) -> tuple[list[float], list]:
    x = st.tensor(data["x"], device=device)
    y = st.tensor(data["y"], device=device)
    params = [st.tensor(data[k], device=device, requires_grad=True) for k in ("w1", "b1", "w2", "b2")]
    w1, b1, w2, b2 = params
    losses = []
    for _ in range(steps):
        h = F.linear(x, w1, b1).relu()
        logits = h @ w2.T + b2
        loss = F.cross_entropy(logits, y)
        for p in params:
            p.grad = None
        loss.backward()
        with st.no_grad():
            for p in params:
                p -= lr * p.grad
        losses.append(loss)
    return [float(v.item()) for v in losses], params


def test_mlp_trains_on_wgpu_like_on_cpu() -> None:
    data = _data()
    be = get_backend("wgpu")
    be.synchronize()
    uploads = be.stats["uploads"]
    wgpu_losses, wgpu_params = _train("wgpu", data)
    # the loop itself uploads only the data and the initial weights (6 tensors)
    assert be.stats["uploads"] - uploads == 6
    cpu_losses, cpu_params = _train("cpu", data)
    assert wgpu_losses[-1] < 0.7 * wgpu_losses[0]  # it learns
    np.testing.assert_allclose(wgpu_losses, cpu_losses, rtol=2e-3, atol=2e-4)
    for pw, pc in zip(wgpu_params, cpu_params, strict=True):
        np.testing.assert_allclose(pw.numpy(), pc.numpy(), rtol=1e-2, atol=1e-3)


def test_training_reads_back_only_when_asked() -> None:
    data = _data(1)
    be = get_backend("wgpu")
    x = st.tensor(data["x"], device="wgpu")
    y = st.tensor(data["y"], device="wgpu")
    w = st.tensor(data["w1"][:3], device="wgpu", requires_grad=True)
    be.synchronize()
    downloads = be.stats["downloads"]
    submits = be.stats["submits"]
    for _ in range(10):
        loss = F.cross_entropy(x @ w.T, y)
        w.grad = None
        loss.backward()
        with st.no_grad():
            w -= 0.1 * w.grad
    assert be.stats["downloads"] == downloads
    final = loss.item()
    assert be.stats["downloads"] == downloads + 1 and np.isfinite(final)
    assert be.stats["submits"] - submits < 20  # about 200 dispatches in a few batches
