"""Columnar event buffers: cheap appends, bounded memory, Polars frames on read.

The hot path appends one row per event to a staging deque, without a lock
(``deque.append`` is atomic): a tuple, or for a ``packed`` buffer the row's values
packed into one ``bytes`` object, which the garbage collector does not track (a
tuple stays tracked until a collection looks at it). When the stage holds
``chunk_rows`` rows, or when the frame is read, the rows are drained under a lock and
converted column by column into one Polars chunk. ``flush_soon()`` hands that
conversion to a converter thread instead, so the thread that records keeps running
(it overlaps the recording thread's GIL-free work: BLAS, device waits). Chunks are either kept in memory,
as a ring that drops the oldest rows beyond ``max_rows``, or written to Parquet files
in a spill directory so that a run of any length holds at most one chunk in memory.
"""

from __future__ import annotations

import struct
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["EventBuffer", "int64_row"]


def int64_row(n: int) -> struct.Struct:
    """The :class:`struct.Struct` of ``n`` native signed 64-bit ints, no padding.

    ``l`` where a C long has 64 bits (its packing reads multi-digit ints directly;
    ``q`` goes through a generic byte conversion for them, 4x the work), else ``q``.
    """
    return struct.Struct(f"{int(n)}{'l' if struct.calcsize('l') == 8 else 'q'}")


