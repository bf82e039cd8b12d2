"""Recording work into one command encoder and submitting it in batches.

Each op becomes one or more compute dispatches recorded into the current encoder (in a
single open compute pass while possible). The batch is submitted when

* something reads data back to the host (:meth:`CommandQueue.read`),
* ``max_ops`` dispatches are queued, or the parameter arena is full,
* :meth:`CommandQueue.flush` is called (``backend.synchronize()``).

With ``submit_every_op = True`` every dispatch is submitted on its own (for
benchmarks that measure what batching saves).

Parameters (shapes, strides, scalars) of every dispatch go into one host-side arena
that is uploaded with a single ``write_buffer`` just before the submit; each dispatch
binds its window of it with a dynamic offset, so bind groups depend only on the data
buffers and are cached.

Ordering: WebGPU executes a queue's operations in order, but ``queue.write_buffer``
runs before command buffers that are still being recorded. Uploads therefore go
through ``write_buffer`` only when nothing is pending; otherwise the data is staged in
a fresh buffer and copied by a command recorded in the encoder, so it lands exactly
where the program order puts it.
"""

from __future__ import annotations

import functools
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..base import report_transfer
from .pipelines import PARAMS_BYTES, Pipeline

__all__ = ["CommandQueue"]

_PARAM_WORDS = PARAMS_BYTES // 4


