"""What the benchmark scripts share: interleaved timing, the MLP problem, a hand-written step.

Scripts run as ``python benchmarks/<script>.py``, so this module imports as ``common``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MLP_SIZES = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
BATCH = 128


class Timings(dict):
    """Median seconds per call by name; ``samples`` keeps every round's value (for paired ratios)."""

    samples: dict[str, list[float]]

    def paired_ratio(self, name: str, base: str) -> float:
        """Median over rounds of ``name / base`` measured in the same round.

        Machine speed drifts on a shared host; a ratio taken within one round (the two
        functions ran back to back) cancels most of that drift, which a ratio of the two
        overall medians does not.
        """
        return statistics.median(a / b for a, b in zip(self.samples[name], self.samples[base], strict=True))


def interleaved(fns: dict[str, Callable[[], object]], inner: int, rounds: int = 15,
                sync: Callable[[], None] | None = None,
                clock: Callable[[], float] = time.perf_counter) -> Timings:
    """Median seconds per call of each function, measured round-robin (A B C A B C ...).

    ``sync`` waits for queued device work before and after each sample (GPU backends);
    ``clock`` is wall time by default, or e.g. ``time.thread_time`` for CPU time.
    """
    wait = sync or (lambda: None)
    for fn in fns.values():  # warm up (caches, kernel compilation, memory pools)
        for _ in range(max(3, inner // 5)):
            fn()
    wait()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wait()
            t0 = clock()
            for _ in range(inner):
                fn()
            wait()
            samples[name].append((clock() - t0) / inner)
    out = Timings({k: statistics.median(v) for k, v in samples.items()})
    out.samples = samples
    return out


def mlp_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Inputs (128 x 784), class targets and initial weights of the 784-256-256-10 MLP."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, 784)).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    w = [(rng.standard_normal(s) * (0.05 if len(s) == 2 else 0.01)).astype(np.float32) for s in MLP_SIZES]
    return x, y, w


def hand_mlp_step(xp: Any, w: list[Any], x: Any, y: Any, lr: float) -> Callable[[], None]:
    """A hand-written forward/backward/SGD step of the MLP in array namespace ``xp`` (NumPy or CuPy)."""
    onehot = xp.eye(10, dtype=xp.float32)[y]
    rows = xp.arange(x.shape[0])

    def step() -> None:
        w1, b1, w2, b2, w3, b3 = w
        h1 = x @ w1.T + b1
        a1 = xp.maximum(h1, 0)
        h2 = a1 @ w2.T + b2
        a2 = xp.maximum(h2, 0)
        z = a2 @ w3.T + b3
        z = z - z.max(1, keepdims=True)
        e = xp.exp(z)
        p = e / e.sum(1, keepdims=True)
        _loss = -xp.log(p[rows, y]).mean()
        dz = (p - onehot) / x.shape[0]
        dw3, db3 = dz.T @ a2, dz.sum(0)
        da2 = (dz @ w3) * (h2 > 0)
        dw2, db2 = da2.T @ a1, da2.sum(0)
        da1 = (da2 @ w2) * (h1 > 0)
        dw1, db1 = da1.T @ x, da1.sum(0)
        for wi, g in zip(w, (dw1, db1, dw2, db2, dw3, db3), strict=True):
            wi -= lr * g

    return step


def st_mlp_step(st: Any, params: list[Any], x: Any, y: Any, lr: float) -> Callable[[], None]:
    """The same step with spiraltorch_nb autograd (manual SGD update, as the hand-written one)."""
    F = st.nn.functional

    def step() -> None:
        w1, b1, w2, b2, w3, b3 = params
        h = F.linear(x, w1, b1).relu()
        h = F.linear(h, w2, b2).relu()
        loss = F.cross_entropy(F.linear(h, w3, b3), y)
        for p in params:
            p.grad = None
        loss.backward()
        with st.no_grad():
            for p in params:
                p -= lr * p.grad

    return step


def torch_mlp_step(torch: Any, params: list[Any], x: Any, y: Any, lr: float) -> Callable[[], None]:
    """The same step in PyTorch."""
    tF = torch.nn.functional

    def step() -> None:
        w1, b1, w2, b2, w3, b3 = params
        h = tF.linear(x, w1, b1).relu()
        h = tF.linear(h, w2, b2).relu()
        loss = tF.cross_entropy(tF.linear(h, w3, b3), y)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad

    return step


def report(title: str, res: dict[str, float], base: str, target: str = "",
           extra: Callable[[float], str] | None = None) -> None:
    """Print each median, its ratio to ``base`` and, for interleaved timings, the paired ratio."""
    print(f"\n{title}")
    ref = res[base]
    paired = isinstance(res, Timings)
    for name, t in res.items():
        more = f"   {extra(t)}" if extra else ""
        if paired and name != base:
            more = f"   (paired x{res.paired_ratio(name, base):5.2f}){more}"
        print(f"  {name:34s} {t * 1e6:10.1f} us   x{t / ref:5.2f} vs {base}{more}")
    if target:
        print(f"  target: {target}")
