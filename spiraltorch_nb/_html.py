"""Rich notebook display of tensors (``_repr_html_``)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

__all__ = ["tensor_html"]


def tensor_html(t: Any) -> str:
    """A compact card: shape, dtype, device, grad status, summary statistics and the values."""
    arr = t.numpy()
    rows = [("shape", str(tuple(arr.shape))), ("dtype", t.dtype.name), ("device", str(t.device))]
    if t.grad_fn is not None:
        rows.append(("grad_fn", html.escape(repr(t.grad_fn))))
    elif t.requires_grad:
        rows.append(("requires_grad", "True"))
    if arr.size and arr.dtype.kind in "fiu":
        a64 = arr.astype(np.float64)
        finite = a64[np.isfinite(a64)]
        if finite.size:
            rows.append(("min / mean / max", f"{finite.min():.4g} / {finite.mean():.4g} / {finite.max():.4g}"))
        if finite.size != a64.size:
            rows.append(("non-finite", str(int(a64.size - finite.size))))
    meta = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    values = html.escape(np.array2string(arr, separator=", ", threshold=200, edgeitems=3, precision=4))
    return (
        "<div class='spiraltorch-tensor' style='font-family:monospace;font-size:12px'>"
        f"<table>{meta}</table><pre style='margin:4px 0'>{values}</pre></div>"
    )
