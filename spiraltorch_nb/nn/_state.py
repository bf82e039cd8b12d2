"""State-dict plumbing shared by ``Module.load_state_dict`` and ``spiraltorch_nb.io``.

Values may arrive as spiraltorch tensors, NumPy arrays, PyTorch tensors or anything
``numpy.asarray`` understands; :func:`as_array_or_tensor` turns them into something a
parameter can be copied from. :func:`compare_state` is the single place that decides
which keys are missing, unexpected or mis-shaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..errors import SpiralTorchError
from ..tensor import Tensor

__all__ = [
    "StateDictError",
    "StateDictReport",
    "IncompatibleKeys",
    "as_array_or_tensor",
    "shape_of",
    "compare_state",
    "to_device",
]


class StateDictError(SpiralTorchError, RuntimeError):
    """A state dict that does not fit a model: every problem found, reported together.

    Attributes
    ----------
    missing : list of str
        Keys the model has and the state dict lacks.
    unexpected : list of str
        Keys the state dict has and the model lacks.
    mismatched : dict
        ``key -> (expected shape, got shape)``.
    """

    def __init__(self, message: str, missing: list[str] | None = None, unexpected: list[str] | None = None,
                 mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] | None = None) -> None:
        super().__init__(message)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        self.mismatched = dict(mismatched or {})


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _is_torch_tensor(v: Any) -> bool:
    mod = type(v).__module__ or ""
    return mod.startswith("torch") and hasattr(v, "detach") and hasattr(v, "numpy")


def as_array_or_tensor(value: Any, key: str = "") -> Tensor | np.ndarray:
    """A spiraltorch Tensor unchanged, or a NumPy array for anything else (torch tensors included).

    bfloat16 torch tensors become float32 (NumPy has no bfloat16).
    """
    if isinstance(value, Tensor | np.ndarray):
        return value
    if _is_torch_tensor(value):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        try:
            return t.numpy()
        except TypeError as exc:
            raise StateDictError(f"state-dict entry {key!r}: the torch dtype {t.dtype} has no NumPy equivalent "
                                 f"({exc}); convert it first (t.float())") from exc
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise StateDictError(f"state-dict entry {key!r} is a {type(value).__name__}, which is not an array; "
                             "values must be tensors, NumPy arrays or numbers") from exc
    if arr.dtype == object:
        raise StateDictError(f"state-dict entry {key!r} is a {type(value).__name__}, which is not an array; "
                             "values must be tensors, NumPy arrays or numbers")
    return arr


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of a tensor-like value, without converting it."""
    shape = getattr(value, "shape", None)
    if shape is None:
        return tuple(np.shape(value))
    return tuple(int(s) for s in shape)


class StateDictReport:
    """How a state dict fits a model, computed before anything is loaded.

    Attributes
    ----------
    missing : list of str
        Keys the model expects and the state dict lacks.
    unexpected : list of str
        Keys in the state dict the model has no place for.
    mismatched : dict
        ``key -> (expected shape, got shape)`` for keys present on both sides.
    matched : list of str
        Keys present on both sides with equal shapes.
    """

    def __init__(self, missing: list[str], unexpected: list[str],
                 mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], matched: list[str]) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.matched = matched

    @property
    def compatible(self) -> bool:
        """True when every key matches in name and shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __bool__(self) -> bool:
        return self.compatible

    def message(self) -> str:
        """The problems in words, one line per key (empty when compatible)."""
        lines = []
        if self.missing:
            lines.append(f"missing keys ({len(self.missing)}): " + ", ".join(self.missing))
        if self.unexpected:
            lines.append(f"unexpected keys ({len(self.unexpected)}): " + ", ".join(self.unexpected))
        for k, (exp, got) in self.mismatched.items():
            lines.append(f"shape mismatch for {k}: the model has {exp}, the state dict has {got}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        head = (f"StateDictReport(compatible={self.compatible}, matched={len(self.matched)}, "
                f"missing={len(self.missing)}, unexpected={len(self.unexpected)}, "
                f"mismatched={len(self.mismatched)})")
        body = self.message()
        return head if not body else head + "\n  " + body.replace("\n", "\n  ")

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.compatible else "#cf222e"
        verdict = "compatible" if self.compatible else "not compatible"
        rows = [f"<tr><td>{html.escape(k)}</td><td>missing from the state dict</td><td></td></tr>"
                for k in self.missing]
        rows += [f"<tr><td>{html.escape(k)}</td><td>unexpected (the model has no such key)</td><td></td></tr>"
                 for k in self.unexpected]
        rows += [f"<tr><td>{html.escape(k)}</td><td>shape mismatch</td><td>model {exp} / state dict {got}</td></tr>"
                 for k, (exp, got) in self.mismatched.items()]
        table = ("<table><tr><th style='text-align:left'>key</th><th style='text-align:left'>problem</th>"
                 "<th style='text-align:left'>shapes</th></tr>" + "".join(rows) + "</table>") if rows else ""
        return (f"<div class='spiraltorch-state-report' style='font-family:monospace;font-size:12px'>"
                f"<b style='color:{color}'>{verdict}</b>: {len(self.matched)} keys match, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} mis-shaped{table}</div>")


def compare_state(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, Any]) -> StateDictReport:
    """Compare a model's ``key -> shape`` with a state dict's ``key -> value``."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = {}
    matched = []
    for k, exp in expected.items():
        if k in given:
            got = shape_of(given[k])
            if tuple(exp) != got:
                mismatched[k] = (tuple(exp), got)
            else:
                matched.append(k)
    return StateDictReport(missing, unexpected, mismatched, matched)


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def to_device(t: Tensor, device: Any, name: str | None = None) -> Tensor:
    """``t.to(device)``, except that int64 becomes int32 on devices without 64-bit integers (wgpu).

    Integer state (BatchNorm's batch count, an optimizer's step) is what this narrows;
    float64 is left for the device to refuse, since narrowing it would lose precision silently.
    ``name`` (a state-dict key) only makes the error below say which tensor it is.

    Raises
    ------
    DTypeError
        When an int64 value lies outside int32's range, so narrowing would wrap it.
    """
    from ..backends import get_backend
    from ..device import Device

    dev = Device(device)
    if t.device == dev:
        return t
    if t.dtype.name == "int64" and t.dtype not in get_backend(dev).dtypes:
        _check_int32_range(t, dev, name)
        t = t.to("int32")
    return t.to(dev)


def _check_int32_range(t: Tensor, dev: Any, name: str | None) -> None:
    """Raise DTypeError when ``t`` (int64) holds a value int32 cannot, instead of letting it wrap."""
    from ..errors import DTypeError

    if t.numel() == 0:
        return
    lo, hi = int(t.amin().item()), int(t.amax().item())
    if _INT32_MIN <= lo and hi <= _INT32_MAX:
        return
    what = f"module state '{name}'" if name else f"an int64 tensor of shape {tuple(t.shape)}"
    span = f"the value {lo}" if lo == hi else f"values from {lo} to {hi}"
    msg = (f"{what} holds {span}, outside int32's range {_INT32_MIN} to {_INT32_MAX}; {dev} has no int64, "
           "so moving it there would narrow it to int32 and wrap those values. Keep the module on a device "
           "with int64 (cpu, cuda), or bring the values into int32's range before moving it")
    raise DTypeError(msg, op="to_device", dtype=t.dtype)
