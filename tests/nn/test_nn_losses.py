"""Loss modules against torch.nn: values and gradients for each option."""

from __future__ import annotations

import numpy as np
import pytest
from nn_parity import torch

import spiraltorch_nb as st

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((6, 4)).astype(np.float32)
LOGITS_3D = RNG.standard_normal((3, 4, 5)).astype(np.float32)
TARGET = np.array([0, 3, 1, -100, 2, 3])
TARGET_3D = RNG.integers(0, 4, (3, 5))
CLASS_W = np.array([0.5, 1.0, 2.0, 1.5], np.float32)
PRED = RNG.standard_normal((5, 3)).astype(np.float32)
GOAL = RNG.standard_normal((5, 3)).astype(np.float32)
PROBS = RNG.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
BINARY = (RNG.uniform(size=(5, 3)) > 0.5).astype(np.float32)
POS_W = np.array([0.5, 2.0, 3.0], np.float32)


def _tensors(lib: str, arrays: list) -> list:
    out = []
    for a in arrays:
        rg = a is arrays[0]
        out.append(st.tensor(a, requires_grad=rg) if lib == "st" else torch.tensor(a, requires_grad=rg))
    return out


def _module(lib: str, name: str, kw: dict):
    cls = getattr(st.nn if lib == "st" else torch.nn, name)
    conv = (lambda a: st.tensor(a)) if lib == "st" else torch.tensor
    return cls(**{k: conv(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})


CASES = [
    ("MSELoss", {}, [PRED, GOAL]),
    ("MSELoss", {"reduction": "sum"}, [PRED, GOAL]),
    ("L1Loss", {"reduction": "none"}, [PRED, GOAL]),
    ("L1Loss", {}, [PRED, GOAL]),
    ("CrossEntropyLoss", {}, [LOGITS, TARGET]),
    ("CrossEntropyLoss", {"reduction": "sum", "label_smoothing": 0.2}, [LOGITS, TARGET]),
    ("CrossEntropyLoss", {"label_smoothing": 0.2}, [LOGITS, TARGET]),
    ("CrossEntropyLoss", {"weight": CLASS_W}, [LOGITS, TARGET]),
    ("CrossEntropyLoss", {"weight": CLASS_W, "label_smoothing": 0.1}, [LOGITS, TARGET]),
    ("CrossEntropyLoss", {"weight": CLASS_W, "reduction": "none", "label_smoothing": 0.3}, [LOGITS, TARGET]),
    ("CrossEntropyLoss", {"ignore_index": 3, "reduction": "none"}, [LOGITS, np.where(TARGET < 0, 0, TARGET)]),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, [LOGITS_3D, TARGET_3D]),
    ("CrossEntropyLoss", {"weight": CLASS_W, "label_smoothing": 0.25}, [LOGITS_3D, TARGET_3D]),
    ("CrossEntropyLoss", {}, [LOGITS, np.abs(RNG.standard_normal((6, 4))).astype(np.float32) / 4]),
    ("NLLLoss", {}, [LOGITS, TARGET]),
    ("NLLLoss", {"weight": CLASS_W, "reduction": "sum"}, [LOGITS, TARGET]),
    ("BCELoss", {}, [PROBS, BINARY]),
    ("BCELoss", {"weight": POS_W, "reduction": "sum"}, [PROBS, BINARY]),
    ("BCEWithLogitsLoss", {}, [PRED, BINARY]),
    ("BCEWithLogitsLoss", {"pos_weight": POS_W}, [PRED * 4, BINARY]),
    ("BCEWithLogitsLoss", {"weight": POS_W, "pos_weight": POS_W, "reduction": "none"}, [PRED, PROBS]),
]


@pytest.mark.parametrize("name,kw,arrays", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_matches_torch(name: str, kw: dict, arrays: list) -> None:
    s_in = _tensors("st", arrays)
    t_in = _tensors("torch", arrays)
    s_loss = _module("st", name, kw)(*s_in)
    t_loss = _module("torch", name, kw)(*t_in)
    np.testing.assert_allclose(s_loss.numpy(), t_loss.detach().numpy(), rtol=1e-5, atol=1e-6)
    w = RNG.standard_normal(tuple(t_loss.shape)).astype(np.float32)
    (s_loss * st.tensor(w)).sum().backward()
    (t_loss * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(s_in[0].grad.numpy(), t_in[0].grad.numpy(), rtol=1e-4, atol=1e-6)


def test_loss_weights_are_buffers_that_travel_with_the_module() -> None:
    loss = st.nn.CrossEntropyLoss(weight=st.tensor(CLASS_W))
    assert list(loss.state_dict()) == list(torch.nn.CrossEntropyLoss(weight=torch.tensor(CLASS_W)).state_dict())
    loss.to(st.float64)
    assert loss.weight.dtype == st.float64
    assert repr(st.nn.MSELoss(reduction="sum")) == repr(torch.nn.MSELoss(reduction="sum"))


def test_bad_reduction_is_refused() -> None:
    with pytest.raises(ValueError, match="'mean', 'sum' or 'none'"):
        st.nn.MSELoss(reduction="avg")
