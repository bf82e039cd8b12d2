"""Op signatures: the part of an op event that repeats from one training step to the next.

A training loop dispatches the same ops on the same shapes every step. When a chunk
of staged rows is converted, the repeating part of each event, its *signature*
``(op, backend, phase, input shapes, dtype, bytes in, bytes out)``, is looked up in a
table, and its columns (names, nested shape lists, FLOP estimates) are gathered from
there: each is computed once per distinct signature, not once per call. The lookup
happens at conversion, in one tight loop, rather than on the hot path after every
op, where it would cost several times more (its data is cold in the cache there).

The table holds at most ``capacity`` signatures; for a chunk whose new signatures
would overflow it (shapes that never repeat) the columns are computed directly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import polars as pl

from .costs import flops_column
from .frames import OPS_SCHEMA

__all__ = ["BackendInfo", "SignatureTable", "SIGNATURE_COLUMNS"]

#: op columns that come from the signature (the rest are per call)
SIGNATURE_COLUMNS = ("op", "backend", "device", "phase", "shapes", "dtype", "bytes_in", "bytes_out", "flops")
_SIG_SCHEMA = {c: OPS_SCHEMA[c] for c in SIGNATURE_COLUMNS}


class BackendInfo:
    """What the hot path needs to know about one backend, looked up once per op."""

    __slots__ = ("name", "device", "numpy", "shape_of", "nbytes_of", "dtype_of", "timer")

    def __init__(self, name: str, device: str, numpy: bool, shape_of: Any, nbytes_of: Any,
                 dtype_of: Any, timer: Any) -> None:
        self.name = name
        self.device = device
        #: native arrays are NumPy arrays read through the protocol's default accessors
        self.numpy = numpy
        self.shape_of = shape_of
        self.nbytes_of = nbytes_of
        self.dtype_of = dtype_of
        #: the entered device timer (see recorder module docstring), or None
        self.timer = timer


class SignatureTable:
    """Interned op signatures and their converted columns, row ``i`` for id ``i``."""

    def __init__(self, capacity: int = 65536) -> None:
        self.capacity = capacity
        self.index: dict[tuple, int] = {}
        self.keys: list[tuple] = []
        self._frame = pl.DataFrame(schema=_SIG_SCHEMA)
        self._dtype_info: dict[Any, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def columns(self, keys: Sequence[tuple]) -> pl.DataFrame:
        """The signature columns of each row, in order; new signatures are interned.

        When the new ones would overflow ``capacity`` (shapes that never repeat), the
        rows' columns are computed directly instead, and the table stays as it is.
        """
        get = self.index.get
        ids = [get(k) for k in keys]  # one hash per row: most signatures are known already
        with self._lock:
            if None in ids:
                index = self.index
                new = [k for k in dict.fromkeys(k for k, i in zip(keys, ids, strict=True) if i is None)
                       if k not in index]
                if len(self.keys) + len(new) > self.capacity:
                    return self.convert(keys)
                for k in new:
                    index[k] = len(self.keys)
                    self.keys.append(k)
                ids = [index[k] if i is None else i for k, i in zip(keys, ids, strict=True)]
            have = self._frame.height
            if len(self.keys) > have:
                self._frame = pl.concat([self._frame, self.convert(self.keys[have:])], rechunk=True)
            frame = self._frame
        return frame[pl.Series(ids, dtype=pl.UInt32)]

    def convert(self, keys: Sequence[tuple]) -> pl.DataFrame:
        """Signature keys -> their columns (names, nested shape lists, FLOP estimates)."""
        if not keys:
            return pl.DataFrame(schema=_SIG_SCHEMA)
        op, infos, phase, shapes, dtypes, nin, nout = zip(*keys, strict=True)
        dt_info = self._dtype_info
        for dt in dict.fromkeys(dtypes):
            if dt not in dt_info:
                dt_info[dt] = (dt.name, dt.itemsize or 1)
        op_col = pl.Series(op, dtype=pl.String)
        shapes_col = shapes_series(shapes)
        nout_col = pl.Series(nout, dtype=pl.Int64)
        itemsize = pl.Series([dt_info[dt][1] for dt in dtypes], dtype=pl.Int64)
        return pl.DataFrame({
            "op": op_col, "backend": [i.name for i in infos], "device": [i.device for i in infos],
            "phase": phase, "shapes": shapes_col, "dtype": [dt_info[dt][0] for dt in dtypes],
            "bytes_in": nin, "bytes_out": nout_col,
            "flops": flops_column(op_col, shapes_col, nout_col // itemsize),
        }, schema=_SIG_SCHEMA)


def shapes_series(shapes: Sequence[tuple]) -> pl.Series:
    """Tuples of shape tuples -> List(List(Int64)); each distinct value is converted once."""
    index = {s: i for i, s in enumerate(dict.fromkeys(shapes))}
    uniq = [[list(d) for d in s] for s in index]
    pos = pl.Series(list(map(index.__getitem__, shapes)), dtype=pl.UInt32)
    return pl.Series(uniq, dtype=OPS_SCHEMA["shapes"]).gather(pos)
