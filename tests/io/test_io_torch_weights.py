"""PyTorch weights (.pt and safetensors) load into the same architecture here and give the same outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.errors import CheckpointError

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def _cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def _encoder(lib):
    return lib.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, norm_first=True,
                                          activation="gelu")


RNG = np.random.default_rng(0)
MODELS = {
    "mlp": (_mlp, RNG.standard_normal((5, 6)).astype(np.float32)),
    "cnn": (_cnn, RNG.standard_normal((2, 3, 10, 10)).astype(np.float32)),
    "encoder": (_encoder, RNG.standard_normal((2, 7, 16)).astype(np.float32)),
}


def _trained_torch(name: str):
    torch.manual_seed(0)
    make, x = MODELS[name]
    model = make(torch)
    if name == "cnn":  # give BatchNorm real running statistics
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(8, 3, 10, 10) * 2 + 1)
    return model.eval(), x


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_saved_weights_give_the_same_outputs(tmp_path: Path, name: str, fmt: str) -> None:
    t_model, x = _trained_torch(name)
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "pt":
        torch.save(t_model.state_dict(), path)
    else:
        safetensors_torch.save_file(t_model.state_dict(), path)
    state = st.io.load_state_dict(path)
    assert all(isinstance(v, st.Tensor) for v in state.values())
    s_model = MODELS[name][0](st)
    report = st.io.check_state_dict(s_model, state)
    assert report.compatible, report
    assert s_model.load_state_dict(state) == ([], [])
    s_model.eval()
    with torch.no_grad():
        want = t_model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(s_model(st.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-5)
    # st.load reads the same files as plain dicts of tensors
    plain = st.load(path)
    assert sorted(plain) == sorted(t_model.state_dict())


def test_key_maps_prefixes_and_nested_checkpoints(tmp_path: Path) -> None:
    t_model, x = _trained_torch("mlp")
    wrapped = torch.nn.DataParallel(t_model)  # keys become "module.0.weight", ...
    path = tmp_path / "dp.pth"
    torch.save({"epoch": 4, "state_dict": wrapped.state_dict(), "note": "x"}, path)
    s_model = _mlp(st)
    assert not st.io.check_state_dict(s_model, path).compatible
    s_model.load_state_dict(st.io.load_state_dict(path, strip="module."))
    with torch.no_grad():
        np.testing.assert_allclose(s_model.eval()(st.tensor(x)).numpy(), t_model(torch.tensor(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)
    # a dict map renames some keys and keeps the rest; a function may also drop keys
    state = st.io.load_state_dict(path, {"module.4.weight": "head.weight"}, strip=None)
    assert "head.weight" in state and "module.4.bias" in state
    state = st.io.load_state_dict(path, lambda k: None if k.endswith("bias") else k.replace("module.", "net."))
    assert sorted(state) == ["net.0.weight", "net.2.weight", "net.4.weight"]
    with pytest.raises(st.nn.StateDictError, match="both"):
        st.io.load_state_dict(path, lambda k: "same")


def test_bfloat16_safetensors_widen_to_float32(tmp_path: Path) -> None:
    w = torch.randn(4, 3).to(torch.bfloat16)
    safetensors_torch.save_file({"w": w, "b": torch.arange(3, dtype=torch.int64)}, tmp_path / "bf.safetensors")
    state = st.io.load_state_dict(tmp_path / "bf.safetensors")
    assert state["w"].dtype == st.float32 and state["b"].dtype == st.int64
    np.testing.assert_array_equal(state["w"].numpy(), w.float().numpy())


def test_check_state_dict_reports_before_loading() -> None:
    model = _mlp(st)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = {k: v.detach().numpy() for k, v in _mlp(torch).state_dict().items()}
    state["2.weight"] = np.zeros((16, 5), np.float32)
    del state["4.bias"]
    state["head.scale"] = np.ones(1, np.float32)
    report = st.io.check_state_dict(model, state)
    assert not report.compatible and not report
    assert report.missing == ["4.bias"] and report.unexpected == ["head.scale"]
    assert report.mismatched == {"2.weight": ((16, 16), (16, 5))}
    assert "0.weight" in report.matched
    text = repr(report)
    assert "compatible=False" in text and "4.bias" in text and "(16, 5)" in text
    page = report._repr_html_()
    assert "not compatible" in page and "head.scale" in page and page.count("<tr>") == 4
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    ok = st.io.check_state_dict(model, model.state_dict())
    assert ok.compatible and "compatible=True" in repr(ok)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module, not a state dict
    with pytest.raises(CheckpointError, match="weights_only"):
        st.io.load_state_dict(path)


def test_missing_torch_is_explained(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, path)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(CheckpointError, match="pip install torch") as info:
        st.io.load_state_dict(path)
    assert str(path) in str(info.value)


def test_non_state_dict_files_say_what_they_hold(tmp_path: Path) -> None:
    st.save({"epoch": 1, "history": [0.5, 0.4]}, tmp_path / "meta.safetensors")
    with pytest.raises(CheckpointError, match="'epoch': int"):
        st.io.load_state_dict(tmp_path / "meta.safetensors")
    st.save({"model": _mlp(st), "epoch": 1}, tmp_path / "ckpt.safetensors")
    assert len(st.io.load_state_dict(tmp_path / "ckpt.safetensors")) == 6  # unwrapped from "model"


def test_prefix_helpers() -> None:
    sd = {"encoder.a": 1, "encoder.b": 2, "head.w": 3}
    assert st.io.select_prefix(sd, "encoder.") == {"a": 1, "b": 2}
    assert st.io.add_prefix({"a": 1}, "model.") == {"model.a": 1}
    assert st.io.replace_prefix(sd, "encoder.", "enc.") == {"enc.a": 1, "enc.b": 2, "head.w": 3}
    assert st.io.strip_prefix({"module.x": 1, "y": 2}) == {"x": 1, "y": 2}
    with pytest.raises(TypeError, match="dict or a function"):
        st.io.rename_keys(sd, 3)
