"""Summaries of one recording and side-by-side comparisons of two.

``summarize`` answers "where did the time go": per op (and backend) the call count,
total, mean, median and 95th-percentile durations, the share of all recorded op time,
the bytes moved and the achieved GFLOP/s. ``compare`` puts two recordings of the same
work side by side (cpu against wgpu, before against after a change): per op, the
time of each and their ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from .frames import OPS_SCHEMA, TelemetryError

__all__ = ["summarize", "compare", "SUMMARY_SCHEMA", "COMPARE_SCHEMA"]

#: columns of ``rec.summary()`` after the grouping columns
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "count": pl.Int64(), "total_ns": pl.Int64(), "mean_ns": pl.Float64(), "p50_ns": pl.Float64(),
    "p95_ns": pl.Float64(), "share": pl.Float64(), "bytes": pl.Int64(), "flops": pl.Int64(),
    "gflops": pl.Float64(),
}

#: columns of ``telemetry.compare(a, b)``
COMPARE_SCHEMA: dict[str, pl.DataType] = {
    "op": pl.String(), "count_a": pl.Int64(), "count_b": pl.Int64(), "time_a_ns": pl.Int64(),
    "time_b_ns": pl.Int64(), "mean_a_ns": pl.Float64(), "mean_b_ns": pl.Float64(), "ratio": pl.Float64(),
}


def _ops_frame(x: Any, what: str) -> pl.DataFrame:
    if isinstance(x, pl.DataFrame):
        frame = x
    elif hasattr(x, "ops"):
        frame = x.ops
    else:
        raise TelemetryError(f"{what}: expected a Recorder, a loaded recording or an ops DataFrame; "
                             f"got {type(x).__name__}")
    missing = [c for c in ("op", "duration_ns") if c not in frame.columns]
    if missing:
        raise TelemetryError(f"{what}: the ops frame lacks columns {missing}; pass rec.ops or the recorder itself")
    return frame


def summarize(ops: Any, by: Sequence[str] = ("op", "backend"), phase: str | None = None) -> pl.DataFrame:
    """Time, bytes and throughput per group of ops, largest total first.

    Parameters
    ----------
    ops : DataFrame or recording
        An ops frame (``rec.ops``) or anything with an ``ops`` attribute.
    by : sequence of str
        Grouping columns of the ops frame (``("op",)``, ``("op", "backend", "phase")``...).
    phase : str, optional
        Keep only "forward" or "backward" ops.

    Returns
    -------
    DataFrame
        The ``by`` columns, then ``count``, ``total_ns``, ``mean_ns``, ``p50_ns``,
        ``p95_ns``, ``share`` (of the summed durations; the column sums to 1),
        ``bytes`` (in + out), ``flops`` (estimated) and ``gflops`` (flops per
        nanosecond of recorded time, i.e. achieved GFLOP/s).
    """
    df = _ops_frame(ops, "summary")
    by = [by] if isinstance(by, str) else list(by)
    bad = [c for c in by if c not in df.columns]
    if bad:
        raise TelemetryError(f"summary(by=...): no column {bad} in the ops frame; choose from {df.columns}")
    if phase is not None:
        if phase not in ("forward", "backward"):
            raise TelemetryError(f"summary(phase=...) expects 'forward' or 'backward'; got {phase!r}")
        df = df.filter(pl.col("phase") == phase)
    schema: dict[Any, Any] = {c: OPS_SCHEMA.get(c, df.schema[c]) for c in by} | SUMMARY_SCHEMA
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    grand = df["duration_ns"].sum()
    dur = pl.col("duration_ns")
    out = df.group_by(by, maintain_order=True).agg(
        count=pl.len().cast(pl.Int64),
        total_ns=dur.sum().cast(pl.Int64),
        mean_ns=dur.mean(),
        p50_ns=dur.quantile(0.5, "linear"),
        p95_ns=dur.quantile(0.95, "linear"),
        bytes=(pl.col("bytes_in") + pl.col("bytes_out")).sum().cast(pl.Int64),
        flops=pl.col("flops").sum().cast(pl.Int64),
    )
    total = pl.col("total_ns")
    out = out.with_columns(
        share=(total / grand) if grand else pl.lit(0.0),
        gflops=pl.when(total > 0).then(pl.col("flops") / total).otherwise(None),
    )
    return out.select(list(schema)).cast(schema).sort("total_ns", descending=True, maintain_order=True)


def compare(a: Any, b: Any, phase: str | None = None) -> pl.DataFrame:
    """Per op, recording ``a`` against recording ``b`` (e.g. the same steps on cpu and on wgpu).

    Returns
    -------
    DataFrame
        ``op``, ``count_a``, ``count_b``, ``time_a_ns``, ``time_b_ns`` (total time in
        each), ``mean_a_ns``, ``mean_b_ns`` and ``ratio`` = ``mean_b_ns / mean_a_ns``
        (per call, so runs of different lengths compare fairly: above 1, ``b`` is
        slower). An op missing from one side has nulls there. Sorted by ``time_a_ns``.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> x = st.ones(64, 64)
    >>> with st.telemetry.record() as a:
    ...     _ = x @ x
    >>> with st.telemetry.record() as b:
    ...     _ = x @ x + x
    >>> st.telemetry.compare(a, b)["op"].to_list()
    ['matmul', 'add']
    """
    sides = []
    for label, x in (("a", a), ("b", b)):
        df = _ops_frame(x, "compare")
        if phase is not None:
            df = df.filter(pl.col("phase") == phase)
        sides.append(df.group_by("op", maintain_order=True).agg(
            pl.len().cast(pl.Int64).alias(f"count_{label}"),
            pl.col("duration_ns").sum().cast(pl.Int64).alias(f"time_{label}_ns"),
            pl.col("duration_ns").mean().cast(pl.Float64).alias(f"mean_{label}_ns"),
        ))
    joined = sides[0].join(sides[1], on="op", how="full", coalesce=True)
    joined = joined.with_columns(
        ratio=pl.when(pl.col("mean_a_ns") > 0).then(pl.col("mean_b_ns") / pl.col("mean_a_ns")).otherwise(None))
    schema: dict[Any, Any] = COMPARE_SCHEMA
    return (joined.select(list(schema)).cast(schema)
            .sort("time_a_ns", descending=True, nulls_last=True, maintain_order=True))
