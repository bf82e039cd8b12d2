"""rec.tail(table): reading only the rows a telemetry table gained since the last read."""

from __future__ import annotations

import polars as pl
import pytest

import spiraltorch_nb as st


def run_ops(n: int) -> None:
    x = st.ones(2, 2)
    for _ in range(n):
        x = x + 1.0


def seqs(frame: pl.DataFrame) -> list[int]:
    return frame["seq"].to_list()


def test_reads_each_row_once_in_order() -> None:
    rec = st.telemetry.record(chunk_rows=16)
    tail = rec.tail("ops")
    assert tail.read().height == 0 and tail.read().columns == list(st.telemetry.OPS_SCHEMA)
    with rec:
        run_ops(40)
        first = tail.read()
        run_ops(7)
        second = tail.read()
        assert tail.read().height == 0
    assert first.height == 40 and second.height == 7
    assert seqs(pl.concat([first, second])) == seqs(rec.ops)
    assert tail.rows_read == 47


def test_rows_dropped_by_the_ring_before_a_read_are_skipped() -> None:
    rec = st.telemetry.record(max_events=32, chunk_rows=8)
    tail = rec.tail("ops")
    with rec:
        run_ops(10)
        assert tail.read().height == 10
        run_ops(100)  # more than the ring holds: the oldest new rows are gone before this read
        late = tail.read()
        run_ops(5)
        last = tail.read()
    assert rec.dropped["ops"] > 0
    # the late read got the newest rows the ring still held; the ring now holds 27 of them and the last 5
    assert late.height == 32 and last.height == 5
    assert seqs(late)[-27:] + seqs(last) == seqs(rec.ops)


def test_reading_continues_after_clear() -> None:
    rec = st.telemetry.record(chunk_rows=8)
    tail = rec.tail("ops")
    with rec:
        run_ops(20)
        tail.read()
        rec.clear()
        run_ops(3)
        after = tail.read()
    assert after.height == 3 and seqs(after) == seqs(rec.ops)


def test_spilled_tables_are_read_file_by_file(tmp_path) -> None:
    rec = st.telemetry.record(spill_dir=tmp_path, chunk_rows=16)
    tail = rec.tail("ops")
    with rec:
        run_ops(50)
        first = tail.read()
        run_ops(20)
        second = tail.read()
    assert first.height == 50 and second.height == 20
    assert seqs(pl.concat([first, second])) == seqs(rec.ops)


def test_a_loaded_export_is_read_through_its_frames(tmp_path) -> None:
    with st.telemetry.record() as rec:
        run_ops(12)
    rec.to_parquet(tmp_path)
    tail = st.telemetry.load(tmp_path).tail("ops")
    assert isinstance(tail, st.telemetry.TableTail)
    assert tail.read().height == 12 and tail.read().height == 0


def test_unknown_table() -> None:
    with pytest.raises(st.telemetry.TelemetryError, match="one of"):
        st.telemetry.record().tail("flops")
