"""rec.summary() and telemetry.compare(): exact counts, shares summing to 1, throughput."""

from __future__ import annotations

import polars as pl
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.telemetry import COMPARE_SCHEMA, SUMMARY_SCHEMA, TelemetryError


def _run(n, size=32):
    x = st.ones(size, size)
    with st.telemetry.record() as rec:
        for _ in range(n):
            y = x @ x
            y = y + 1.0
            y.relu()
    return rec


def test_summary_counts_totals_and_shares():
    rec = _run(4)
    s = rec.summary()
    assert s.columns == ["op", "backend", *SUMMARY_SCHEMA]
    assert dict(zip(s["op"], s["count"], strict=True)) == {"matmul": 4, "add": 4, "relu": 4}
    assert s["share"].sum() == pytest.approx(1.0)
    ops = rec.ops
    for row in s.iter_rows(named=True):
        d = ops.filter(op=row["op"])["duration_ns"]
        assert row["total_ns"] == d.sum()
        assert row["mean_ns"] == pytest.approx(d.mean())
        assert row["p50_ns"] == pytest.approx(d.quantile(0.5, "linear"))
        assert row["p95_ns"] == pytest.approx(d.quantile(0.95, "linear"))
    mm = s.filter(op="matmul").row(0, named=True)
    assert mm["flops"] == 4 * 2 * 32**3
    assert mm["gflops"] == pytest.approx(mm["flops"] / mm["total_ns"])
    assert mm["bytes"] == 4 * 3 * 32 * 32 * 4
    assert s["total_ns"].is_sorted(descending=True)


def test_summary_by_phase_and_grouping():
    x = st.ones(4, 4, requires_grad=True)
    with st.telemetry.record() as rec:
        (x @ x).sum().backward()
    fwd = rec.summary(phase="forward")
    assert sorted(fwd["op"]) == ["matmul", "sum"]
    by_phase = rec.summary(by=("phase",))
    assert dict(zip(by_phase["phase"], by_phase["count"], strict=True)) == {
        "forward": 2, "backward": rec.ops.filter(phase="backward").height}
    assert by_phase["share"].sum() == pytest.approx(1.0)
    with pytest.raises(TelemetryError, match="no column"):
        rec.summary(by=("nope",))
    with pytest.raises(TelemetryError, match="forward"):
        rec.summary(phase="sideways")


def test_summary_of_nothing_is_empty_with_schema():
    s = st.telemetry.record().summary()
    assert s.height == 0 and s.columns == ["op", "backend", *SUMMARY_SCHEMA]


def test_compare_two_recordings():
    a = _run(2)
    b = _run(5)
    with st.telemetry.record() as c:
        st.ones(3).exp()
    table = st.telemetry.compare(a, b)
    assert dict(table.schema) == COMPARE_SCHEMA
    assert dict(zip(table["op"], zip(table["count_a"], table["count_b"], strict=True), strict=True)) == {
        "matmul": (2, 5), "add": (2, 5), "relu": (2, 5)}
    for row in table.iter_rows(named=True):
        ta = a.ops.filter(op=row["op"])["duration_ns"]
        tb = b.ops.filter(op=row["op"])["duration_ns"]
        assert row["time_a_ns"] == ta.sum() and row["time_b_ns"] == tb.sum()
        assert row["ratio"] == pytest.approx(tb.mean() / ta.mean())
    mixed = st.telemetry.compare(a, c)
    exp = mixed.filter(op="exp").row(0, named=True)
    assert exp["count_a"] is None and exp["count_b"] == 1 and exp["ratio"] is None
    assert mixed["op"][-1] == "exp"  # ops only in b sort last
    assert st.telemetry.compare(a.ops, b.ops).equals(table)


def test_compare_rejects_other_things():
    with pytest.raises(TelemetryError, match="Recorder"):
        st.telemetry.compare(1, 2)
    with pytest.raises(TelemetryError, match="lacks columns"):
        st.telemetry.compare(pl.DataFrame({"x": [1]}), pl.DataFrame({"x": [1]}))
