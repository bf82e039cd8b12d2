"""Training history: every logged value as one row of a Polars frame, safe to read while training runs.

The frame is *long*: one row per (moment, metric), with columns

========  =======  =================================================================
column    dtype    meaning
========  =======  =================================================================
epoch     Int64    0-based epoch the value belongs to
step      Int64    optimizer steps taken so far (``trainer.global_step``)
split     Utf8     ``"train"`` or ``"val"``
scope     Utf8     ``"step"`` (one row per optimizer step) or ``"epoch"`` (epoch averages)
name      Utf8     ``"loss"``, ``"lr"``, ``"accuracy"``, a custom metric's name, ...
value     Float64  the value
time      Float64  seconds since the history began
========  =======  =================================================================

Per step the trainer logs the train ``loss`` and ``lr``; per epoch the train averages
and the validation metrics. :meth:`History.wide` pivots the epoch rows into one row per
epoch (``train_loss``, ``val_accuracy``, ...).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import polars as pl

__all__ = ["History", "HISTORY_SCHEMA"]

HISTORY_SCHEMA: dict[str, Any] = {
    "epoch": pl.Int64, "step": pl.Int64, "split": pl.Utf8, "scope": pl.Utf8, "name": pl.Utf8,
    "value": pl.Float64, "time": pl.Float64,
}


class History:
    """Metrics logged by a :class:`~spiraltorch_nb.train.Trainer`, readable from any thread.

    Attributes
    ----------
    history : polars.DataFrame
        A snapshot of every row logged so far (see the module docstring for columns).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cols: dict[str, list[Any]] = {k: [] for k in HISTORY_SCHEMA}
        self._t0 = time.perf_counter()

    def log(self, epoch: int, step: int, split: str, scope: str, values: dict[str, Any]) -> None:
        """Append one row per numeric entry of ``values``."""
        now = time.perf_counter() - self._t0
        with self._lock:
            c = self._cols
            for name, v in values.items():
                if isinstance(v, bool) or not isinstance(v, int | float):
                    continue
                c["epoch"].append(int(epoch))
                c["step"].append(int(step))
                c["split"].append(split)
                c["scope"].append(scope)
                c["name"].append(str(name))
                c["value"].append(float(v))
                c["time"].append(now)

    @property
    def history(self) -> pl.DataFrame:
        """A snapshot of all rows as a Polars frame (a copy: later logging does not change it)."""
        with self._lock:
            data = {k: list(v) for k, v in self._cols.items()}
        return pl.DataFrame(data, schema=HISTORY_SCHEMA)

    def to_polars(self) -> pl.DataFrame:
        """Same as :attr:`history`."""
        return self.history

    def __len__(self) -> int:
        return len(self._cols["value"])

    def series(self, name: str, split: str = "train", scope: str | None = None) -> list[float]:
        """The values of one metric in order, e.g. ``series("loss", "val")``.

        ``scope`` defaults to ``"step"`` for train loss/lr and ``"epoch"`` otherwise.
        """
        if scope is None:
            scope = "step" if split == "train" and name in ("loss", "lr") else "epoch"
        df = self.history
        return df.filter((pl.col("name") == name) & (pl.col("split") == split) & (pl.col("scope") == scope))[
            "value"].to_list()

    def last(self, name: str, split: str = "val") -> float | None:
        """The latest epoch value of a metric, or None if it was never logged."""
        values = self.series(name, split, "epoch")
        return values[-1] if values else None

    def wide(self, scope: str = "epoch") -> pl.DataFrame:
        """One row per epoch (or per step), one column per ``<split>_<name>``."""
        df = self.history.filter(pl.col("scope") == scope)
        index = ["epoch"] if scope == "epoch" else ["epoch", "step"]
        if df.is_empty():
            return pl.DataFrame(schema={k: HISTORY_SCHEMA[k] for k in index})
        df = df.with_columns((pl.col("split") + "_" + pl.col("name")).alias("metric"))
        out = df.pivot(on="metric", index=index, values="value", aggregate_function="last")
        return out.sort(index)

    def plot(self, name: str = "loss") -> Any:
        """A Plotly figure of ``name``: train per step, and per-epoch train and val averages."""
        import plotly.graph_objects as go

        fig = go.Figure()
        df = self.history.filter(pl.col("name") == name)
        for split, scope in (("train", "step"), ("train", "epoch"), ("val", "epoch")):
            part = df.filter((pl.col("split") == split) & (pl.col("scope") == scope))
            if part.is_empty():
                continue
            fig.add_trace(go.Scatter(x=part["step"].to_list(), y=part["value"].to_list(),
                                     mode="lines" if scope == "step" else "lines+markers",
                                     name=f"{split} {name}" + (" (epoch)" if scope == "epoch" and split == "train" else "")))
        fig.update_layout(xaxis_title="step", yaxis_title=name, template="plotly_white")
        return fig

    def __repr__(self) -> str:
        epochs = self._cols["epoch"]
        n_epochs = (max(epochs) + 1) if epochs else 0
        return f"<History: {len(self)} rows over {n_epochs} epoch(s); .history is the Polars frame>"

    def _repr_html_(self) -> str:
        wide = self.wide()
        if wide.is_empty():
            return f"<pre>{self!r}</pre>"
        return wide._repr_html_()
