"""Per-op device timing for telemetry, from WebGPU timestamp queries.

While a :class:`PassTimer` is active, every compute pass the queue opens writes a
timestamp at its beginning and end into a query set (allocated in chunks and reused
after each resolve), and :meth:`PassTimer.mark` closes the open pass, so each op's
dispatches land in passes of their own. A token is the range of pass indices opened
since the previous mark. :meth:`PassTimer.elapsed_ns` submits pending work, resolves
every written query into one buffer and reads it back once.

These readbacks bypass ``CommandQueue.read``: they are not user data, so they are
neither counted in ``backend.stats["downloads"]`` nor reported as transfers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...errors import DeviceError
from .queue import CommandQueue

__all__ = ["PassTimer", "timed_passes"]

#: queries per query set (two per pass); a resolve offset must be a multiple of 256 bytes
CHUNK_QUERIES = 256


def _timestamp_period(queue: Any) -> float:
    """Nanoseconds per timestamp tick (1.0 where wgpu-native cannot say)."""
    try:
        from wgpu.backends.wgpu_native._ffi import lib

        period = float(lib.wgpuQueueGetTimestampPeriod(queue._internal))
    except Exception:  # an older wgpu-py without the hook: WebGPU timestamps are ns
        return 1.0
    return period if period > 0 else 1.0


class PassTimer:
    """The ``device_timer`` protocol's timer for the wgpu backend (see the module docstring)."""

    def __init__(self, device: Any, queue: CommandQueue) -> None:
        self._device = device
        self._queue = queue
        self._period = _timestamp_period(queue.raw_queue)
        self._sets: list[Any] = []
        self._used = 0  # passes written since the last resolve
        self._base = 0  # global index of the first of those passes
        self._last = 0  # global pass index at the previous mark
        self._resolved: dict[int, int | None] = {}
        self._buffer: Any = None

    def next_pass(self) -> dict[str, Any]:
        """The ``timestamp_writes`` of the next compute pass (called under the queue lock)."""
        per = CHUNK_QUERIES // 2
        chunk, slot = divmod(self._used, per)
        if chunk == len(self._sets):
            self._sets.append(self._device.create_query_set(type="timestamp", count=CHUNK_QUERIES))
        self._used += 1
        return {"query_set": self._sets[chunk], "beginning_of_pass_write_index": 2 * slot,
                "end_of_pass_write_index": 2 * slot + 1}

    def mark(self) -> tuple[int, int]:
        """Close the open pass; the token is the range of passes opened since the last mark."""
        q = self._queue
        with q.lock:
            q.end_pass()
            end = self._base + self._used
            token = (self._last, end)
            self._last = end
        return token

    def _resolve(self) -> None:
        """Read every written timestamp back (one readback) and free the query sets for reuse."""
        import wgpu

        q = self._queue
        used = self._used
        if not used:
            return
        q.flush()
        nq = 2 * used
        size = -(-nq // CHUNK_QUERIES) * CHUNK_QUERIES * 8
        if self._buffer is None or self._buffer.size < size:
            self._buffer = self._device.create_buffer(
                size=size, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
        enc = self._device.create_command_encoder()
        for i, qs in enumerate(self._sets):
            n = min(CHUNK_QUERIES, nq - i * CHUNK_QUERIES)
            if n <= 0:
                break
            enc.resolve_query_set(qs, 0, n, self._buffer, i * CHUNK_QUERIES * 8)
        raw = q.raw_queue
        raw.submit([enc.finish()])
        ticks = np.frombuffer(raw.read_buffer(self._buffer, 0, nq * 8), dtype=np.uint64).reshape(-1, 2)
        begin, end = ticks[:, 0], ticks[:, 1]
        # a wrapped pair (end before begin) is unknown, not a huge duration
        valid = end >= begin
        spans = np.where(valid, end - np.minimum(begin, end), 0).astype(np.float64) * self._period
        for k in range(used):
            self._resolved[self._base + k] = int(round(spans[k])) if valid[k] else None
        self._base += used
        self._used = 0

    def elapsed_ns(self, tokens: list[tuple[int, int]]) -> list[int | None]:
        """Device nanoseconds per token; None for a token without timed passes."""
        with self._queue.lock:
            if any(b > self._base for _a, b in tokens):
                self._resolve()
            out: list[int | None] = []
            for a, b in tokens:
                spans = [self._resolved.pop(p, None) for p in range(a, b)]
                out.append(sum(spans) if spans and None not in spans else None)  # type: ignore[arg-type]
            return out


@contextmanager
def timed_passes(device: Any, queue: CommandQueue) -> Iterator[PassTimer]:
    """Time every compute pass of ``queue`` while the block runs.

    Raises
    ------
    DeviceError
        When another timer is already active on this queue (one recorder with device
        timing at a time; the recorder then falls back to host timing).
    """
    timer = PassTimer(device, queue)
    with queue.lock:
        if queue.timer is not None:
            raise DeviceError("a wgpu device timer is already active (another telemetry recorder is timing "
                              "this device); stop it first, or record with device_timing=False",
                              devices=("wgpu",))
        queue.end_pass()  # the open pass has no timestamps: later dispatches start a timed one
        queue.timer = timer
    try:
        yield timer
    finally:
        with queue.lock:
            queue.end_pass()
            if queue.timer is timer:
                queue.timer = None
