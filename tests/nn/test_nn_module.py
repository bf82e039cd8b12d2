"""The Module API: registration, traversal, modes, devices, hooks, display, state dicts, containers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from nn_parity import torch, torch_state

import spiraltorch_nb as st

nn = st.nn


def _cnn(lib):
    m = lib.nn if lib is st else torch.nn
    return m.Sequential(
        m.Conv2d(3, 8, 3, padding=1), m.BatchNorm2d(8), m.ReLU(), m.MaxPool2d(2),
        m.Conv2d(8, 4, 3, stride=2, bias=False), m.Flatten(), m.Dropout(0.25),
        m.Linear(4, 10), m.LogSoftmax(dim=1))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.head = nn.Linear(6, 2)
        self.scale = nn.Parameter(st.ones(2))
        self.register_buffer("steps", st.zeros((), dtype="int64"))
        self.register_buffer("cache", st.zeros(3), persistent=False)

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


class TorchNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU())
        self.head = torch.nn.Linear(6, 2)
        self.scale = torch.nn.Parameter(torch.ones(2))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("cache", torch.zeros(3), persistent=False)

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


# ---- registration and traversal --------------------------------------------------------

def test_names_and_order_match_torch() -> None:
    s, t = Net(), TorchNet()
    assert [n for n, _ in s.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in s.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in s.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in s.named_children()] == [n for n, _ in t.named_children()]
    assert list(s.state_dict()) == list(t.state_dict())
    assert [n for n, _ in s.named_parameters(recurse=False)] == ["scale"]
    assert list(_cnn(st).state_dict()) == list(_cnn(torch).state_dict())
    assert s.num_parameters() == sum(p.numel() for p in t.parameters())
    assert all(isinstance(p, st.Tensor) and isinstance(p, nn.Parameter) for p in s.parameters())


def test_parameters_are_leaves_shared_once_and_state_dict_shares_memory() -> None:
    lin = nn.Linear(3, 3)
    tied = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(tied.parameters())) == 2
    assert list(tied.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    sd = lin.state_dict()
    assert not sd["weight"].requires_grad and sd["weight"].is_leaf
    with st.no_grad():
        lin.weight.fill_(3.0)
    assert np.all(sd["weight"].numpy() == 3.0)  # detached, but the same memory
    assert all(p.is_leaf and p.requires_grad for p in lin.parameters())


def test_assignment_rules() -> None:
    m = nn.Module()
    m.w = st.randn(2, requires_grad=True)  # a leaf that requires grad becomes a parameter
    m.plain = st.randn(2)  # a plain tensor stays a plain attribute
    m.child = nn.ReLU()
    m.register_parameter("maybe", None)
    assert [n for n, _ in m.named_parameters()] == ["w"]
    assert list(m.state_dict()) == ["w"]
    assert m.maybe is None and "plain" in vars(m)
    with pytest.raises(nn.ModuleError, match="expected a parameter or None"):
        m.w = st.zeros(2)
    with pytest.raises(nn.ModuleError, match="submodule 'child'"):
        m.child = 3
    with pytest.raises(nn.ModuleError, match="no '.'"):
        m.register_buffer("a.b", st.zeros(1))
    with pytest.raises(nn.ModuleError, match="leaf"):
        m.register_parameter("computed", st.randn(2, requires_grad=True) * 2)
    m.child = None
    assert m.child is None and list(m.children()) == []
    del m.w
    assert list(m.parameters()) == []
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = m.missing

    class Forgot(nn.Module):
        def __init__(self) -> None:
            self.lin = nn.Linear(2, 2)

    with pytest.raises(nn.ModuleError, match=r"super\(\).__init__\(\)"):
        Forgot()


def test_parameter_marks_and_frozen_parameters() -> None:
    p = nn.Parameter(st.zeros(3), requires_grad=False)
    assert isinstance(p, nn.Parameter) and not p.requires_grad
    assert not isinstance(st.zeros(3), nn.Parameter)
    m = nn.Module()
    m.frozen = p
    m.live = nn.Parameter(st.ones(2))
    assert [n for n, _ in m.named_parameters()] == ["frozen", "live"]
    assert m.num_parameters() == 5 and m.num_parameters(trainable_only=True) == 2
    with pytest.raises(st.DTypeError, match="floating point"):
        nn.Parameter(st.tensor([1, 2]))
    m.requires_grad_(False)
    assert not any(q.requires_grad for q in m.parameters())


def test_get_submodule_and_parameter() -> None:
    net = Net()
    assert net.get_submodule("body.0") is net.body[0]
    assert net.get_parameter("head.bias") is net.head.bias
    with pytest.raises(AttributeError, match="has no submodule 'nope'"):
        net.get_submodule("body.nope")


# ---- modes, gradients, devices ---------------------------------------------------------

def test_train_eval_propagate_and_apply() -> None:
    net = _cnn(st)
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(nn.ModuleError, match="takes a bool"):
        net.train("no")
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Sequential" and seen.count("Conv2d") == 2


def test_zero_grad_modes() -> None:
    net = Net()
    net(st.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not np.any(p.grad.numpy()) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_dtype_keeps_parameter_objects_and_moves_grads() -> None:
    net = Net()
    params = list(net.parameters())
    net(st.randn(2, 4)).sum().backward()
    assert net.to(st.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == st.float64 and p.grad.dtype == st.float64 for p in params)
    assert net.steps.dtype == st.int64  # integer buffers keep their dtype
    assert net.cache.dtype == st.float64
    # the held objects are still the ones training updates
    net.zero_grad()
    net(st.randn(2, 4, dtype="float64")).sum().backward()
    assert all(p.grad is not None for p in params)
    with pytest.raises(st.DTypeError, match="floating-point"):
        net.to(st.int32)
    assert net.float().head.weight.dtype == st.float32


def test_to_device_keeps_parameter_objects(device: str) -> None:
    net = _cnn(st)
    params = list(net.parameters())
    before = [p.numpy().copy() for p in params]
    net.to(device)
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device == st.device(device) for p in net.parameters())
    assert all(b.device == st.device(device) for b in net.buffers())
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.numpy(), b)
    out = net(st.randn(2, 3, 8, 8, device=device))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.device == st.device(device) for p in params)
    net.cpu()
    assert all(p.device == st.device("cpu") and p.grad.device == st.device("cpu") for p in params)


def test_deepcopy_gives_independent_parameters() -> None:
    net = Net()
    twin = copy.deepcopy(net)
    assert all(isinstance(p, nn.Parameter) for p in twin.parameters())
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), twin.named_parameters(), strict=True):
        assert n1 == n2 and p1 is not p2
        np.testing.assert_array_equal(p1.numpy(), p2.numpy())
    with st.no_grad():
        twin.head.weight.fill_(0.0)
    assert np.any(net.head.weight.numpy())


# ---- calling and hooks -------------------------------------------------------------------

def test_forward_hooks_modify_and_remove() -> None:
    lin = nn.Linear(2, 2)
    calls = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0.0,))
    post = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1.0)
    x = st.randn(3, 2)
    y = lin(x)
    np.testing.assert_allclose(y.numpy(), np.broadcast_to(lin.bias.numpy() + 1.0, (3, 2)), rtol=1e-6)
    assert calls == [(3, 2)]
    pre.remove()
    post.remove()
    post.remove()  # removing twice is harmless
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T + lin.bias.numpy(), rtol=1e-6)
    with lin.register_forward_hook(lambda m, a, o: o * 0.0):
        assert not np.any(lin(x).numpy())
    assert np.any(lin(x).numpy())


def test_hooks_see_every_submodule_call_in_order() -> None:
    net = _cnn(st)
    order = []
    handles = [m.register_forward_hook(lambda mod, a, o, n=name: order.append(n))
               for name, m in net.named_children()]
    net(st.randn(1, 3, 8, 8))
    assert order == [n for n, _ in net.named_children()]
    for h in handles:
        h.remove()
    order.clear()
    net(st.randn(1, 3, 8, 8))
    assert order == []


# ---- display ---------------------------------------------------------------------------------

def test_repr_matches_torch() -> None:
    assert repr(_cnn(st)) == repr(_cnn(torch))
    assert repr(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()])) == repr(
        torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.ReLU()]))
    for s, t in [(nn.LayerNorm(8), torch.nn.LayerNorm(8)), (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)),
                 (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)), (nn.Embedding(5, 3, padding_idx=0),
                 torch.nn.Embedding(5, 3, padding_idx=0)), (nn.GELU("tanh"), torch.nn.GELU("tanh")),
                 (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
                 (nn.Unflatten(1, (2, 3)), torch.nn.Unflatten(1, (2, 3))), (nn.Softplus(), torch.nn.Softplus()),
                 (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)), (nn.Softmax(1), torch.nn.Softmax(1))]:
        assert repr(s) == repr(t)


def test_repr_html_lists_modules_shapes_and_counts() -> None:
    net = _cnn(st)
    page = net._repr_html_()
    assert page.count("<tr>") == 1 + len(list(net.modules()))
    assert "weight (8, 3, 3, 3)" in page and "bias (8,)" in page
    assert f"{net.num_parameters():,} parameters" in page
    assert "BatchNorm2d(8, eps=1e-05" in page and "training mode" in page
    assert "eval mode" in net.eval()._repr_html_()


# ---- state dicts ---------------------------------------------------------------------------------

def test_load_state_dict_from_numpy_torch_and_st_values() -> None:
    t = _cnn(torch)
    with torch.no_grad():
        t(torch.randn(4, 3, 8, 8))  # non-trivial running statistics
    for source in (torch_state(t), t.state_dict(), {k: st.tensor(v) for k, v in torch_state(t).items()}):
        s = _cnn(st)
        params = list(s.parameters())
        assert s.load_state_dict(source) == ([], [])
        assert [id(p) for p in s.parameters()] == [id(p) for p in params]
        for k, v in s.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), torch_state(t)[k])
    s.eval()
    t.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(s(st.tensor(x)).numpy(), t(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_load_state_dict_keeps_the_models_dtype() -> None:
    lin = nn.Linear(2, 3).double()
    lin.load_state_dict({"weight": np.ones((3, 2), np.float32), "bias": [1, 2, 3]})
    assert lin.weight.dtype == st.float64 and lin.bias.tolist() == [1.0, 2.0, 3.0]


def test_load_state_dict_reports_every_problem_at_once_and_loads_nothing() -> None:
    net = Net()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    bad = {k: v.numpy() + 1 for k, v in net.state_dict().items()}
    del bad["head.bias"], bad["steps"]
    bad["head.weight"] = np.zeros((2, 7), np.float32)
    bad["extra.weight"] = np.zeros(1, np.float32)
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(bad)
    err = info.value
    assert isinstance(err, st.SpiralTorchError)
    assert err.missing == ["steps", "head.bias"]  # in the model's state-dict order
    assert err.unexpected == ["extra.weight"]
    assert err.mismatched == {"head.weight": ((2, 6), (2, 7))}
    for word in ("head.bias", "steps", "extra.weight", "(2, 6)", "(2, 7)", "strict=False"):
        assert word in str(err)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # nothing was copied
    # non-strict: mismatched shapes still refuse
    with pytest.raises(nn.StateDictError, match="head.weight"):
        net.load_state_dict(bad, strict=False)
    bad["head.weight"] = np.zeros((2, 6), np.float32)
    result = net.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["steps", "head.bias"] and result.unexpected_keys == ["extra.weight"]
    assert not np.any(net.head.weight.numpy())
    np.testing.assert_array_equal(net.body[0].bias.numpy(), before["body.0.bias"] + 1)
    with pytest.raises(nn.StateDictError, match="mapping"):
        net.load_state_dict([1, 2])


# ---- containers ----------------------------------------------------------------------------

def test_sequential_indexing_and_editing() -> None:
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[-1], nn.ReLU)
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and seq(st.randn(4, 2)).shape == (4, 1)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and head[0] is seq[0] and head(st.randn(4, 2)).shape == (4, 3)
    seq.insert(1, nn.Identity())
    assert [type(m).__name__ for m in seq] == ["Linear", "Identity", "ReLU", "Linear"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    del seq[1]
    assert len(seq) == 3
    with pytest.raises(IndexError, match="out of range"):
        seq[5]
    named = nn.Sequential({"enc": nn.Linear(2, 2), "act": nn.Tanh()})
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"]


def test_module_list_and_dict() -> None:
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers += [nn.Linear(2, 2)]
    layers.insert(0, nn.ReLU())
    assert len(layers) == 5 and isinstance(layers[0], nn.ReLU)
    assert [n for n, _ in layers.named_parameters()][:2] == ["1.weight", "1.bias"]
    del layers[0]
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    with pytest.raises(NotImplementedError, match="iterate"):
        layers(st.zeros(1))
    heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
    heads["c"] = nn.Tanh()
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert heads.pop("c").__class__ is nn.Tanh
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    with pytest.raises(KeyError, match="has no module 'z'"):
        heads["z"]
