"""Telemetry overhead on a training step: off, compiled in but inactive, active.

The step: a 784-256-256-10 ReLU MLP, batch 128, cross-entropy, plain SGD written as
``p -= lr * p.grad`` under ``st.no_grad()``. Three modes, measured round-robin in one
run (A B C A B C ...), each sample the mean of ``--inner`` steps:

* **off**: no observer installed (the dispatch branch is not taken);
* **inactive**: a Recorder created (``st.telemetry.record()``) but not started;
* **active**: a Recorder recording every op. It is started once; around the other
  modes' samples it is only detached from dispatch, so its buffers keep growing and
  the chunk conversions that happen during its samples are timed.

The conversion of rows that are still staged at the end is timed separately and
reported as an amortized cost per step ("active + conversion"). Targets: inactive
under 1 %, active under 5 % of the step time.

Run: ``python benchmarks/bench_telemetry.py [--rounds 40] [--inner 5]``. BLAS is
pinned to one thread so that the numbers measure the framework, not the thread pool.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import spiraltorch_nb as st  # noqa: E402
import spiraltorch_nb.nn.functional as F  # noqa: E402
from spiraltorch_nb.ops import registry  # noqa: E402

TARGETS = {"inactive": 1.0, "active": 5.0}


def make_step(batch: int = 128, lr: float = 0.01) -> Callable[[], float]:
    """One SGD step of the MLP on a fixed random batch; returns nothing useful but the loss."""
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


def run(rounds: int, inner: int) -> dict[str, object]:
    step = make_step()
    for _ in range(10):
        step()
    rec = st.telemetry.record()
    idle = st.telemetry.record()  # created, never started: the "compiled in" mode
    rec.start()
    registry.set_dispatch_observer(None)

    def timed(mode: str) -> float:
        if mode == "active":
            registry.set_dispatch_observer(rec)
        t0 = time.perf_counter()
        for _ in range(inner):
            step()
        dt = (time.perf_counter() - t0) / inner
        if mode == "active":
            registry.set_dispatch_observer(None)
        return dt

    samples: dict[str, list[float]] = {"off": [], "inactive": [], "active": []}
    try:
        for _ in range(rounds):
            for mode in samples:
                samples[mode].append(timed(mode))
    finally:
        registry.set_dispatch_observer(rec)
        staged = len(rec._ops_buf.stage)
        t0 = time.perf_counter()
        rec._ops_buf.flush()
        convert_s = time.perf_counter() - t0
        rec.stop()
    steps_active = rounds * inner
    ops_per_step = rec.ops.height / steps_active
    convert_per_step = convert_s / staged * ops_per_step if staged else 0.0
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["off"]
    result: dict[str, object] = {
        "step_ms": {k: v * 1e3 for k, v in med.items()},
        "overhead_pct": {k: (v / base - 1) * 100 for k, v in med.items() if k != "off"},
        "ops_per_step": ops_per_step,
        "convert_us_per_step": convert_per_step * 1e6,
        "active_plus_convert_pct": ((med["active"] + convert_per_step) / base - 1) * 100,
        "recorded_ops": rec.ops.height,
        "idle_recorder_rows": idle.ops.height,
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=40, help="round-robin rounds (A B C per round)")
    ap.add_argument("--inner", type=int, default=5, help="steps per sample")
    args = ap.parse_args()
    r = run(args.rounds, args.inner)
    ms = r["step_ms"]
    pct = r["overhead_pct"]
    print(f"MLP 784-256-256-10, batch 128: {r['ops_per_step']:.0f} ops per step, "
          f"{args.rounds} rounds x {args.inner} steps per mode, medians")
    print(f"{'mode':<22}{'step (ms)':>12}{'overhead':>12}{'target':>10}")
    print(f"{'off':<22}{ms['off']:>12.3f}{'':>12}{'':>10}")
    verdicts = []
    for mode in ("inactive", "active"):
        ok = pct[mode] < TARGETS[mode]
        verdicts.append(ok)
        print(f"{mode:<22}{ms[mode]:>12.3f}{pct[mode]:>11.2f}%{'< ' + str(TARGETS[mode]) + '%':>10}"
              f"  {'ok' if ok else 'OVER'}")
    extra = r["active_plus_convert_pct"]
    print(f"{'active + conversion':<22}{ms['active'] + r['convert_us_per_step'] / 1e3:>12.3f}{extra:>11.2f}%"
          f"{'< 5.0%':>10}  {'ok' if extra < TARGETS['active'] else 'OVER'}")
    print(f"(conversion of staged rows to Polars, amortized: {r['convert_us_per_step']:.1f} us per step; "
          f"{r['recorded_ops']} ops recorded; idle recorder rows: {r['idle_recorder_rows']})")


if __name__ == "__main__":
    main()