class EventBuffer:
    """One table of events (ops, transfers, memory or metrics).

    Parameters
    ----------
    name : str
        Table name; spilled chunk files are ``<name>-<n>.parquet``.
    schema : dict
        Column name -> Polars dtype of the frames this buffer produces.
    convert : callable
        ``convert(rows) -> pl.DataFrame``: turns a list of staged rows into one chunk
        (tuples, or with ``packed`` the bytes of each row).
    chunk_rows : int
        Rows staged before they are converted into a chunk.
    max_rows : int or None
        In memory, keep at most this many of the newest rows (None: unbounded).
        Ignored when ``spill_dir`` is set: every row is kept, on disk.
    spill_dir : path or None
        Write each chunk to a Parquet file here instead of keeping it in memory.
    sort_by : str or None
        Column the frame is sorted by when read (rows from several threads may be
        staged slightly out of order).
    packed : int or None
        Rows are this many signed 64-bit ints, packed: the hot path appends
        ``buf.pack(*values)`` to ``buf.stage``; a value that is not an int in range
        fails in ``pack``, before anything is staged.
    """

    def __init__(
        self,
        name: str,
        schema: dict[str, pl.DataType],
        convert: Callable[[list[Any]], pl.DataFrame],
        *,
        chunk_rows: int = 8192,
        max_rows: int | None = None,
        spill_dir: str | Path | None = None,
        sort_by: str | None = None,
        packed: int | None = None,
    ) -> None:
        self.name = name
        self.schema = schema
        self._convert = convert
        self.chunk_rows = max(1, int(chunk_rows))
        self.max_rows = None if max_rows is None else max(1, int(max_rows))
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self.sort_by = sort_by
        self.stage: deque[Any] = deque()
        #: ``pack(*values) -> bytes`` of a packed buffer's rows (native int64s, no padding)
        self.pack: Callable[..., bytes] | None = None if packed is None else int64_row(packed).pack
        self._chunks: deque[pl.DataFrame] = deque()
        self._rows_in_memory = 0
        self._files: list[Path] = []
        self._rows_on_disk = 0
        self.dropped = 0
        #: rows ever taken off the stage (converted), including dropped ones
        self.drained = 0
        self._lock = threading.RLock()
        self._version = 0
        self._cache: pl.DataFrame | None = None
        self._cache_version = -1
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        self._closing = False
        #: called (on the converter thread) after each background flush
        self.on_flushed: Callable[[], None] | None = None
        #: the exception a background conversion raised (re-raised by the next flush or read)
        self.error: BaseException | None = None

    # ---- writing ------------------------------------------------------------------
    def append(self, row: tuple) -> None:
        """Stage one row; converts a chunk when the stage is full."""
        stage = self.stage
        stage.append(row if self.pack is None else self.pack(*row))
        if len(stage) >= self.chunk_rows:
            self.flush()

    @property
    def staged(self) -> int:
        """Rows staged, not yet converted."""
        return len(self.stage)

    def flush(self) -> None:
        """Convert every staged row into a chunk (kept, trimmed or spilled).

        If the conversion fails, the rows go back on the stage and the error propagates:
        nothing recorded is lost.
        """
        with self._lock:
            if self.error is not None:
                err, self.error = self.error, None
                raise RuntimeError(f"telemetry: converting staged '{self.name}' rows failed on the converter "
                                   f"thread ({type(err).__name__}: {err}); the rows are still staged") from err
            stage = self.stage
            n = len(stage)
            if n == 0:
                return
            # popleft is atomic: rows appended by other threads meanwhile stay staged
            pop = stage.popleft
            rows = [pop() for _ in range(n)]
            try:
                chunk = self._convert(rows)
            except BaseException:
                stage.extendleft(reversed(rows))
                raise
            self.drained += n
            self._version += 1
            if self.spill_dir is not None:
                self._spill(chunk)
                return
            self._chunks.append(chunk)
            self._rows_in_memory += chunk.height
            self._trim()

    def flush_soon(self) -> None:
        """Convert the staged rows on the converter thread (started on first use); returns at once."""
        worker = self._worker
        if worker is None or not worker.is_alive():
            with self._lock:
                if self._worker is None or not self._worker.is_alive():
                    self._closing = False
                    self._worker = threading.Thread(target=self._work, name=f"spiraltorch-telemetry-{self.name}",
                                                    daemon=True)
                    self._worker.start()
        self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self.flush()
            except Exception as exc:  # kept for the recording side to re-raise on its next flush or read
                self.error = exc
            callback = self.on_flushed
            if callback is not None:
                callback()

    def close_worker(self, timeout: float = 10.0) -> None:
        """Stop the converter thread after the conversion it is doing (staged rows stay staged)."""
        worker = self._worker
        if worker is None:
            return
        self._closing = True
        self._wake.set()
        worker.join(timeout)
        self._worker = None

    def _spill(self, chunk: pl.DataFrame) -> None:
        folder = self.spill_dir
        if folder is None:
            raise RuntimeError("spilling needs a spill_dir")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}-{len(self._files):06d}.parquet"
        chunk.write_parquet(path)
        self._files.append(path)
        self._rows_on_disk += chunk.height

    def _trim(self) -> None:
        cap = self.max_rows
        if cap is None:
            return
        chunks = self._chunks
        while self._rows_in_memory > cap and chunks:
            excess = self._rows_in_memory - cap
            first = chunks[0]
            if first.height <= excess:
                chunks.popleft()
                self._rows_in_memory -= first.height
                self.dropped += first.height
            else:
                chunks[0] = first.slice(excess)
                self._rows_in_memory -= excess
                self.dropped += excess

    def clear(self) -> None:
        """Forget every row (spilled files are deleted)."""
        with self._lock:
            self.stage.clear()
            self._chunks.clear()
            self._rows_in_memory = 0
            for path in self._files:
                path.unlink(missing_ok=True)
            self._files.clear()
            self._rows_on_disk = 0
            self.dropped = 0
            self._version += 1

    # ---- reading ------------------------------------------------------------------
    @property
    def rows_in_memory(self) -> int:
        """Rows held in memory as converted chunks (staged rows not counted).

        Read under the lock: a conversion adds its chunk before trimming the ring, and
        the count in between may exceed ``max_rows``.
        """
        with self._lock:
            return self._rows_in_memory

    @property
    def chunks_in_memory(self) -> int:
        with self._lock:  # as rows_in_memory: not between a chunk's arrival and the trim
            return len(self._chunks)

    @property
    def spill_files(self) -> list[Path]:
        """Parquet files written to the spill directory so far."""
        return list(self._files)

    def __len__(self) -> int:
        with self._lock:  # a conversion in progress holds rows that are neither staged nor stored
            return self._rows_in_memory + self._rows_on_disk + len(self.stage)

    def frame(self) -> pl.DataFrame:
        """Everything recorded (minus dropped rows) as one DataFrame; cached until new rows come."""
        self.flush()
        with self._lock:
            if self._cache is not None and self._cache_version == self._version:
                return self._cache
            parts: list[pl.DataFrame] = []
            if self._files:
                parts.append(pl.read_parquet(self._files))
            parts.extend(self._chunks)
            if parts:
                df = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
                key = self.sort_by
                if key is not None and not df[key].is_sorted():
                    df = df.sort(key, maintain_order=True)
            else:
                df = pl.DataFrame(schema=self.schema)
            self._cache = df
            self._cache_version = self._version
            return df

    def since(self, cursor: tuple[int, int] = (0, 0)) -> tuple[pl.DataFrame, tuple[int, int]]:
        """The rows converted after ``cursor``, in the order they were converted, and the next cursor.

        ``cursor`` is ``(0, 0)`` at first, then what the previous call returned: a reader
        polling a growing table reads each row once, at a cost proportional to the new
        rows only. Rows the ring dropped before they were read are skipped; after
        ``clear()`` reading goes on with the rows recorded since.
        """
        self.flush()
        seen, files_seen = cursor
        with self._lock:
            files = self._files
            if len(files) < files_seen:  # cleared meanwhile
                files_seen = 0
            new_files = list(files[files_seen:])
            drained = self.drained
            # converted since the last read and still in memory: the newest rows
            want = min(max(drained - seen, 0), self._rows_in_memory)
            parts: list[pl.DataFrame] = []
            if want and self.spill_dir is None:
                for chunk in reversed(self._chunks):
                    if chunk.height >= want:
                        parts.append(chunk.slice(chunk.height - want))
                        break
                    parts.append(chunk)
                    want -= chunk.height
                parts.reverse()
            cursor = (drained, len(files))
        if new_files:
            parts.insert(0, pl.read_parquet(new_files))
        if not parts:
            return pl.DataFrame(schema=self.schema), cursor
        return (pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]), cursor

    def lazy(self) -> pl.LazyFrame:
        """A LazyFrame over the spilled files and the in-memory rows (reads nothing yet)."""
        self.flush()
        with self._lock:
            parts: list[pl.LazyFrame] = []
            if self._files:
                parts.append(pl.scan_parquet(self._files))
            parts.extend(c.lazy() for c in self._chunks)
            if not parts:
                return pl.DataFrame(schema=self.schema).lazy()
            return pl.concat(parts, how="vertical")

