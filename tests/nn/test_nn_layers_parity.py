"""Every layer against torch.nn with the same weights: outputs, input gradients, parameter gradients."""

from __future__ import annotations

import numpy as np
import pytest
from nn_parity import GRAD, check_module, torch, torch_state

import spiraltorch_nb as st

nn = st.nn
tnn = torch.nn


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


LAYERS = [
    ("linear", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), [(4, 5)]),
    ("linear_nobias_3d", lambda: nn.Linear(5, 3, bias=False), lambda: tnn.Linear(5, 3, bias=False), [(2, 4, 5)]),
    ("conv", lambda: nn.Conv2d(3, 4, 3), lambda: tnn.Conv2d(3, 4, 3), [(2, 3, 7, 6)]),
    ("conv_stride_pad_dil", lambda: nn.Conv2d(2, 4, (3, 2), stride=2, padding=(1, 2), dilation=(2, 1)),
     lambda: tnn.Conv2d(2, 4, (3, 2), stride=2, padding=(1, 2), dilation=(2, 1)), [(2, 2, 9, 8)]),
    ("conv_groups_same", lambda: nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False),
     lambda: tnn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False), [(1, 4, 5, 5)]),
    ("maxpool", lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), [(2, 3, 6, 7)]),
    ("maxpool_stride_pad", lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda: tnn.MaxPool2d(3, stride=2, padding=1),
     [(1, 2, 7, 7)]),
    ("avgpool", lambda: nn.AvgPool2d(2, stride=1, padding=1), lambda: tnn.AvgPool2d(2, stride=1, padding=1),
     [(2, 2, 5, 4)]),
    ("adaptive_avgpool_1", lambda: nn.AdaptiveAvgPool2d(1), lambda: tnn.AdaptiveAvgPool2d(1), [(2, 3, 5, 4)]),
    ("adaptive_avgpool_uneven", lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda: tnn.AdaptiveAvgPool2d((3, 2)),
     [(1, 2, 7, 5)]),
    ("flatten", lambda: nn.Flatten(), lambda: tnn.Flatten(), [(2, 3, 4)]),
    ("flatten_range", lambda: nn.Flatten(0, 1), lambda: tnn.Flatten(0, 1), [(2, 3, 4)]),
    ("unflatten", lambda: nn.Unflatten(1, (2, 3)), lambda: tnn.Unflatten(1, (2, 3)), [(4, 6)]),
    ("identity", lambda: nn.Identity(), lambda: tnn.Identity(), [(3, 2)]),
    ("layernorm", lambda: nn.LayerNorm(6), lambda: tnn.LayerNorm(6), [(3, 6)]),
    ("layernorm_2d_shape", lambda: nn.LayerNorm((2, 3), eps=1e-3), lambda: tnn.LayerNorm((2, 3), eps=1e-3),
     [(4, 2, 3)]),
    ("layernorm_noaffine", lambda: nn.LayerNorm(4, elementwise_affine=False),
     lambda: tnn.LayerNorm(4, elementwise_affine=False), [(3, 4)]),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), lambda: tnn.GroupNorm(2, 4), [(3, 4, 5)]),
    ("relu", lambda: nn.ReLU(), lambda: tnn.ReLU(), [(3, 5)]),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), [(3, 5)]),
    ("gelu", lambda: nn.GELU(), lambda: tnn.GELU(), [(3, 5)]),
    ("gelu_tanh", lambda: nn.GELU("tanh"), lambda: tnn.GELU("tanh"), [(3, 5)]),
    ("silu", lambda: nn.SiLU(), lambda: tnn.SiLU(), [(3, 5)]),
    ("tanh", lambda: nn.Tanh(), lambda: tnn.Tanh(), [(3, 5)]),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: tnn.Sigmoid(), [(3, 5)]),
    ("softplus", lambda: nn.Softplus(beta=2.0), lambda: tnn.Softplus(beta=2.0), [(3, 5)]),
    ("softmax", lambda: nn.Softmax(dim=1), lambda: tnn.Softmax(dim=1), [(3, 5)]),
    ("log_softmax", lambda: nn.LogSoftmax(dim=-1), lambda: tnn.LogSoftmax(dim=-1), [(2, 3, 5)]),
    ("dropout_eval", lambda: nn.Dropout(0.5), lambda: tnn.Dropout(0.5), [(3, 5)]),
    ("sequential_mlp", lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
     lambda: tnn.Sequential(tnn.Linear(4, 8), tnn.ReLU(), tnn.Linear(8, 2)), [(5, 4)]),
]


