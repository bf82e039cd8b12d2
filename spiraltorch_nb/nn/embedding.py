"""Embedding: a lookup table of learned vectors indexed by integers."""

from __future__ import annotations

from typing import Any

from ..autograd.grad_mode import no_grad
from ..errors import DTypeError
from ..ops import creation
from ..ops.registry import dispatch as _d
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by integer indices; initialized N(0, 1).

    ``padding_idx`` names a row that starts at zero and receives no gradient.

    >>> import spiraltorch_nb as st
    >>> emb = st.nn.Embedding(10, 4, padding_idx=0)
    >>> emb(st.tensor([[0, 3]])).shape
    (1, 2, 4)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within [-{num_embeddings}, {num_embeddings}); "
                                 f"got {padding_idx}")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(creation.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, idx: Tensor) -> Tensor:
        if idx.dtype.is_floating_point:
            raise DTypeError(f"Embedding expects integer indices; got {idx.dtype.name}. Convert with idx.long()",
                             op="embedding", dtype=idx.dtype)
        flat = idx.reshape(-1)
        rows = self.weight[flat]
        if self.padding_idx is not None:
            # the padding row keeps its value but sends no gradient back, as in PyTorch
            keep = (flat != self.padding_idx).unsqueeze(1)
            rows = _d("where", keep, rows, rows.detach())
        return rows.reshape(*idx.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
