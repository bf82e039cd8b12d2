"""The Recorder: the dispatch observer that turns every op into a telemetry row.

``dispatch`` calls ``on_op`` after each operator and ``report_transfer`` calls
``on_transfer`` for each host<->device copy. Each appends one row to a staging deque
(an op row is eight int64s packed into ``bytes``: a few microseconds, nothing left for
the garbage collector); conversion to Polars, FLOP estimates and device-timer
resolution happen later, a chunk at a time (see :mod:`.buffers`).

Device timing
-------------
With ``device_timing=True`` (the default) the recorder asks each backend it sees for
a device timer. The hook protocol, which a backend implements when its device can
time its own work (wgpu timestamp queries, CUDA events):

``backend.device_timer()``
    Returns a context manager, or None when the adapter cannot time. The recorder
    enters it when it first sees an op on that backend and exits it on ``stop()``.
    ``__enter__`` returns the *timer*.
``timer.mark() -> token``
    Called right after each op on that backend (on the dispatching thread). The
    token stands for the device work the backend enqueued since the previous mark
    (or since ``__enter__``): the kernels of exactly that op.
``timer.elapsed_ns(tokens) -> list[int | None]``
    Resolves tokens into device nanoseconds, one per token (None where unknown). It
    may wait for the device; the recorder calls it once per chunk of rows and on
    ``stop()``, never per op, possibly from another thread (one reading the frames).

Rows whose token resolves get ``timing="device"`` and the device duration in
``duration_ns``; all others keep the host time with ``timing="host"``. ``host_ns``
always holds the host time of the forward call.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..backends.base import Backend
from ..dtypes import DType
from ..ops import registry as _registry
from .buffers import EventBuffer, int64_row
from .costs import flops_rule
from .frames import (
    MEMORY_SCHEMA,
    METRICS_SCHEMA,
    OPS_SCHEMA,
    TRANSFERS_SCHEMA,
    TelemetryError,
    TelemetryFrames,
)
from .signatures import BackendInfo, SignatureTable, dtype_info
from .tail import TableTail

__all__ = ["Recorder", "record", "active_recorder"]

_perf_ns = time.perf_counter_ns
_get_ident = threading.get_ident
#: staged op rows (in chunks) beyond which the recording thread converts them itself instead
#: of waiting for the converter thread: the bound on unconverted rows in memory
MAX_STAGED_CHUNKS = 4
_ACTIVE_LOCK = threading.Lock()

TOPIC_OP = "telemetry.op"
TOPIC_TRANSFER = "telemetry.transfer"
TOPIC_METRIC = "telemetry.metric"
#: ops between two checks for telemetry.op subscribers
_BUS_RECHECK = 256
#: values per packed op row: signature id, seq, start, host time, token id, node, thread, step
_OP_WIDTH = 8
#: a missing value in a packed row (no node, no step, no device timer token)
NULL = -(2**63)
_unpack = int64_row(_OP_WIDTH).unpack
#: op columns that vary per call (the others come from the op's signature)
_CALL_SCHEMA = {c: OPS_SCHEMA[c] for c in ("seq", "start_ns", "duration_ns", "timing", "host_ns", "node",
                                           "thread", "step")}


def active_recorder() -> Recorder | None:
    """The recorder currently observing dispatch, or None."""
    obs = _registry.get_dispatch_observer()
    return obs if isinstance(obs, Recorder) else None


def record(**options: Any) -> Recorder:
    """A new, not yet started :class:`Recorder`; start it with ``with`` or ``.start()``.

    Parameters are those of :class:`Recorder`.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> a = st.tensor([1.0, 2.0], requires_grad=True)
    >>> with st.telemetry.record() as rec:
    ...     (a * a + a).sum().backward()
    >>> rec.ops.filter(phase="forward")["op"].to_list()
    ['mul', 'add', 'sum']
    """
    return Recorder(**options)


class Recorder(TelemetryFrames):
    """Records ops, transfers, memory and metrics while active; frames are Polars DataFrames.

    Parameters
    ----------
    max_events : int or None
        Rows kept in memory per table; past it the oldest are dropped (ring buffer)
        and counted in :attr:`dropped`. None keeps everything.
    spill_dir : path or None
        Write rows to Parquet chunks in this folder instead of memory: every event is
        kept, memory holds at most ``chunk_rows`` staged rows per table.
    chunk_rows : int
        Rows staged before conversion into a Polars chunk (or a spilled file).
    device_timing : bool
        Use a backend's device timer where it has one (see the module docstring);
        False records host time everywhere.
    memory_every : int
        Sample memory every this many ops (also on start, stop and every ``log()``);
        0 samples only on start, stop and ``log()``.
    events : bool
        Publish ``telemetry.op``, ``telemetry.transfer`` and ``telemetry.metric`` on
        the plugin event bus (only while someone subscribes to the topic).

    Notes
    -----
    One recorder is active at a time: starting a second raises :class:`TelemetryError`
    (nested ``with`` blocks would otherwise silently split one run's events). Ops from
    every thread are recorded while it is active.
    """

    def __init__(
        self,
        *,
        max_events: int | None = 1_000_000,
        spill_dir: str | Path | None = None,
        chunk_rows: int = 8192,
        device_timing: bool = True,
        memory_every: int = 1000,
        events: bool = True,
    ) -> None:
        for label, value in (("max_events", max_events), ("chunk_rows", chunk_rows)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise TelemetryError(f"record({label}=...) expects a positive int; got {value!r}")
        if not isinstance(memory_every, int) or memory_every < 0:
            raise TelemetryError(f"record(memory_every=...) expects an int >= 0 (0: only on start/stop/log); got {memory_every!r}")
        chunk = chunk_rows if max_events is None else min(chunk_rows, max_events)
        opts: dict[str, Any] = {"chunk_rows": chunk, "max_rows": max_events, "spill_dir": spill_dir}
        self.options = {"max_events": max_events, "spill_dir": None if spill_dir is None else str(spill_dir),
                        "chunk_rows": chunk_rows, "device_timing": bool(device_timing),
                        "memory_every": memory_every, "events": bool(events)}
        self._ops_buf = EventBuffer("ops", OPS_SCHEMA, self._convert_ops, sort_by="seq", packed=_OP_WIDTH, **opts)
        self._xfer_buf = EventBuffer("transfers", TRANSFERS_SCHEMA, _convert(TRANSFERS_SCHEMA), sort_by="seq", **opts)
        self._mem_buf = EventBuffer("memory", MEMORY_SCHEMA, _convert(MEMORY_SCHEMA), sort_by="time_ns", **opts)
        self._met_buf = EventBuffer("metrics", METRICS_SCHEMA, _convert(METRICS_SCHEMA), sort_by="time_ns", **opts)
        self._op_stage = self._ops_buf.stage
        self._op_add = self._op_stage.append
        self._op_pack: Any = self._ops_buf.pack
        self._ops_buf.on_flushed = self._rescheduled
        self._op_chunk = self._ops_buf.chunk_rows
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self._backends: dict[Any, BackendInfo] = {}
        self._infos: dict[int, BackendInfo] = {}  # by key: rows name their backend by key
        self._timers: dict[str, tuple[Any, Any]] = {}  # backend name -> (context manager, timer)
        self._flop_rules: dict[str, Any] = {}
        self._sigs = SignatureTable(self._infos)
        self._sig_ids = self._sigs.index  # read without the lock on the hot path (one dict get)
        #: device timer tokens by id, until their rows are converted (rows hold the id)
        self._tokens: dict[int, Any] = {}
        self._token_ids = itertools.count()
        self._memory_every: float = memory_every or math.inf
        self._next_memory: float = math.inf  # op count at which memory is sampled next
        self._trigger: float = self._op_chunk  # stage length at which on_op calls _on_trigger
        self._step: int | None = None
        self._step_value = NULL  # _step as a row holds it
        self._active = False
        self._owns_fit = False
        self._bus: Any = None
        self._op_bus: Any = None  # the bus while it has telemetry.op subscribers (checked now and then)
        self._next_bus_check: float = 0
        self._publish = bool(events)
        self.device_timing = bool(device_timing)
        self.t0_ns = 0
        self._wall_t0: float | None = None
        self._timer_warned = False
        #: what dispatch calls after every op (see :meth:`_make_on_op`)
        self.on_op = self._make_on_op()

    # ---- lifecycle ----------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether this recorder is observing dispatch now."""
        return self._active

    def start(self) -> Recorder:
        """Begin observing every dispatched op; returns self (idempotent while active)."""
        with _ACTIVE_LOCK:
            if self._active:
                return self
            current = _registry.get_dispatch_observer()
            if current is not None:
                what = "another Recorder" if isinstance(current, Recorder) else f"an observer ({type(current).__name__})"
                msg = (f"cannot start this recorder: {what} is already observing dispatch, and one "
                       "recorder is active at a time. Stop it first (rec.stop(), or leave its "
                       "'with' block), or record inside that one")
                raise TelemetryError(msg)
            if self._wall_t0 is None:
                self.t0_ns = _perf_ns()
                self._wall_t0 = time.time()
            if self._publish:
                from ..plugins import global_registry

                self._bus = global_registry().events
            self._next_memory = self._ops_buf.drained + len(self._op_stage) + self._memory_every
            self._next_bus_check = 0
            self._schedule(self._ops_buf.drained + self._ops_buf.staged)
            self._active = True
            _registry.set_dispatch_observer(self)
        self.sample_memory()
        return self

    def stop(self) -> Recorder:
        """Stop observing; staged rows are converted and device timers resolved. Returns self."""
        with _ACTIVE_LOCK:
            if not self._active:
                return self
            if _registry.get_dispatch_observer() is self:
                _registry.set_dispatch_observer(None)
            self._active = False
        self.sample_memory()
        self._ops_buf.close_worker()
        self.flush()
        self._close_timers()
        return self

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        # an exception in the block stops the recorder, keeps its rows, and propagates
        self.stop()

    def flush(self) -> None:
        """Convert every staged row now (reading a frame does this too)."""
        for buf in (self._ops_buf, self._xfer_buf, self._mem_buf, self._met_buf):
            buf.flush()

    def clear(self) -> None:
        """Forget every recorded row (the recorder stays active if it was)."""
        for buf in (self._ops_buf, self._xfer_buf, self._mem_buf, self._met_buf):
            buf.clear()
        self._tokens.clear()

    # ---- frames -------------------------------------------------------------------
    @property
    def ops(self) -> pl.DataFrame:
        """One row per dispatched op (schema: ``telemetry.OPS_SCHEMA``)."""
        return self._ops_buf.frame()

    @property
    def transfers(self) -> pl.DataFrame:
        """One row per host<->device copy (schema: ``telemetry.TRANSFERS_SCHEMA``)."""
        return self._xfer_buf.frame()

    @property
    def memory(self) -> pl.DataFrame:
        """Memory samples per backend (schema: ``telemetry.MEMORY_SCHEMA``)."""
        return self._mem_buf.frame()

    @property
    def metrics(self) -> pl.DataFrame:
        """Logged metrics in long format: step, name, value, time_ns."""
        return self._met_buf.frame()

    def scan(self, table: str = "ops") -> pl.LazyFrame:
        """A LazyFrame over one table, including spilled files (for runs too large to load)."""
        bufs = {"ops": self._ops_buf, "transfers": self._xfer_buf, "memory": self._mem_buf,
                "metrics": self._met_buf}
        if table not in bufs:
            raise TelemetryError(f"scan() expects one of {sorted(bufs)}; got {table!r}")
        return bufs[table].lazy()

    def tail(self, table: str = "ops") -> TableTail:
        """Reads only what ``table`` gained since the previous read (live views of long runs).

        >>> import spiraltorch_nb as st
        >>> rec = st.telemetry.record()
        >>> tail = rec.tail("metrics")
        >>> rec.log(step=0, loss=1.0)
        >>> tail.read().height, tail.read().height
        (1, 0)
        """
        bufs = {"ops": self._ops_buf, "transfers": self._xfer_buf, "memory": self._mem_buf,
                "metrics": self._met_buf}
        return TableTail(self, table, bufs.get(table))

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped per table because ``max_events`` was reached."""
        return {"ops": self._ops_buf.dropped, "transfers": self._xfer_buf.dropped,
                "memory": self._mem_buf.dropped, "metrics": self._met_buf.dropped}

    @property
    def meta(self) -> dict[str, Any]:  # type: ignore[override]
        """What an export stores next to the tables: clock origin, options, drop counts."""
        from .._version import __version__

        return {"t0_ns": self.t0_ns, "wall_time_start": self._wall_t0, "options": self.options,
                "dropped": self.dropped, "version": __version__}

    def __repr__(self) -> str:
        state = "active" if self._active else "stopped"
        return (f"<Recorder {state}: ops={len(self._ops_buf)} transfers={len(self._xfer_buf)} "
                f"memory={len(self._mem_buf)} metrics={len(self._met_buf)}>")

    # ---- the hot path -------------------------------------------------------------
    def _make_on_op(self) -> Callable[..., None]:
        """The function dispatch calls after every op while this recorder is active (``rec.on_op``).

        ``on_op(op, backend, args, outputs, start_ns, duration_ns, phase)`` appends one
        row: eight int64s packed into one ``bytes`` (see :mod:`.buffers`), the id of the
        op's signature ``(op, backend key, phase, shapes, dtype, bytes in, bytes out)``,
        interned here (see :mod:`~spiraltorch_nb.telemetry.signatures`), then seq,
        start, host time, device timer token, node, thread and step, with :data:`NULL`
        for a missing value. ``bytes`` is not tracked by the garbage collector and the
        temporaries made here are freed here, so recording leaves the collector nothing
        to do.

        A closure rather than a method: everything it reads that does not change is a
        local of the enclosing call, which is the cheapest read Python has; it runs once
        per op and its cost is the recorder's overhead.
        """
        backend_info = self._backends.get
        register = self._register_backend
        signature_id = self._sigs.index.get  # read without the lock (one dict get)
        intern = self._sigs.intern
        stage = self._op_stage
        add = stage.append
        pack = self._ops_buf.pack
        assert pack is not None
        seq = self._seq
        token = self._token
        slow_signature = self._signature
        rec = self
        T = _Tensor
        get_ident = _get_ident
        null = NULL

        def on_op(op: Any, be: Any, args: tuple, outputs: tuple, start_ns: int, duration_ns: int,
                  phase: str) -> None:
            info = backend_info(be)
            if info is None:
                info = register(be)
            out = outputs[0]
            sig: Any = None
            if info.numpy:
                # NumPy arrays: read the attributes the Backend protocol's defaults would read.
                # The signature is flat (shapes side by side; the layouts differ in length) and
                # made canonical only when interned
                if len(outputs) == 1:
                    if out is not None:
                        od = out._data
                        dt, nout = od.dtype, od.nbytes
                else:  # several outputs: those not asked for are None; the first one there names the dtype
                    nout = 0
                    out = None
                    for o in outputs:
                        if o is not None:
                            if out is None:
                                out = o
                            nout += o._data.nbytes
                    if out is not None:
                        dt = out._data.dtype
                if out is not None:
                    n = len(args)
                    if n == 2:
                        a, b = args
                        if type(a) is T:
                            da = a._data
                            if type(b) is T:
                                db = b._data
                                sig = (op.name, info.key, phase, da.shape, db.shape, dt, da.nbytes + db.nbytes, nout)
                            else:
                                sig = (op.name, info.key, phase, da.shape, dt, da.nbytes, nout)
                        elif type(b) is T:  # a Python number first
                            db = b._data
                            sig = (op.name, info.key, phase, db.shape, dt, db.nbytes, nout)
                    elif n == 1:
                        if type(args[0]) is T:
                            da = args[0]._data
                            sig = (op.name, info.key, phase, da.shape, dt, da.nbytes, nout)
                    elif n == 3:
                        a, b, c = args
                        if type(a) is T and type(b) is T and type(c) is T:
                            da, db, dc = a._data, b._data, c._data
                            sig = (op.name, info.key, phase, da.shape, db.shape, dc.shape, dt,
                                   da.nbytes + db.nbytes + dc.nbytes, nout, None)
            if sig is None:
                sig, out = slow_signature(op, info, args, outputs, phase)
            sid = signature_id(sig)
            if sid is None:
                sid = intern(sig)
            timer = info.timer
            node = None if out is None else out._node
            add(pack(sid, next(seq), start_ns, duration_ns, null if timer is None else token(timer.mark()),
                     null if node is None else id(node), get_ident(), rec._step_value))
            if len(stage) >= rec._trigger:
                rec._on_trigger()
            if rec._op_bus is not None:
                rec._publish_op(sid, stage[-1])

        return on_op

    def _publish_op(self, sid: int, row: bytes) -> None:
        bus = self._op_bus
        if bus is not None and bus.has_subscribers(TOPIC_OP):
            bus.publish(TOPIC_OP, self._op_payload(self._sigs.key(sid), _unpack(row)))

    def _signature(self, op: Any, info: BackendInfo, args: tuple, outputs: tuple, phase: str) -> tuple[tuple, Any]:
        """The signature of an op off the NumPy fast path, as a 9-tuple, and its first output.

        The length tells it from the fast path's flat keys (see :meth:`SignatureTable.intern`).
        """
        T = _Tensor
        if len(outputs) > 1:  # a multi-output op leaves the outputs it was not asked for as None
            outputs = tuple(o for o in outputs if o is not None) or outputs[:1]
        out = outputs[0]
        shapes, nin = self._shapes(info, args)
        nout = 0
        if out is None:  # nothing was asked for: recorded with no output bytes, the input dtype
            dt = next((info.dtype_of(a._data) for a in args if type(a) is T), None)
        else:
            dt = info.dtype_of(out._data)
            nbytes_of = info.nbytes_of
            for o in outputs:
                nout += nbytes_of(o._data)
        if type(dt) is DType:  # signatures hold hashable plain values: its name
            dt = dt.name
        return (op.name, info.key, phase, shapes, dt, nin, nout, None, None), out

    def _token(self, token: Any) -> int:
        """A device timer token's id: rows hold ints; the token waits here until conversion."""
        tid = next(self._token_ids)
        self._tokens[tid] = token
        return tid

    @staticmethod
    def _shapes(info: BackendInfo, args: tuple) -> tuple[tuple, int]:
        """The shapes and total bytes of the tensor arguments (the general path)."""
        T = _Tensor
        shapes, nin = [], 0
        shape_of, nbytes_of = info.shape_of, info.nbytes_of
        for a in args:
            if type(a) is T:  # Tensor has no subclasses
                d = a._data
                shapes.append(tuple(shape_of(d)))
                nin += nbytes_of(d)
        return tuple(shapes), nin

    def _on_trigger(self) -> None:
        """The stage reached a chunk, a memory sample or a bus check (one test per op covers all)."""
        with self._lock:
            buf = self._ops_buf
            staged = buf.staged
            total = buf.drained + staged
            if total >= self._next_memory:
                self._next_memory = total + self._memory_every
                self.sample_memory()
            if staged >= self._op_chunk:
                if staged < MAX_STAGED_CHUNKS * self._op_chunk:
                    # converted on the converter thread; until it has drained the stage, the
                    # next check comes a chunk later (the converter reschedules when done)
                    buf.flush_soon()
                    self._schedule(total, pending=staged)
                    return
                buf.flush()  # the converter fell behind: convert here, so memory stays bounded
            self._schedule(self._ops_buf.drained + self._ops_buf.staged)

    def _rescheduled(self) -> None:
        """After a background conversion: triggers count from the new stage length again."""
        with self._lock:
            self._schedule(self._ops_buf.drained + self._ops_buf.staged)

    def _schedule(self, total: int, pending: int = 0) -> None:
        """Set the stage length at which ``on_op`` next calls ``_on_trigger``.

        ``pending``: staged rows a background conversion is about to drain; thresholds are
        counted from there so that ``on_op`` does not fire on every op meanwhile.
        """
        if total >= self._next_bus_check:
            # asking the bus on every op would cost more than the rest of on_op; asking every
            # _BUS_RECHECK ops notices a new telemetry.op subscriber soon enough
            bus = self._bus
            self._op_bus = bus if bus is not None and bus.has_subscribers(TOPIC_OP) else None
            self._next_bus_check = total + _BUS_RECHECK
        drained = self._ops_buf.drained
        if pending:
            self._trigger = pending + max(1, min(self._op_chunk, self._next_memory - total,
                                                 self._next_bus_check - total))
            return
        self._trigger = max(1, min(self._op_chunk, self._next_memory - drained, self._next_bus_check - drained))

    def on_transfer(self, src: str, dst: str, nbytes: int, start_ns: int, duration_ns: int) -> None:
        """Called through ``backends.base.report_transfer`` for each host<->device copy."""
        row = (next(self._seq), str(src), str(dst), int(nbytes), int(start_ns), int(duration_ns),
               _get_ident(), self._step)
        self._xfer_buf.append(row)
        bus = self._bus
        if bus is not None and bus.has_subscribers(TOPIC_TRANSFER):
            bus.publish(TOPIC_TRANSFER, dict(zip(TRANSFERS_SCHEMA, row, strict=True)))

    def _register_backend(self, be: Any) -> BackendInfo:
        with self._lock:
            info = self._backends.get(be)
            if info is not None:
                return info
            cls = type(be)
            # the numpy fast path reads .shape/.nbytes/.dtype exactly as the protocol's defaults do
            numpy_native = (getattr(be, "native_type", None) is np.ndarray and cls.shape_of is Backend.shape_of
                            and cls.nbytes_of is Backend.nbytes_of)
            timer = self._open_timer(be) if self.device_timing else None
            info = BackendInfo(len(self._infos), be.name, str(be.device), numpy_native, be.shape_of,
                               be.nbytes_of, be.dtype_of, timer)
            self._infos[info.key] = info
            self._backends[be] = info  # in place: on_op holds this dict's get
            return info

    def _open_timer(self, be: Any) -> Any:
        factory = getattr(be, "device_timer", None)
        if not callable(factory):
            return None
        key = str(be.device)
        if key in self._timers:
            return self._timers[key][1]
        try:
            cm = factory()
            if cm is None:
                return None
            timer = cm.__enter__()
        except Exception as exc:  # a broken timer costs device timing, not the run
            self._warn_timer(be.name, exc)
            return None
        self._timers[key] = (cm, timer)
        return timer

    def _close_timers(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, {}
            # backends keep their info (and so their interned signatures) across restarts,
            # except those whose timer is closed here: they reopen one when next seen
            for be in [b for b, i in self._backends.items() if i.timer is not None]:
                del self._backends[be]  # in place: on_op holds this dict's get
        for cm, _timer in timers.values():
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)

    def _warn_timer(self, backend: str, exc: Exception) -> None:
        if not self._timer_warned:
            self._timer_warned = True
            warnings.warn(f"telemetry: the device timer of backend '{backend}' failed ({type(exc).__name__}: "
                          f"{exc}); its ops are timed on the host (timing='host')", RuntimeWarning, stacklevel=3)

    def _op_payload(self, sig: tuple, row: Any) -> dict[str, Any]:
        op, key, phase, shapes, dt, nin, nout = sig
        _sid, seq, start, dur, _tok, node, thread, step = row
        info = self._infos[key]
        dt_name, isz = dtype_info(dt)
        flops = self._flops(op, shapes, nout // isz)
        return {"seq": seq, "op": op, "backend": info.name, "device": info.device, "phase": phase,
                "shapes": [list(s) for s in shapes], "dtype": dt_name, "start_ns": start,
                "duration_ns": dur, "timing": "host", "host_ns": dur, "bytes_in": nin,
                "bytes_out": nout, "flops": flops, "node": None if node == NULL else node, "thread": thread,
                "step": None if step == NULL else step}

    # ---- conversion (a chunk at a time) -------------------------------------------
    def _flops(self, op: str, shapes: tuple, out_numel: int) -> int | None:
        rule = self._flop_rules.get(op)
        if rule is None:
            rule = self._flop_rules[op] = flops_rule(op)
        try:
            return int(rule(shapes, out_numel))
        except Exception:  # a custom estimate that fails leaves the cell empty
            return None

    def _convert_ops(self, rows: list[bytes]) -> pl.DataFrame:
        a = np.frombuffer(b"".join(rows), dtype=np.int64).reshape(-1, _OP_WIDTH)
        sid, seq, start, host, tok, node, thread, step = (np.ascontiguousarray(c) for c in a.T)
        n = len(a)
        host_col = pl.Series(host, dtype=pl.Int64)
        duration: pl.Series | list[int] = host_col
        timing: pl.Series | list[str] = pl.repeat("host", n, eager=True)
        timed = np.flatnonzero(tok != NULL)
        if len(timed):
            key, pop = self._sigs.key, self._tokens.pop
            infos = [self._infos[key(s)[1]] for s in sid[timed].tolist()]
            tokens = [pop(t, None) for t in tok[timed].tolist()]  # None: dropped by clear()
            duration, timing = self._resolve_device_times(infos, tokens, timed.tolist(), host.tolist())
        calls = pl.DataFrame({
            "seq": seq, "start_ns": start, "duration_ns": duration, "timing": timing, "host_ns": host_col,
            "node": _nullable(node), "thread": thread, "step": _nullable(step),
        }, schema=_CALL_SCHEMA)
        return pl.concat([calls, self._sigs.columns(sid)], how="horizontal").select(list(OPS_SCHEMA))

    def _resolve_device_times(self, infos: list, tokens: list, rows: list[int],
                              host: list[int]) -> tuple[list[int], list[str]]:
        """Device durations for ``rows`` (their backends' ``infos`` and ``tokens``); host time elsewhere."""
        duration = host
        timing = ["host"] * len(host)
        by_timer: dict[int, tuple[Any, str, list[int], list[Any]]] = {}
        for info, tok, i in zip(infos, tokens, rows, strict=True):
            if tok is None:
                continue
            entry = by_timer.setdefault(id(info.timer), (info.timer, info.name, [], []))
            entry[2].append(i)
            entry[3].append(tok)
        for timer, backend, idx, toks in by_timer.values():
            try:
                elapsed = list(timer.elapsed_ns(toks))
            except Exception as exc:  # the rows keep their host times
                self._warn_timer(backend, exc)
                continue
            for i, ns in zip(idx, elapsed, strict=False):
                if ns is not None:
                    duration[i] = int(ns)
                    timing[i] = "device"
        return duration, timing

    # ---- memory -------------------------------------------------------------------
    def sample_memory(self) -> None:
        """Append one memory sample per started backend (``memory_stats()`` or process RSS)."""
        from ..backends import loaded_backends

        now = _perf_ns()
        cpu_done = False
        for be in loaded_backends():
            stats = getattr(be, "memory_stats", None)
            if not callable(stats):
                continue
            try:
                s = stats() or {}
            except Exception:  # a failing probe loses one sample, not the run
                continue
            # "allocated_bytes"/"peak_bytes" is the protocol; CuPy-pool style "used"/"peak" also work
            alloc = s.get("allocated_bytes", s.get("used"))
            peak = s.get("peak_bytes", s.get("peak"))
            self._mem_buf.append((be.name, str(be.device), now, _int_or_none(alloc), _int_or_none(peak),
                                  "memory_stats"))
            cpu_done = cpu_done or be.name == "cpu"
        if not cpu_done:
            # NumPy has no allocator statistics that are cheap to read: the process's
            # resident set stands in for the cpu backend
            rss, peak = process_memory()
            self._mem_buf.append(("cpu", "cpu", now, rss, peak, "process_rss"))

    # ---- metrics ------------------------------------------------------------------
    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Record metrics (``loss=0.3, accuracy=0.9``) at ``step``.

        Parameters
        ----------
        step : int, optional
            The step these values belong to; omitted, the step after the last one
            logged (0 first). Ops recorded afterwards carry this step.
        **metrics
            Numbers, or single-element tensors / arrays.
        """
        if step is None:
            step = 0 if self._step is None else self._step + 1
        elif isinstance(step, bool) or not isinstance(step, int | np.integer):
            raise TelemetryError(f"log(step=...) expects an int; got {type(step).__name__} {step!r}")
        step = int(step)
        if not -(2**63) < step < 2**63:
            raise TelemetryError(f"log(step=...) expects a step that fits in 64 bits; got {step}")
        now = _perf_ns()
        rows = [(step, name, _to_float(name, value), now) for name, value in metrics.items()]
        self._step = step
        self._step_value = step
        for r in rows:
            self._met_buf.append(r)
        if self._active:
            self.sample_memory()
        bus = self._bus
        if rows and bus is not None and bus.has_subscribers(TOPIC_METRIC):
            for r in rows:
                bus.publish(TOPIC_METRIC, dict(zip(METRICS_SCHEMA, r, strict=True)))

    # ---- Trainer callback protocol ----------------------------------------------------
    def on_fit_start(self, trainer: Any) -> None:
        """Start recording if not already (and stop again in :meth:`on_fit_end`)."""
        if not self._active:
            self.start()
            self._owns_fit = True

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """Log ``epoch`` at the trainer's current step."""
        self.log(step=self._trainer_step(trainer), epoch=epoch)

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any] | None = None) -> None:
        """Log the step's numeric values (loss, lr, scores) at ``step``; position keys are skipped."""
        values = {k: v for k, v in _numeric(logs).items() if k not in _POSITION_KEYS}
        self.log(step=int(step), **values)

    def on_validation_end(self, trainer: Any, epoch: int, metrics: dict[str, Any] | None = None) -> None:
        """Log validation metrics, prefixed ``val_`` unless they already are."""
        vals = {k if k.startswith("val") else f"val_{k}": v for k, v in _numeric(metrics).items()}
        self.log(step=self._trainer_step(trainer), **vals)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Log the epoch's train averages as ``epoch_<name>`` (``val_`` ones came with validation)."""
        vals = {f"epoch_{k}": v for k, v in _numeric(logs).items() if not k.startswith("val")}
        if vals:
            self.log(step=self._trainer_step(trainer), **vals)

    def on_fit_end(self, trainer: Any) -> None:
        if self._owns_fit:
            self._owns_fit = False
            self.stop()

    def _trainer_step(self, trainer: Any) -> int:
        for attr in ("global_step", "step"):
            v = getattr(trainer, attr, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return 0 if self._step is None else self._step


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------

_Tensor: Any = None
#: keys of a Trainer's step logs that say where it is, not how it does
_POSITION_KEYS = frozenset({"epoch", "batch", "batch_size", "global_step", "step"})


def _bind_tensor() -> None:
    global _Tensor
    from ..tensor import Tensor

    _Tensor = Tensor


_bind_tensor()


def _convert(schema: dict[str, pl.DataType]) -> Any:
    names = list(schema)

    def convert(rows: list[tuple]) -> pl.DataFrame:
        cols = zip(*rows, strict=True)
        return pl.DataFrame(dict(zip(names, cols, strict=True)), schema=schema)

    return convert


def _to_float(name: str, value: Any) -> float:
    try:
        if hasattr(value, "item"):
            value = value.item()
        return float(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        msg = (f"log({name}=...) expects a number or a single-element tensor; got "
               f"{type(value).__name__} {value!r:.60}")
        raise TelemetryError(msg) from exc


def _numeric(logs: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (logs or {}).items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float | np.number):
            out[k] = v
        elif hasattr(v, "numel") and v.numel() == 1:
            out[k] = v
        elif isinstance(v, np.ndarray) and v.size == 1:
            out[k] = v
    return out


def _nullable(col: np.ndarray) -> pl.Series:
    """An Int64 column of a packed row field, null where it holds :data:`NULL`."""
    s = pl.Series(col, dtype=pl.Int64)
    missing = col == NULL
    return s.scatter(np.flatnonzero(missing), None) if missing.any() else s


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def process_memory() -> tuple[int | None, int | None]:
    """This process's resident set size and its peak, in bytes (None where the OS does not say)."""
    rss = peak = None
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024
    except (ImportError, OSError, ValueError):
        pass
    if rss is not None and peak is not None and rss > peak:
        peak = rss  # the kernel updates the high-water mark lazily
    return rss, peak


try:
    import os as _os

    _PAGE_SIZE = _os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):
    _PAGE_SIZE = 4096
