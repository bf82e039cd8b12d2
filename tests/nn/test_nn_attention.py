"""MultiheadAttention and Transformer encoder blocks against torch.nn with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from nn_parity import check_module, torch, torch_state

import spiraltorch_nb as st

E, H, L, S, N = 8, 2, 5, 6, 3
RNG = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _layout(a: np.ndarray, batch_first: bool) -> np.ndarray:
    """(N, T, E) arrays as the module expects them."""
    return a if batch_first else np.ascontiguousarray(a.transpose(1, 0, 2))


KPM = np.zeros((N, S), bool)
KPM[1, 4:] = True
KPM[2, 0] = True
KPM_TAIL = np.zeros((N, S), bool)  # with a causal mask, no query loses every key
KPM_TAIL[1, 4:] = True
ATTN_BOOL = np.triu(np.ones((L, S), bool), 2)
ATTN_FLOAT = RNG.standard_normal((L, S)).astype(np.float32)
ATTN_3D = RNG.uniform(size=(N * H, L, S)) > 0.8
ATTN_3D[..., 0] = False  # every row keeps one key


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("masks", ["none", "key_padding", "bool_attn", "float_attn", "both", "3d_attn", "float_kpm"])
def test_mha_matches_torch(batch_first: bool, masks: str) -> None:
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(E, H, batch_first=batch_first)
    s = st.nn.MultiheadAttention(E, H, batch_first=batch_first)
    q, k, v = (_layout(a, batch_first) for a in (_x(N, L, E), _x(N, S, E), _x(N, S, E)))
    kw = {"none": {}, "key_padding": {"key_padding_mask": KPM}, "bool_attn": {"attn_mask": ATTN_BOOL},
          "float_attn": {"attn_mask": ATTN_FLOAT}, "both": {"attn_mask": ATTN_BOOL, "key_padding_mask": KPM},
          "3d_attn": {"attn_mask": ATTN_3D},
          "float_kpm": {"key_padding_mask": np.where(KPM, -2.0, 0.5).astype(np.float32)}}[masks]
    check_module(s, t, [q, k, v], kwargs=kw)
    # the attention weights too, averaged and per head
    for avg in (True, False):
        conv = {name: st.tensor(m) for name, m in kw.items()}
        _, sw = s(st.tensor(q), st.tensor(k), st.tensor(v), average_attn_weights=avg, **conv)
        with torch.no_grad():
            _, tw = t(torch.tensor(q), torch.tensor(k), torch.tensor(v), average_attn_weights=avg,
                      **{name: torch.tensor(m) for name, m in kw.items()})
        np.testing.assert_allclose(sw.numpy(), tw.numpy(), rtol=1e-5, atol=1e-6)


def test_mha_need_weights_false_and_unbatched_input() -> None:
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(E, H)
    s = st.nn.MultiheadAttention(E, H)
    s.load_state_dict(torch_state(t))
    q = _x(L, E)
    out, w = s(st.tensor(q), st.tensor(q), st.tensor(q), need_weights=False)
    assert w is None
    with torch.no_grad():
        want, want_w = t(torch.tensor(q), torch.tensor(q), torch.tensor(q))
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    _, sw = s(st.tensor(q), st.tensor(q), st.tensor(q))
    np.testing.assert_allclose(sw.numpy(), want_w.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{"kdim": 5, "vdim": 3}, {"add_bias_kv": True}, {"add_zero_attn": True},
                                     {"add_bias_kv": True, "add_zero_attn": True, "bias": False}])
def test_mha_options_match_torch(options: dict) -> None:
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(E, H, batch_first=True, **options)
    s = st.nn.MultiheadAttention(E, H, batch_first=True, **options)
    assert list(s.state_dict()) == list(t.state_dict())
    kd, vd = options.get("kdim", E), options.get("vdim", E)
    check_module(s, t, [_x(N, L, E), _x(N, S, kd), _x(N, S, vd)],
                 kwargs={"key_padding_mask": KPM, "attn_mask": ATTN_BOOL})


def test_mha_is_causal_builds_the_causal_mask() -> None:
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(E, H, batch_first=True)
    s = st.nn.MultiheadAttention(E, H, batch_first=True)
    causal = np.triu(np.ones((L, L), bool), 1)
    x = _x(N, L, E)
    check_module(s, t, [x, x, x], kwargs={"attn_mask": causal}, st_kwargs={"is_causal": True})


def test_mha_errors_name_the_expected_shapes() -> None:
    s = st.nn.MultiheadAttention(E, H, batch_first=True)
    x = st.randn(N, L, E)
    with pytest.raises(st.ShapeError, match=r"key_padding_mask must be \(N, S\)"):
        s(x, x, x, key_padding_mask=st.zeros(N, L + 1).bool())
    with pytest.raises(st.ShapeError, match="attn_mask must be"):
        s(x, x, x, attn_mask=st.zeros(2, 2).bool())
    with pytest.raises(st.ShapeError, match="multiple of"):
        st.nn.MultiheadAttention(10, 3)


ENCODER_CASES = [
    dict(batch_first=True, norm_first=False, activation="relu"),
    dict(batch_first=False, norm_first=False, activation="gelu"),
    dict(batch_first=True, norm_first=True, activation="gelu"),
    dict(batch_first=False, norm_first=True, activation="relu"),
]


@pytest.mark.parametrize("cfg", ENCODER_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("masked", [False, True])
def test_encoder_layer_matches_torch(cfg: dict, masked: bool) -> None:
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, **cfg)
    s = st.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, **cfg)
    assert list(s.state_dict()) == list(t.state_dict())
    x = _layout(_x(N, S, E), cfg["batch_first"])
    kw = {"src_mask": np.triu(np.ones((S, S), bool), 1), "src_key_padding_mask": KPM_TAIL} if masked else {}
    # train mode with dropout 0.1 would differ by randomness; compare with dropout off, in train and eval
    t.dropout.p = t.dropout1.p = t.dropout2.p = 0.0
    t.self_attn.dropout = 0.0
    s.dropout.p = s.dropout1.p = s.dropout2.p = 0.0
    s.self_attn.dropout = 0.0
    check_module(s, t, [x], kwargs=kw, train=True)
    s.eval()
    t.eval()
    with torch.no_grad():
        want = t(torch.tensor(x), **{k: torch.tensor(v) for k, v in kw.items()}).numpy()
    got = s(st.tensor(x), **{k: st.tensor(v) for k, v in kw.items()}).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_encoder_stack_matches_torch() -> None:
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, batch_first=True), 2,
                                    norm=torch.nn.LayerNorm(E), enable_nested_tensor=False)
    s = st.nn.TransformerEncoder(st.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, batch_first=True), 2,
                                 norm=st.nn.LayerNorm(E))
    assert list(s.state_dict()) == list(t.state_dict())
    # the copies are independent parameters
    assert s.layers[0].linear1.weight is not s.layers[1].linear1.weight
    check_module(s, t, [_x(N, S, E)], kwargs={"src_key_padding_mask": KPM}, train=True)


def test_encoder_layer_dropout_is_active_only_in_training() -> None:
    layer = st.nn.TransformerEncoderLayer(E, H, 16, dropout=0.5, batch_first=True)
    x = st.randn(2, 4, E)
    st.manual_seed(0)
    a = layer(x).numpy()
    st.manual_seed(1)
    b = layer(x).numpy()
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    with pytest.raises(ValueError, match="'relu', 'gelu' or a callable"):
        st.nn.TransformerEncoderLayer(E, H, activation="swish")


def test_fully_masked_query_gets_zero_weights_not_nan() -> None:
    torch.manual_seed(0)
    t = torch.nn.MultiheadAttention(E, H, batch_first=True)
    s = st.nn.MultiheadAttention(E, H, batch_first=True)
    s.load_state_dict(torch_state(t))
    x = _x(1, 3, E)
    mask = np.array([[True, True, True], [False, True, True], [False, False, False]])
    xs = st.tensor(x, requires_grad=True)
    out, w = s(xs, xs, xs, attn_mask=st.tensor(mask))
    with torch.no_grad():
        want, _ = t(torch.tensor(x), torch.tensor(x), torch.tensor(x), attn_mask=torch.tensor(mask),
                    need_weights=False)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(w.numpy()[0, 0] == 0) and np.allclose(w.numpy()[0, 1:].sum(-1), 1)
    out.sum().backward()
    assert np.all(np.isfinite(xs.grad.numpy()))
