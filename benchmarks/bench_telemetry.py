"""Telemetry overhead on a training step: off, compiled in but inactive, active.

The step: a 784-256-256-10 ReLU MLP, batch 128, cross-entropy, plain SGD written as
``p -= lr * p.grad`` under ``st.no_grad()``. Four modes, measured in rounds in one run,
each round every mode once in a shuffled order (seeded), each sample the mean of
``--inner`` steps (one by default: the samples of a round are milliseconds apart); an
overhead is the median over rounds of the ratio to "off" in the same round (paired:
drift of a shared machine's speed cancels; shuffled: so does whatever one mode leaves
to the one after it, such as a cache filled or a collection due):

* **off**: no observer installed (the dispatch branch is not taken);
* **off again**: the same as off, measured in its own slot of each round: its
  "overhead" is the noise floor of this machine (an A/A comparison);
* **inactive**: a Recorder created (``st.telemetry.record()``) but not started;
* **active**: a Recorder recording every op. It is started once; around the other
  modes' samples it is only detached from dispatch, so its buffers keep growing and
  the chunk conversions that happen during its samples are timed.

The recorder appends one row per op on the thread that runs the ops; full chunks of
rows are converted to Polars on its converter thread, overlapping the training
thread's GIL-free work (BLAS). That conversion of a full chunk (in its steady state:
each op signature is interned by the first one) is timed separately here, on this
thread, and reported as an amortized cost per step ("active + conversion"): an upper
bound on what it adds, as if it did not overlap anything. Every sample is taken on two
clocks: wall time, and the CPU time of the measuring thread, which other processes on
a shared machine do not inflate (BLAS is pinned to this one thread). Targets: inactive
under 1 %, active under 5 % of the step time.

Run: ``python benchmarks/bench_telemetry.py [--rounds 300] [--inner 1]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import spiraltorch_nb as st  # noqa: E402
import spiraltorch_nb.nn.functional as F  # noqa: E402
from spiraltorch_nb.ops import registry  # noqa: E402


def make_step(batch: int = 128, lr: float = 0.01) -> Callable[[], st.Tensor]:
    """One SGD step of the MLP on a fixed random batch; the step returns the loss."""
    st.manual_seed(0)

    def param(*shape: int) -> st.Tensor:
        return (st.randn(*shape) * 0.05).requires_grad_()

    params = [param(784, 256), param(256), param(256, 256), param(256), param(256, 10), param(10)]
    w1, b1, w2, b2, w3, b3 = params
    x = st.randn(batch, 784)
    y = st.randint(0, 10, (batch,))

    def step() -> st.Tensor:
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        loss = F.cross_entropy(h @ w3 + b3, y)
        loss.backward()
        with st.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        return loss

    return step


def run(rounds: int, inner: int) -> dict[str, dict[str, float]]:
    """Median step time per mode on two clocks: wall (perf_counter) and this thread's CPU time."""
    step = make_step()
    for _ in range(10):
        step()
    rec = st.telemetry.record()
    idle = st.telemetry.record()  # created, never started: the "compiled in" mode
    rec.start()
    for _ in range(2):  # the first conversion interns each op signature once; time the steady state
        step()
    rec.flush()
    registry.set_dispatch_observer(None)

    collections = dict.fromkeys(("off", "off again", "inactive", "active"), 0)

    def timed(mode: str) -> tuple[float, float]:
        if mode == "active":
            registry.set_dispatch_observer(rec)
        gc0 = sum(g["collections"] for g in gc.get_stats())
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(inner):
            step()
        wall, cpu = (time.perf_counter() - w0) / inner, (time.thread_time() - c0) / inner
        collections[mode] += sum(g["collections"] for g in gc.get_stats()) - gc0
        if mode == "active":
            registry.set_dispatch_observer(None)
        return wall, cpu

    modes = ("off", "off again", "inactive", "active")
    samples: dict[str, dict[str, list[float]]] = {c: {m: [] for m in modes} for c in ("wall", "cpu")}
    order = list(modes)
    shuffle = random.Random(0).shuffle
    try:
        for _ in range(rounds):
            shuffle(order)
            for mode in order:
                wall, cpu = timed(mode)
                samples["wall"][mode].append(wall)
                samples["cpu"][mode].append(cpu)
    finally:
        registry.set_dispatch_observer(rec)
        rec.stop()
    ops_per_step = rec.ops.height / (rounds * inner + 2)
    # a conversion as the converter thread does it: one full chunk of this step's rows
    # (the rows of the last steps, repeated), timed here, on this thread
    rows = []
    with rec:
        while len(rows) < rec._ops_buf.chunk_rows:
            step()
            rows.extend(rec._ops_buf.stage)
            rec._ops_buf.stage.clear()
    rows = rows[:rec._ops_buf.chunk_rows]
    rec._convert_ops(rows)  # signatures interned, Polars warmed
    w0, c0 = time.perf_counter(), time.thread_time()
    rec._convert_ops(rows)
    convert = {"wall": time.perf_counter() - w0, "cpu": time.thread_time() - c0}
    out: dict[str, dict[str, float]] = {}
    for clock, by_mode in samples.items():
        med = {m: statistics.median(v) for m, v in by_mode.items()}
        conv = convert[clock] / len(rows) * ops_per_step

        def paired(mode: str, extra: float = 0.0, by_mode: dict = by_mode) -> float:
            # the median over rounds of (mode + extra) / off within one round: drift cancels
            return (statistics.median((a + extra) / b for a, b in zip(by_mode[mode], by_mode["off"], strict=True))
                    - 1) * 100

        out[clock] = {
            **{f"{m}_ms": v * 1e3 for m, v in med.items()},
            "noise_pct": paired("off again"),
            "inactive_pct": paired("inactive"),
            "active_pct": paired("active"),
            "convert_us_per_step": conv * 1e6,
            "active_convert_pct": paired("active", conv),
        }
    out["info"] = {"ops_per_step": ops_per_step, "recorded_ops": rec.ops.height,
                   "idle_recorder_rows": idle.ops.height, "collections": collections}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=300, help="rounds (each mode once per round, shuffled)")
    ap.add_argument("--inner", type=int, default=1, help="steps per sample")
    args = ap.parse_args()
    r = run(args.rounds, args.inner)
    info = r["info"]
    print(f"MLP 784-256-256-10, batch 128: {info['ops_per_step']:.0f} ops per step; "
          f"{args.rounds} rounds x {args.inner} step(s) per mode, shuffled within each round; "
          f"medians, overhead = paired ratio to off")
    print(f"{'':<22}{'wall clock':>24}{'thread CPU time':>26}")
    print(f"{'mode':<22}{'step ms':>12}{'overhead':>12}{'step ms':>14}{'overhead':>12}{'target':>10}")
    rows = [("off", "off_ms", None, None), ("off again (noise)", "off again_ms", "noise_pct", None),
            ("inactive", "inactive_ms", "inactive_pct", 1.0),
            ("active", "active_ms", "active_pct", 5.0),
            ("active + conversion", None, "active_convert_pct", 5.0)]
    for label, ms_key, pct_key, target in rows:
        line = f"{label:<22}"
        for clock in ("wall", "cpu"):
            c = r[clock]
            ms = c[ms_key] if ms_key else c["active_ms"] + c["convert_us_per_step"] / 1e3
            pct = f"{c[pct_key]:.2f}%" if pct_key else ""
            line += f"{ms:>12.3f}{pct:>12}" if clock == "wall" else f"{ms:>14.3f}{pct:>12}"
        if target is not None:
            ok = r["cpu"][pct_key] < target
            line += f"{'< ' + str(target) + '%':>10}  {'ok' if ok else 'OVER'} (CPU time)"
        print(line)
    print(f"conversion of staged rows to Polars (on the converter thread during a run; timed here on this thread), "
          f"amortized per step: {r['wall']['convert_us_per_step']:.1f} us wall, "
          f"{r['cpu']['convert_us_per_step']:.1f} us CPU; {info['recorded_ops']} ops recorded; "
          f"rows in the never-started recorder: {info['idle_recorder_rows']}")
    print("garbage collections during the samples of each mode: "
          + ", ".join(f"{m} {n}" for m, n in info["collections"].items()))
    print("(thread CPU time is not inflated by other processes on a shared machine; BLAS runs on this thread)")


if __name__ == "__main__":
    main()
