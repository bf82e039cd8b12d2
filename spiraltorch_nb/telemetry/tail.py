"""Reading only what a telemetry table gained: live views that poll a long run.

A dashboard polls a recorder's tables about once a second for the whole run. Reading
the whole table each time costs ``O(rows)`` per poll, and a long run holds up to a
million op rows, so a :class:`TableTail` keeps a cursor: each :meth:`~TableTail.read`
returns only the rows added since the previous one. On a :class:`Recorder` the rows come
straight from its newest converted chunks (or newest spilled files); on any other
:class:`~spiraltorch_nb.telemetry.TelemetryFrames` (a loaded export) the table is
filtered on its ordering column.

>>> import spiraltorch_nb as st
>>> rec = st.telemetry.record()
>>> tail = rec.tail("metrics")
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

from .frames import SCHEMAS, TelemetryError

__all__ = ["TableTail"]

#: the column each table grows along (for sources read through their frames)
_ORDER = {"ops": "seq", "transfers": "seq", "memory": "time_ns", "metrics": "time_ns"}


class TableTail:
    """Reads the rows one telemetry table gained since the previous read.

    Build it with ``source.tail(table)``. Rows come in the order they were recorded;
    rows a recorder dropped (its ``max_events`` ring) before they were read are
    skipped, and after ``rec.clear()`` reading goes on with the rows recorded since.

    Parameters
    ----------
    source : TelemetryFrames
        A Recorder (read through ``buffer``) or any other holder of the four tables.
    table : {"ops", "transfers", "memory", "metrics"}
    buffer : EventBuffer, optional
        The recorder's buffer of that table.
    """

    def __init__(self, source: Any, table: str, buffer: Any = None) -> None:
        if table not in SCHEMAS:
            raise TelemetryError(f"tail() reads one of {sorted(SCHEMAS)}; got {table!r}")
        self.source = source
        self.table = table
        self._buffer = buffer
        self._cursor: tuple[int, int] = (0, 0)
        self._last_key: Any = None
        #: rows returned so far (a poll costs in proportion to the rows it reads)
        self.rows_read = 0

    def read(self) -> pl.DataFrame:
        """The new rows (an empty frame with the table's columns when there are none)."""
        if self._buffer is not None:
            frame, self._cursor = self._buffer.since(self._cursor)
        else:
            frame = getattr(self.source, self.table)
            if self._last_key is not None:
                frame = frame.filter(pl.col(_ORDER[self.table]) > self._last_key)
            if frame.height:
                self._last_key = frame[_ORDER[self.table]].max()
        self.rows_read += frame.height
        return frame
