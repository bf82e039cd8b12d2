"""How widgets find and read a telemetry Recorder: the recorder of a run, and only the rows a table gained.

A dashboard polls a recorder's op and memory tables once a second for the whole run.
Re-reading the table each time costs ``O(rows)`` per poll, and a long run holds up to a
million op rows, so :class:`TableTail` keeps a cursor instead: each read returns only
the rows converted since the previous read, taken from the newest chunks of the
table's buffer (or the newest spilled files). A recorder without those buffers (any
other :class:`~spiraltorch_nb.telemetry.TelemetryFrames`) is read through ``scan()``
with a filter on the table's ordering column.

>>> import spiraltorch_nb as st
>>> rec = st.telemetry.record()
>>> tail = TableTail(rec, "metrics")
>>> rec.log(step=0, loss=1.0)
>>> tail.read().height, tail.read().height
(1, 0)
>>> rec.log(step=1, loss=0.5, accuracy=0.7)
>>> tail.read()["name"].to_list()
['loss', 'accuracy']
"""

from __future__ import annotations

from typing import Any

import polars as pl

__all__ = ["find_recorder", "TableTail"]

#: the Recorder attribute holding each table's EventBuffer
_BUFFERS = {"ops": "_ops_buf", "transfers": "_xfer_buf", "memory": "_mem_buf", "metrics": "_met_buf"}
#: the column each table grows along (used when the buffers cannot be read directly)
_ORDER = {"ops": "seq", "transfers": "seq", "memory": "time_ns", "metrics": "time_ns"}


def find_recorder(owner: Any) -> Any:
    """The telemetry Recorder attached to a run handle, a Trainer or its callbacks, if any."""
    from ..telemetry import Recorder

    if isinstance(owner, Recorder):
        return owner
    for obj in (owner, getattr(owner, "trainer", None)):
        if obj is None:
            continue
        for attr in ("recorder", "telemetry"):
            value = getattr(obj, attr, None)
            if isinstance(value, Recorder):
                return value
        for cb in getattr(obj, "callbacks", None) or []:
            cb = getattr(cb, "target", cb)  # a CallbackAdapter around a plain object
            if isinstance(cb, Recorder):
                return cb
    return None


def _readable(buf: Any) -> bool:
    return all(hasattr(buf, a) for a in ("flush", "drained", "_lock", "_chunks", "_files", "_rows_in_memory"))


class TableTail:
    """Reads the rows one recorder table gained since the previous read.

    Rows are returned in the order the recorder converted them. Rows the recorder
    dropped (its ``max_events`` ring) before they were read are skipped; after
    ``rec.clear()`` reading continues with the rows recorded since.

    Parameters
    ----------
    recorder : Recorder
    table : {"ops", "transfers", "memory", "metrics"}
    """

    def __init__(self, recorder: Any, table: str) -> None:
        if table not in _BUFFERS:
            raise ValueError(f"TableTail reads one of {sorted(_BUFFERS)}; got {table!r}")
        self.recorder = recorder
        self.table = table
        buf = getattr(recorder, _BUFFERS[table], None)
        self._buf = buf if _readable(buf) else None
        self._seen = 0          # rows converted before the last read (dropped ones included)
        self._files_seen = 0    # spilled files already read
        self._last_key: Any = None  # the scan fallback: the largest ordering value read
        #: rows returned so far (what a poll costs is proportional to the rows it reads)
        self.rows_read = 0

    def read(self) -> pl.DataFrame:
        """The new rows (an empty frame with the table's columns when there are none)."""
        buf = self._buf
        frame = self._read_buffer(buf) if buf is not None else self._read_scan()
        self.rows_read += frame.height
        return frame

    def _read_buffer(self, buf: Any) -> pl.DataFrame:
        buf.flush()  # staged rows become a chunk (what reading any frame of the recorder does)
        with buf._lock:
            files = buf._files
            if len(files) < self._files_seen:  # cleared meanwhile
                self._files_seen = 0
            new_files = list(files[self._files_seen:])
            self._files_seen = len(files)
            drained = buf.drained
            # rows converted since the last read that are still in memory: the newest ones
            want = min(max(drained - self._seen, 0), buf._rows_in_memory)
            self._seen = drained
            parts: list[pl.DataFrame] = []
            if want and not buf.spill_dir:
                for chunk in reversed(buf._chunks):
                    if chunk.height >= want:
                        parts.append(chunk.slice(chunk.height - want))
                        break
                    parts.append(chunk)
                    want -= chunk.height
                parts.reverse()
        if new_files:
            parts.insert(0, pl.read_parquet(new_files))
        if not parts:
            return pl.DataFrame(schema=buf.schema)
        return pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]

    def _read_scan(self) -> pl.DataFrame:
        key = _ORDER[self.table]
        lazy = self.recorder.scan(self.table)
        if self._last_key is not None:
            lazy = lazy.filter(pl.col(key) > self._last_key)
        frame = lazy.collect()
        if frame.height:
            self._last_key = frame[key].max()
        return frame