@pytest.mark.parametrize("name,make_st,make_torch,shapes", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(name: str, make_st, make_torch, shapes) -> None:
    torch.manual_seed(0)
    inputs = [_x(*s, seed=i) for i, s in enumerate(shapes)]
    check_module(make_st(), make_torch(), inputs)


def test_batchnorm_train_forward_and_grads_match_torch() -> None:
    torch.manual_seed(0)
    check_module(nn.BatchNorm2d(3), tnn.BatchNorm2d(3), [_x(4, 3, 5, 5)], train=True)
    check_module(nn.BatchNorm1d(4), tnn.BatchNorm1d(4), [_x(6, 4)], train=True)
    check_module(nn.BatchNorm1d(4), tnn.BatchNorm1d(4), [_x(6, 4, 3)], train=True)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_running_stats_follow_torch(momentum: float | None) -> None:
    torch.manual_seed(0)
    t = tnn.BatchNorm2d(3, momentum=momentum)
    s = nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        t.weight.uniform_(0.5, 1.5)
        t.bias.uniform_(-0.5, 0.5)
    s.load_state_dict(torch_state(t))
    for step in range(4):
        x = _x(8, 3, 4, 4, seed=step) * (step + 1) + step
        s(st.tensor(x))
        t(torch.tensor(x))
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(s, key).numpy(), getattr(t, key).numpy(), rtol=1e-5, atol=1e-6)
    assert int(s.num_batches_tracked.item()) == int(t.num_batches_tracked.item()) == 4
    # eval mode normalizes with the running statistics
    s.eval()
    t.eval()
    x = _x(2, 3, 4, 4, seed=9)
    with torch.no_grad():
        want = t(torch.tensor(x)).numpy()
    np.testing.assert_allclose(s(st.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.running_mean.numpy(), t.running_mean.numpy(), rtol=1e-6)


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval() -> None:
    s = nn.BatchNorm1d(3, track_running_stats=False).eval()
    t = tnn.BatchNorm1d(3, track_running_stats=False).eval()
    assert list(s.state_dict()) == list(t.state_dict()) == ["weight", "bias"]
    x = _x(5, 3)
    with torch.no_grad():
        want = t(torch.tensor(x)).numpy()
    np.testing.assert_allclose(s(st.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-5)


def test_batchnorm_rejects_single_value_per_channel_in_training() -> None:
    with pytest.raises(st.ShapeError, match="more than one value per channel"):
        nn.BatchNorm1d(3)(st.randn(1, 3))
    with pytest.raises(st.ShapeError, match=r"\(N, C, H, W\)"):
        nn.BatchNorm2d(3)(st.randn(2, 3))


def test_embedding_matches_torch_and_padding_row_gets_no_gradient() -> None:
    torch.manual_seed(0)
    t = tnn.Embedding(7, 3, padding_idx=2)
    s = nn.Embedding(7, 3, padding_idx=2)
    assert np.all(s.weight.numpy()[2] == 0)
    with torch.no_grad():
        t.weight[2] = 0.5  # a changed padding row is returned as it is, but not trained
    s.load_state_dict(torch_state(t))
    idx = np.array([[0, 2, 5], [2, 6, 6]])
    s_out = s(st.tensor(idx))
    t_out = t(torch.tensor(idx))
    np.testing.assert_allclose(s_out.numpy(), t_out.detach().numpy())
    w = np.random.default_rng(0).standard_normal(t_out.shape).astype(np.float32)
    (s_out * st.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(s.weight.grad.numpy(), t.weight.grad.numpy(), **GRAD)
    assert not np.any(s.weight.grad.numpy()[2])


def test_dropout_trains_like_torch_in_distribution() -> None:
    st.manual_seed(1)
    d = nn.Dropout(0.25)
    y = d(st.ones(200, 200)).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert np.array_equal(d.eval()(st.ones(3, 3)).numpy(), np.ones((3, 3), np.float32))


def test_conv_repr_and_padding_validation_match_torch() -> None:
    for args, kw in [((3, 8, 3), {}), ((3, 8, (3, 1)), {"stride": 2, "padding": 1, "bias": False}),
                     ((4, 8, 3), {"groups": 2, "dilation": 2})]:
        assert repr(nn.Conv2d(*args, **kw)) == repr(tnn.Conv2d(*args, **kw))
    with pytest.raises(st.ShapeError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        nn.Conv2d(3, 4, 3, padding="full")
