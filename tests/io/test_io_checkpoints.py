"""st.save / st.load: round trips, atomic writes, and clear errors for truncated or tampered files."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import spiraltorch_nb as st
from spiraltorch_nb.errors import CheckpointError
from spiraltorch_nb.io import checkpoints


def _model() -> st.nn.Module:
    return st.nn.Sequential(st.nn.Linear(4, 8), st.nn.BatchNorm1d(8), st.nn.ReLU(), st.nn.Linear(8, 2))


def _train(model: st.nn.Module, opt, steps: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        x = st.tensor(rng.standard_normal((16, 4)).astype(np.float32))
        y = st.tensor(rng.integers(0, 2, 16))
        opt.zero_grad()
        loss = st.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# ---- round trips --------------------------------------------------------------------------

def test_round_trip_of_nested_values(tmp_path: Path) -> None:
    grad_leaf = st.randn(3, requires_grad=True)
    obj = {
        "tensors": {"f16": st.randn(2, 3, dtype="float16"), "f64": st.randn(4, dtype="float64"),
                    "i32": st.tensor([1, -2], dtype="int32"), "i64": st.tensor(7), "u32": st.tensor([3], dtype="uint32"),
                    "bool": st.tensor([True, False]), "empty": st.zeros(0, 5), "leaf": grad_leaf},
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "state": {0: {"step": 3, "buf": st.ones(2)}, 1: {"step": 4}},
        "groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "name": None, "nesterov": True}],
        "weird keys": {"$ref": 1, "a.b": st.zeros(1), "a": {"b": st.ones(1)}, (1, "x"): "tuple key", 2.5: "f"},
        "floats": [math.inf, -math.inf, 0.1, np.float32(2.0), np.int64(5)],
        "dtype": st.float16, "device": st.device("cpu"), "text": "épocas ✓",
    }
    path = st.save(obj, tmp_path / "all.safetensors")
    assert path == tmp_path / "all.safetensors"
    got = st.load(path)
    for k, t in obj["tensors"].items():
        assert isinstance(got["tensors"][k], st.Tensor) and got["tensors"][k].dtype == t.dtype, k
        np.testing.assert_array_equal(got["tensors"][k].numpy(), t.numpy())
        assert got["tensors"][k].shape == t.shape
    assert got["tensors"]["leaf"].requires_grad and not got["tensors"]["f64"].requires_grad
    assert isinstance(got["array"], np.ndarray) and got["array"].dtype == np.int16
    np.testing.assert_array_equal(got["array"], obj["array"])
    assert got["state"][0]["step"] == 3 and got["state"][1] == {"step": 4} and list(got["state"]) == [0, 1]
    assert got["groups"] == [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "name": None, "nesterov": True}]
    weird = got["weird keys"]
    assert weird["$ref"] == 1 and weird[(1, "x")] == "tuple key" and weird[2.5] == "f"
    assert weird["a.b"].tolist() == [0.0] and weird["a"]["b"].tolist() == [1.0]
    assert got["floats"] == [math.inf, -math.inf, 0.1, 2.0, 5]
    assert got["dtype"] is st.float16 and got["device"] == st.device("cpu") and got["text"] == "épocas ✓"
    nan = st.load(st.save({"x": math.nan}, tmp_path / "nan.safetensors"))["x"]
    assert math.isnan(nan)


def test_the_file_is_plain_safetensors_with_dotted_keys(tmp_path: Path) -> None:
    model = _model()
    st.save({"model": model, "epoch": 2}, tmp_path / "c.safetensors")
    arrays = safetensors.numpy.load_file(tmp_path / "c.safetensors")
    assert sorted(arrays) == sorted(f"model.{k}" for k in model.state_dict())
    _, meta = checkpoints.read_header(tmp_path / "c.safetensors")
    assert meta["format"] == checkpoints.FORMAT and len(meta["sha256"]) == 64
    assert json.loads(meta["structure"])["epoch"] == 2


def test_shared_tensors_are_stored_once(tmp_path: Path) -> None:
    t = st.randn(100)
    st.save({"a": t, "b": t, "c": [t]}, tmp_path / "s.safetensors")
    assert list(safetensors.numpy.load_file(tmp_path / "s.safetensors")) == ["a"]
    got = st.load(tmp_path / "s.safetensors")
    assert got["a"] is got["b"] is got["c"][0]


def test_model_and_optimizer_resume_exactly(tmp_path: Path) -> None:
    st.manual_seed(0)
    model = _model()
    opt = st.optim.Adam(model.parameters(), lr=0.01)
    _train(model, opt, 3, seed=1)
    st.save({"model": model, "optimizer": opt, "epoch": 3}, tmp_path / "ckpt.safetensors")
    reference = _train(model, opt, 4, seed=2)

    st.manual_seed(123)  # a fresh model with different weights
    fresh = _model()
    fresh_opt = st.optim.Adam(fresh.parameters(), lr=0.5)
    ckpt = st.load(tmp_path / "ckpt.safetensors")
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["optimizer"])
    assert ckpt["epoch"] == 3
    resumed = _train(fresh, fresh_opt, 4, seed=2)
    np.testing.assert_allclose(resumed, reference, rtol=1e-6)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, err_msg=k)


def test_unsupported_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"cannot save extra\.hook: a function"):
        st.save({"model": {"w": st.ones(1)}, "extra": {"hook": lambda: 0}}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="key"):
        st.save({frozenset(): 1}, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())
    with pytest.raises(CheckpointError, match="does not exist; create it"):
        st.save({"a": 1}, tmp_path / "missing" / "x.safetensors")


# ---- atomic writes ---------------------------------------------------------------------

def _old_checkpoint(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "ckpt.safetensors"
    st.save({"model": _model(), "epoch": 1}, path)
    return path, path.read_bytes()


def _assert_intact(path: Path, old: bytes) -> None:
    assert path.read_bytes() == old
    assert st.load(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_a_write_that_fails_midway_leaves_the_old_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path, old = _old_checkpoint(tmp_path)

    def half_then_fail(f, data: bytes) -> None:
        f.write(data[: len(data) // 2])
        f.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "_write_chunks", half_then_fail)
    with pytest.raises(CheckpointError, match="No space left on device.*previous file.*unchanged") as info:
        st.save({"model": _model(), "epoch": 2}, path)
    assert isinstance(info.value, OSError) and info.value.path == str(path)
    _assert_intact(path, old)


def test_an_interrupt_during_the_write_leaves_the_old_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path, old = _old_checkpoint(tmp_path)
    real = checkpoints._write_chunks

    def interrupted(f, data: bytes) -> None:
        real(f, data[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "_write_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        st.save({"model": _model(), "epoch": 2}, path)
    _assert_intact(path, old)


@pytest.mark.parametrize("stage", ["fsync", "replace"])
def test_failures_at_fsync_or_rename_leave_the_old_checkpoint(tmp_path: Path, monkeypatch, stage: str) -> None:
    path, old = _old_checkpoint(tmp_path)

    def fail(*args, **kwargs):
        raise OSError(5, f"simulated {stage} failure")

    monkeypatch.setattr(checkpoints.os, stage, fail)
    with pytest.raises(CheckpointError, match=f"simulated {stage} failure"):
        st.save({"model": _model(), "epoch": 2}, path)
    monkeypatch.undo()
    _assert_intact(path, old)


def test_a_successful_save_replaces_and_syncs(tmp_path: Path, monkeypatch) -> None:
    path, _ = _old_checkpoint(tmp_path)
    synced = []
    real = os.fsync
    monkeypatch.setattr(checkpoints.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    st.save({"model": _model(), "epoch": 2}, path)
    assert st.load(path)["epoch"] == 2
    assert len(synced) == 2  # the file, then its directory
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# ---- corrupted files ---------------------------------------------------------------------

@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, bytes, int]:
    path = tmp_path / "good.safetensors"
    st.save({"model": _model(), "optimizer": {"state": {0: {"step": 5}}}, "epoch": 7}, path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return path, data, 8 + n


def test_truncated_files_are_refused_by_name(good) -> None:
    path, data, data_start = good
    for cut in (0, 5, 8, data_start // 2, data_start, data_start + 3, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            st.load(path)
        msg = str(info.value)
        assert str(path) in msg and ("truncated" in msg or "fewer than" in msg), (cut, msg)
        assert info.value.path == str(path)


def test_every_flipped_header_byte_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "small.safetensors"
    st.save({"w": st.randn(4, 3), "n": st.tensor([1, 2]), "epoch": 7, "opt": {"state": {0: {"step": 5}}}}, path)
    data = path.read_bytes()
    data_start = 8 + struct.unpack("<Q", data[:8])[0]
    undetected = []
    for i in range(data_start):
        bad = bytearray(data)
        bad[i] ^= 0x01
        path.write_bytes(bytes(bad))
        try:
            st.load(path)
        except CheckpointError as exc:
            assert str(path) in str(exc)
        else:
            undetected.append(i)
    assert not undetected, f"flips at header bytes {undetected[:10]} loaded silently"


def test_flipped_data_bytes_fail_the_checksum(good) -> None:
    path, data, data_start = good
    for i in np.linspace(data_start, len(data) - 1, 9).astype(int):
        bad = bytearray(data)
        bad[i] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match="SHA-256"):
            st.load(path)


def test_appended_bytes_and_missing_files(good, tmp_path: Path) -> None:
    path, data, _ = good
    path.write_bytes(data + b"\0\0")
    with pytest.raises(CheckpointError, match="follow the last tensor"):
        st.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        st.load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="directory"):
        st.load(tmp_path)


def test_load_to_a_device(good, device: str) -> None:
    path, data, _ = good
    path.write_bytes(data)
    ckpt = st.load(path, device=device)
    assert all(t.device == st.device(device) for t in ckpt["model"].values())
    # devices without 64-bit integers (wgpu) get the batch count as int32
    assert ckpt["model"]["1.num_batches_tracked"].dtype in (st.int64, st.int32)
