"""Multi-head attention with PyTorch's parameter names, so ``torch.nn.MultiheadAttention`` weights load."""

from __future__ import annotations

import math
from typing import Any

from ..errors import DTypeError, ShapeError
from ..functions import cat
from ..ops import creation
from ..ops.registry import dispatch as _d
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


def _additive(mask: Tensor, dtype: Any, name: str) -> Tensor:
    """A boolean mask (True = may not attend) or a float mask, as a float mask added to the scores."""
    if mask.dtype.is_bool:
        return _d("where", mask, -math.inf, creation.zeros(tuple(mask.shape), dtype=dtype, device=mask.device))
    if not mask.dtype.is_floating_point:
        raise DTypeError(f"MultiheadAttention: {name} must be bool (True = masked) or float (added to the scores); "
                         f"got {mask.dtype.name}", op="multihead_attention", dtype=mask.dtype)
    return mask.to(dtype)


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads: ``out_proj(concat_h softmax(q_h k_h^T / sqrt(d) + mask) v_h)``.

    Inputs are (L, N, E) or, with ``batch_first=True``, (N, L, E); unbatched (L, E) works too.
    Masks follow PyTorch: a boolean ``True`` marks a position that may *not* be attended;
    a float mask is added to the scores. A query whose every key is masked gets zero
    attention weights (PyTorch's ``need_weights=False`` path does the same; its
    ``need_weights=True`` path returns NaN there).

    Parameters
    ----------
    embed_dim, num_heads : int
        Model width and number of heads (``embed_dim`` divisible by ``num_heads``).
    dropout : float
        Dropout on the attention weights while training.
    bias, add_bias_kv, add_zero_attn, kdim, vdim, batch_first :
        As in ``torch.nn.MultiheadAttention``.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> mha = st.nn.MultiheadAttention(8, 2, batch_first=True)
    >>> x = st.randn(3, 5, 8)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((3, 5, 8), (3, 5, 5))
    """

    # parameters with add_bias_kv=True, plain None attributes otherwise (as in PyTorch)
    bias_k: Tensor | None
    bias_v: Tensor | None

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ShapeError(f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple of "
                             f"num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        kw = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(creation.empty(3 * embed_dim, embed_dim, **kw))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(creation.empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(creation.empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(creation.empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(creation.empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(creation.empty(1, 1, embed_dim, **kw))
            self.bias_v = Parameter(creation.empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None and self.bias_v is not None:  # __init__ sets both or neither
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _projections(self) -> tuple[Tensor, Tensor, Tensor, Any, Any, Any]:
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        return wq, wk, wv, bq, bk, bv

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``; returns ``(output, weights or None)``.

        ``key_padding_mask`` is (N, S); ``attn_mask`` is (L, S) or (N * num_heads, L, S).
        Weights are averaged over heads (N, L, S) unless ``average_attn_weights=False`` (N, H, L, S).
        ``is_causal`` without ``attn_mask`` builds the causal mask.
        """
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"MultiheadAttention expects query, key and value all 3-d ({'(N, L, E)' if self.batch_first else '(L, N, E)'}) "
                             f"or all 2-d (L, E); got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}",
                             op="multihead_attention", shapes=(tuple(query.shape), tuple(key.shape), tuple(value.shape)))
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, tgt, e = query.shape
        src = key.shape[1]
        if e != self.embed_dim or key.shape[0] != n or value.shape[:2] != key.shape[:2]:
            raise ShapeError(f"MultiheadAttention(embed_dim={self.embed_dim}): query (N, L, E)={tuple(query.shape)}, "
                             f"key={tuple(key.shape)} and value={tuple(value.shape)} do not fit together "
                             "(same batch, same key/value length, E = embed_dim)", op="multihead_attention")
        h, d = self.num_heads, self.head_dim
        dt = query.dtype
        wq, wk, wv, bq, bk, bv = self._projections()
        q = F.linear(query, wq, bq)
        k = F.linear(key, wk, bk)
        v = F.linear(value, wv, bv)

        mask = None  # additive, broadcastable to (N, H, L, S)
        if attn_mask is None and is_causal:
            causal = creation.ones(tgt, src, device=query.device).numpy()
            import numpy as np

            attn_mask = creation.tensor(np.triu(causal, k=1).astype(bool), device=query.device)
        if attn_mask is not None:
            am = _additive(attn_mask, dt, "attn_mask")
            if am.ndim == 2 and tuple(am.shape) == (tgt, src):
                am = am.reshape(1, 1, tgt, src)
            elif am.ndim == 3 and tuple(am.shape) == (n * h, tgt, src):
                am = am.reshape(n, h, tgt, src)
            else:
                raise ShapeError(f"MultiheadAttention: attn_mask must be (L, S)=({tgt}, {src}) or "
                                 f"(N*num_heads, L, S)=({n * h}, {tgt}, {src}); got {tuple(attn_mask.shape)}",
                                 op="multihead_attention")
            mask = am
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (n, src):
                raise ShapeError(f"MultiheadAttention: key_padding_mask must be (N, S)=({n}, {src}); got "
                                 f"{tuple(key_padding_mask.shape)}", op="multihead_attention")
            kpm = _additive(key_padding_mask, dt, "key_padding_mask").reshape(n, 1, 1, src)
            mask = kpm if mask is None else mask + kpm

        if self.bias_k is not None and self.bias_v is not None:
            k = cat([k, self.bias_k.expand(n, 1, e)], dim=1)
            v = cat([v, self.bias_v.expand(n, 1, e)], dim=1)
            if mask is not None:
                mask = F.pad(mask, (0, 1))
        q = q.reshape(n, tgt, h, d).transpose(1, 2)
        k = k.reshape(n, k.shape[1], h, d).transpose(1, 2)
        v = v.reshape(n, v.shape[1], h, d).transpose(1, 2)
        if self.add_zero_attn:
            zeros = creation.zeros(n, h, 1, d, dtype=dt, device=query.device)
            k = cat([k, zeros], dim=2)
            v = cat([v, zeros], dim=2)
            if mask is not None:
                mask = F.pad(mask, (0, 1))

        scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
            # a query that may attend to nothing gets zero weights (as PyTorch's fused path), not NaN
            dead = scores.amax(dim=-1, keepdim=True) == -math.inf
            scores = _d("where", dead, 0.0, scores)
            attn = _d("where", dead, 0.0, scores.softmax(-1))
        else:
            attn = scores.softmax(-1)
        if self.dropout > 0.0 and self.training:
            attn = F.dropout(attn, self.dropout)
        out = (attn @ v).transpose(1, 2).reshape(n, tgt, e)
        out = self.out_proj(out)

        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        weights = attn.mean(dim=1) if average_attn_weights else attn
        return out, (weights.squeeze(0) if unbatched else weights)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, batch_first={self.batch_first}"
