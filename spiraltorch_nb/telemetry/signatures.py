"""Op signatures: the part of an op event that repeats from one training step to the next.

A training loop dispatches the same ops on the same shapes every step. The repeating
part of each event, its *signature* ``(op, backend, phase, input shapes, dtype, bytes
in, bytes out)``, is interned when the op is recorded (one dictionary lookup), and the
row keeps only the signature's id and the per-call values: eight ints, packed into an
array the garbage collector never walks (see :mod:`.buffers`). At conversion the
columns (names, nested shape lists, FLOP estimates) are gathered by id from a frame
holding each distinct signature once.

The table holds at most ``capacity`` signatures; past that (shapes that never repeat)
a signature gets a negative id, is held until its row is converted, and its columns
are computed directly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from .costs import flops_column
from .frames import OPS_SCHEMA

__all__ = ["BackendInfo", "SignatureTable", "SIGNATURE_COLUMNS", "dtype_info"]

#: op columns that come from the signature (the rest are per call)
SIGNATURE_COLUMNS = ("op", "backend", "device", "phase", "shapes", "dtype", "bytes_in", "bytes_out", "flops")
_SIG_SCHEMA = {c: OPS_SCHEMA[c] for c in SIGNATURE_COLUMNS}


class BackendInfo:
    """What the hot path needs to know about one backend, looked up once per op.

    Rows name it by ``key`` (an int), not by reference: a row of atomic values is one the
    garbage collector stops tracking, so staged rows cost no collection time.
    """

    __slots__ = ("key", "name", "device", "numpy", "shape_of", "nbytes_of", "dtype_of", "timer")

    def __init__(self, key: int, name: str, device: str, numpy: bool, shape_of: Any, nbytes_of: Any,
                 dtype_of: Any, timer: Any) -> None:
        self.key = key
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

    def __init__(self, backends: dict[int, BackendInfo], capacity: int = 65536) -> None:
        #: the backends signatures name by key
        self.backends = backends
        self.capacity = capacity
        self.index: dict[tuple, int] = {}
        self.keys: list[tuple] = []
        self._frame = pl.DataFrame(schema=_SIG_SCHEMA)
        self._dtype_info: dict[Any, tuple[str, int]] = {}
        #: signatures past the capacity, by their negative ids, until their rows are converted
        self.overflow: dict[int, tuple] = {}
        self._overflow_next = 0
        self._lock = threading.Lock()

    def intern(self, key: tuple) -> int:
        """The id of signature ``key`` (added when new); negative once the table is full.

        ``key`` is what the recorder looks up, in one of four flat layouts told apart
        by length: ``(op, backend, phase, shape, dtype, bytes_in, bytes_out)`` for one
        tensor input, ``(op, backend, phase, shape_a, shape_b, dtype, bytes_in,
        bytes_out)`` for two, ``(op, backend, phase, shape_a, shape_b, shape_c, dtype,
        bytes_in, bytes_out, None)`` for three, and ``(op, backend, phase, shapes, dtype,
        bytes_in, bytes_out, None, None)`` for any other op. :meth:`key` gives
        the canonical ``(op, backend, phase, shapes, dtype, bytes_in, bytes_out)``.
        A negative id stands for the signature until :meth:`columns` converts its row.
        """
        n = len(key)
        if n == 9:
            canonical = key[:7]
        elif n == 10:
            canonical = (*key[:3], key[3:6], *key[6:9])
        elif n == 8:
            canonical = (*key[:3], key[3:5], *key[5:])
        else:
            canonical = (*key[:3], key[3:4], *key[4:])
        with self._lock:
            sid = self.index.get(key)
            if sid is None:
                if len(self.keys) >= self.capacity:
                    self._overflow_next -= 1
                    self.overflow[self._overflow_next] = canonical
                    return self._overflow_next
                sid = self.index[key] = len(self.keys)
                self.keys.append(canonical)
            return sid

    def key(self, sid: int) -> tuple:
        """The signature tuple of id ``sid`` (from :meth:`intern`)."""
        return self.keys[sid] if sid >= 0 else self.overflow[sid]

    def columns(self, sids: np.ndarray) -> pl.DataFrame:
        """The signature columns of each row, in order, from the ids :meth:`intern` gave.

        Negative ids (signatures past the capacity) are converted directly and released.
        """
        with self._lock:
            have = self._frame.height
            if len(self.keys) > have:
                self._frame = pl.concat([self._frame, self.convert(self.keys[have:])], rechunk=True)
            frame = self._frame
            if len(sids) and sids.min() < 0:
                keys = [self.key(s) for s in sids.tolist()]
                for s in set(sids[sids < 0].tolist()):
                    del self.overflow[s]
                overflow = True
            else:
                overflow = False
        if overflow:
            return self.convert(keys)
        return frame[pl.Series(sids, dtype=pl.UInt32)]

    def convert(self, keys: Sequence[tuple]) -> pl.DataFrame:
        """Signature keys -> their columns (names, nested shape lists, FLOP estimates)."""
        if not keys:
            return pl.DataFrame(schema=_SIG_SCHEMA)
        op, backend_keys, phase, shapes, dtypes, nin, nout = zip(*keys, strict=True)
        infos = [self.backends[k] for k in backend_keys]
        dt_info = self._dtype_info
        for dt in dict.fromkeys(dtypes):
            if dt not in dt_info:
                dt_info[dt] = dtype_info(dt)
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


def dtype_info(dt: Any) -> tuple[str, int]:
    """``(name, itemsize)`` of a row's dtype: a NumPy dtype, or the name of a DType (wgpu)."""
    if isinstance(dt, str):
        from ..dtypes import get_dtype

        return dt, get_dtype(dt).itemsize or 1
    return dt.name, dt.itemsize or 1


def shapes_series(shapes: Sequence[tuple]) -> pl.Series:
    """Tuples of shape tuples -> List(List(Int64)); each distinct value is converted once."""
    index = {s: i for i, s in enumerate(dict.fromkeys(shapes))}
    uniq = [[list(d) for d in s] for s in index]
    pos = pl.Series(list(map(index.__getitem__, shapes)), dtype=pl.UInt32)
    return pl.Series(uniq, dtype=OPS_SCHEMA["shapes"]).gather(pos)
