"""Neural-network building blocks: ``st.nn.functional`` (F) and modules."""

from __future__ import annotations

from . import functional

__all__ = ["functional"]