def _locked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a method under the queue's lock: a training loop in a background thread and
    the notebook's thread may both record work, and the encoder is shared."""
    @functools.wraps(fn)
    def run(self: CommandQueue, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(self, *args, **kwargs)
    return run


class CommandQueue:
    """The backend's recorder of GPU work (see the module docstring)."""

    def __init__(self, device: Any, limits: dict[str, int], stats: dict[str, int], *, max_ops: int = 128,
                 arena_bytes: int = 1 << 18, bind_group_cache: int = 4096) -> None:
        import wgpu

        self._wgpu = wgpu
        self._device = device
        self._queue = device.queue
        self.stats = stats
        self.max_ops = max_ops
        self.submit_every_op = False
        align = max(int(limits.get("min-storage-buffer-offset-alignment", 256)), 4)
        self._stride_words = max(-(-PARAMS_BYTES // align) * align, PARAMS_BYTES) // 4
        self._arena_slots = max(arena_bytes // (self._stride_words * 4) - 1, 1)
        size = (self._arena_slots + 1) * self._stride_words * 4
        self._arena = device.create_buffer(size=size, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST)
        self._host = bytearray(size)
        self._packers: dict[int, struct.Struct] = {}
        self._slot = 0
        self._encoder: Any = None
        self._pass: Any = None
        self._last_pipeline: Any = None
        self._pending = 0
        self._bind_groups: OrderedDict[tuple, Any] = OrderedDict()
        self._bind_group_cap = bind_group_cache
        self._keepalive: list[Any] = []
        self._lock = threading.RLock()
        #: the active telemetry timer (``timing.PassTimer``); None keeps passes untimed
        self.timer: Any = None

    # ---- recording ---------------------------------------------------------------
    def _begin_pass(self) -> Any:
        if self._encoder is None:
            self._encoder = self._device.create_command_encoder()
        if self._pass is None:
            if self.timer is None:
                self._pass = self._encoder.begin_compute_pass()
            else:
                self._pass = self._encoder.begin_compute_pass(timestamp_writes=self.timer.next_pass())
            self._last_pipeline = None
        return self._pass

    def _end_pass(self) -> None:
        if self._pass is not None:
            self._pass.end()
            self._pass = None

    @_locked
    def end_pass(self) -> None:
        """Close the open compute pass, so the next dispatch starts a pass of its own."""
        self._end_pass()

    @property
    def lock(self) -> threading.RLock:
        """The lock that serializes recording and submitting."""
        return self._lock

    @property
    def raw_queue(self) -> Any:
        """The wgpu ``GPUQueue`` (for work that must bypass batching and transfer accounting)."""
        return self._queue

    def _bind_group(self, pipe: Pipeline, buffers: tuple[Any, ...]) -> Any:
        key = (pipe.signature, *map(id, buffers))
        bg = self._bind_groups.get(key)
        if bg is not None:
            self._bind_groups.move_to_end(key)
            return bg
        entries = [{"binding": 0, "resource": {"buffer": self._arena, "offset": 0, "size": PARAMS_BYTES}}]
        for i, buf in enumerate(buffers):
            entries.append({"binding": i + 1, "resource": {"buffer": buf, "offset": 0, "size": buf.size}})
        bg = self._device.create_bind_group(layout=pipe.layout, entries=entries)
        # the key holds ids: keep the buffers alive as long as the entry, so ids stay unique
        self._bind_groups[key] = (bg, buffers)
        if len(self._bind_groups) > self._bind_group_cap:
            self._bind_groups.popitem(last=False)
        return self._bind_groups[key]

    def forget_bind_groups(self) -> None:
        """Drop cached bind groups (after buffers were destroyed)."""
        self._bind_groups.clear()

    @_locked
    def dispatch(self, pipe: Pipeline, buffers: tuple[Any, ...], params: list[int],
                 groups: tuple[int, int, int]) -> None:
        """Record one dispatch of ``pipe`` over ``groups`` workgroups with ``params`` (u32 words)."""
        if len(params) > _PARAM_WORDS:
            raise RuntimeError(f"a dispatch needs {len(params)} parameter words; the window holds {_PARAM_WORDS}")
        if self._slot >= self._arena_slots:
            self.flush()
        slot = self._slot
        self._slot += 1
        if params:
            n = len(params)
            packer = self._packers.get(n)
            if packer is None:
                packer = self._packers[n] = struct.Struct(f"<{n}I")
            packer.pack_into(self._host, slot * self._stride_words * 4, *params)
        bg = self._bind_group(pipe, buffers)[0]
        cp = self._begin_pass()
        if self._last_pipeline is not pipe.pipeline:
            cp.set_pipeline(pipe.pipeline)
            self._last_pipeline = pipe.pipeline
        cp.set_bind_group(0, bg, [slot * self._stride_words * 4])
        cp.dispatch_workgroups(*groups)
        self.stats["dispatches"] += 1
        self._pending += 1
        if self.submit_every_op or self._pending >= self.max_ops:
            self.flush()

    @_locked
    def copy(self, src: Any, src_offset: int, dst: Any, dst_offset: int, nbytes: int) -> None:
        """Record a buffer-to-buffer copy (offsets and size multiples of 4)."""
        self._end_pass()
        if self._encoder is None:
            self._encoder = self._device.create_command_encoder()
        self._encoder.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, nbytes)
        self._pending += 1

    # ---- submitting ------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Commands recorded but not yet submitted."""
        return self._pending

    @_locked
    def flush(self) -> None:
        """Submit everything recorded so far (no wait)."""
        if self._encoder is None:
            return
        self._end_pass()
        if self._slot:
            used = self._slot * self._stride_words * 4
            self._queue.write_buffer(self._arena, 0, memoryview(self._host)[:used])
        self._queue.submit([self._encoder.finish()])
        self.stats["submits"] += 1
        self._encoder = None
        self._pending = 0
        self._slot = 0
        self._keepalive.clear()

    @_locked
    def wait(self) -> None:
        """Submit and block until the GPU has finished everything submitted."""
        self.flush()
        # wgpu-py 0.32's on_submitted_work_done_sync fails on a callback signature
        # mismatch; a blocking device poll waits for the same thing. Where that private
        # hook is missing, mapping a few bytes waits too, since the queue runs in order.
        poll = getattr(self._device, "_poll_wait", None)
        if poll is not None:
            poll()
        else:
            self._queue.read_buffer(self._arena, 0, 4)
            self.stats["submits"] += 1

    # ---- host transfers ------------------------------------------------------------------
    @_locked
    def upload(self, dst: Any, dst_offset: int, data: np.ndarray) -> None:
        """Copy host bytes into ``dst`` at ``dst_offset``, in program order (see module docstring)."""
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        if raw.size % 4:
            raw = np.concatenate([raw, np.zeros(4 - raw.size % 4, np.uint8)])
        t0 = time.perf_counter_ns()
        if self._encoder is None:
            self._queue.write_buffer(dst, dst_offset, raw)
        else:
            wgpu = self._wgpu
            staging = self._device.create_buffer(size=raw.size, usage=wgpu.BufferUsage.COPY_SRC,
                                                 mapped_at_creation=True)
            staging.write_mapped(raw)
            staging.unmap()
            self.copy(staging, 0, dst, dst_offset, raw.size)
            self._keepalive.append(staging)
        self.stats["uploads"] += 1
        report_transfer("host", "wgpu", int(data.nbytes), t0, time.perf_counter_ns() - t0)

    @_locked
    def read(self, src: Any, offset: int, nbytes: int) -> memoryview:
        """Submit pending work, then read ``nbytes`` from ``src`` (offset/size rounded to 4)."""
        t0 = time.perf_counter_ns()
        self.flush()
        start = offset // 4 * 4
        end = -(-(offset + nbytes) // 4) * 4
        data = self._queue.read_buffer(src, start, end - start)
        self.stats["submits"] += 1  # read_buffer submits its own copy
        self.stats["downloads"] += 1
        report_transfer("wgpu", "host", int(nbytes), t0, time.perf_counter_ns() - t0)
        return memoryview(data)[offset - start: offset - start + nbytes]
