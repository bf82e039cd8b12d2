"""Exports: Chrome trace (checked against its JSON schema), Parquet and JSONL round trips."""

from __future__ import annotations

import json
import threading

import jsonschema
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import spiraltorch_nb as st
from spiraltorch_nb.backends.base import report_transfer
from spiraltorch_nb.telemetry import CHROME_TRACE_SCHEMA, SCHEMAS, LoadedTelemetry, TelemetryError


@pytest.fixture
def rec():
    x = st.randn(8, 4, requires_grad=True)
    w = st.randn(4, 3, requires_grad=True)
    with st.telemetry.record(memory_every=2) as r:
        for step in range(3):
            loss = (x @ w).relu().sum()
            loss.backward()
            r.log(step=step, loss=loss.item())
        report_transfer("host", "wgpu", 128, r.t0_ns + 10, 2000)

        def other():
            st.ones(3) * 2

        t = threading.Thread(target=other)
        t.start()
        t.join()
    return r


def test_chrome_trace_validates_against_the_schema(rec, tmp_path):
    path = rec.to_chrome_trace(tmp_path / "trace.json")
    trace = json.loads(path.read_text())
    jsonschema.validate(trace, CHROME_TRACE_SCHEMA)
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len([e for e in complete if e["cat"] != "transfer"]) == rec.ops.height
    xfer = [e for e in complete if e["cat"] == "transfer"]
    assert len(xfer) == 1 and xfer[0]["name"] == "host->wgpu" and xfer[0]["dur"] == 2.0
    assert xfer[0]["ts"] == pytest.approx(0.01)
    names = {e["args"]["name"]: e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert set(names) == {"cpu", "wgpu", "metrics"}
    assert xfer[0]["pid"] == names["wgpu"]
    ops = [e for e in complete if e["cat"] != "transfer"]
    assert {e["pid"] for e in ops} == {names["cpu"]}
    assert len({e["tid"] for e in ops}) == 2  # main thread and the helper thread
    first = rec.ops.row(0, named=True)
    assert ops[0]["name"] == first["op"] and ops[0]["cat"] == first["phase"]
    assert ops[0]["ts"] == pytest.approx((first["start_ns"] - rec.t0_ns) / 1000)
    assert ops[0]["dur"] == pytest.approx(first["duration_ns"] / 1000)
    assert ops[0]["args"]["shapes"] == first["shapes"]
    counters = [e for e in events if e["ph"] == "C"]
    assert {e["name"] for e in counters} == {"memory", "loss"}
    thread_names = [e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"]
    assert "main thread" in thread_names


def test_the_schema_rejects_malformed_traces(rec):
    trace = st.telemetry.chrome_trace(rec)
    jsonschema.validate(trace, CHROME_TRACE_SCHEMA)
    bad = json.loads(json.dumps(trace))
    x = next(e for e in bad["traceEvents"] if e["ph"] == "X")
    del x["dur"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, CHROME_TRACE_SCHEMA)
    bad2 = json.loads(json.dumps(trace))
    bad2["traceEvents"].append({"ph": "B", "name": "x", "pid": 1, "tid": 1, "ts": 0})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad2, CHROME_TRACE_SCHEMA)


def test_empty_recording_exports_a_valid_trace(tmp_path):
    rec = st.telemetry.record()
    trace = json.loads(rec.to_chrome_trace(tmp_path / "t.json").read_text())
    jsonschema.validate(trace, CHROME_TRACE_SCHEMA)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_and_load_round_trip(rec, tmp_path, fmt):
    folder = getattr(rec, f"to_{fmt}")(tmp_path / fmt)
    assert (folder / "meta.json").is_file()
    assert all((folder / f"{n}.{fmt}").is_file() for n in SCHEMAS)
    loaded = st.telemetry.load(folder)
    assert isinstance(loaded, LoadedTelemetry)
    for name, frame in rec.frames().items():
        assert_frame_equal(getattr(loaded, name), frame)
    assert loaded.t0_ns == rec.t0_ns
    assert loaded.meta["options"]["max_events"] == 1_000_000
    assert_frame_equal(loaded.summary(), rec.summary())
    trace = st.telemetry.chrome_trace(loaded)
    assert trace == st.telemetry.chrome_trace(rec)


def test_load_reports_what_is_wrong(tmp_path):
    with pytest.raises(TelemetryError, match="not a folder"):
        st.telemetry.load(tmp_path / "missing")
    with pytest.raises(TelemetryError, match="no telemetry tables"):
        st.telemetry.load(tmp_path)
    pl.DataFrame({"op": ["add"]}).write_parquet(tmp_path / "ops.parquet")
    with pytest.raises(TelemetryError, match="lacks columns"):
        st.telemetry.load(tmp_path)


def test_loaded_recording_exports_again(rec, tmp_path):
    loaded = st.telemetry.load(rec.to_parquet(tmp_path / "a"))
    again = st.telemetry.load(loaded.to_jsonl(tmp_path / "b"))
    assert_frame_equal(again.ops, rec.ops)
    assert repr(again).startswith("<LoadedTelemetry ops=")
