"""Core overhead and throughput, measured side by side in one run (A B A B, medians).

1. tiny-tensor forward+backward of ``a*b + a`` against PyTorch;
2. a 784-256-256-10 ReLU MLP training step (batch 128, cross-entropy, SGD) against
   PyTorch and against a hand-written NumPy forward/backward/update;
3. a 1024x1024 float32 matmul and a 4M-element add against NumPy.

Run: ``python benchmarks/bench_core.py [--wall]`` (BLAS and torch pinned to one thread so
the comparison is about the framework, not the thread pool; the default clock is the
measuring thread's CPU time, which other processes on a shared machine do not inflate).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import spiraltorch_nb as st  # noqa: E402
import spiraltorch_nb.nn.functional as F  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the comparisons with torch are skipped
    torch = None


#: which clock the comparisons use: the CPU time of this thread (other processes on a
#: shared machine do not inflate it; BLAS runs on this thread since it is pinned to one)
#: or wall time (``--wall``)
CLOCK = time.thread_time if "--wall" not in sys.argv else time.perf_counter


def interleaved(fns: dict[str, Callable[[], None]], inner: int, rounds: int = 15) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin (A B C A B C ...)."""
    for fn in fns.values():  # warm up
        for _ in range(max(3, inner // 5)):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = CLOCK()
            for _ in range(inner):
                fn()
            samples[name].append((CLOCK() - t0) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_tiny() -> dict[str, float]:
    a = st.randn(4, requires_grad=True)
    b = st.randn(4, requires_grad=True)

    def ours() -> None:
        (a * b + a).sum().backward()

    def numpy_hand() -> None:
        an, bn = a._data, b._data
        y = an * bn + an
        _ = y.sum()
        g = np.ones_like(y)
        _ga = g * bn + g
        _gb = g * an

    fns = {"spiraltorch_nb": ours, "numpy (hand-written)": numpy_hand}
    if torch is not None:
        ta = torch.randn(4, requires_grad=True)
        tb = torch.randn(4, requires_grad=True)

        def torch_fn() -> None:
            (ta * tb + ta).sum().backward()

        fns["torch"] = torch_fn
    return interleaved(fns, inner=2000)


def _mlp_weights(rng: np.random.Generator) -> list[np.ndarray]:
    sizes = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
    return [(rng.standard_normal(s) * (0.05 if len(s) == 2 else 0.01)).astype(np.float32) for s in sizes]


def bench_mlp() -> dict[str, float]:
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((128, 784)).astype(np.float32)
    y_np = rng.integers(0, 10, 128)
    lr = 0.01
    w_np = _mlp_weights(rng)

    params = [st.tensor(w.copy(), requires_grad=True) for w in w_np]
    x, y = st.tensor(x_np), st.tensor(y_np)

    def ours() -> None:
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

    hand = [w.copy() for w in w_np]
    onehot = np.eye(10, dtype=np.float32)[y_np]

    def numpy_hand() -> None:
        w1, b1, w2, b2, w3, b3 = hand
        h1 = x_np @ w1.T + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T + b2
        a2 = np.maximum(h2, 0)
        z = a2 @ w3.T + b3
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(1, keepdims=True)
        _loss = -np.log(p[np.arange(128), y_np]).mean()
        dz = (p - onehot) / 128
        dw3, db3 = dz.T @ a2, dz.sum(0)
        da2 = (dz @ w3) * (h2 > 0)
        dw2, db2 = da2.T @ a1, da2.sum(0)
        da1 = (da2 @ w2) * (h1 > 0)
        dw1, db1 = da1.T @ x_np, da1.sum(0)
        for w, g in zip(hand, (dw1, db1, dw2, db2, dw3, db3), strict=True):
            w -= lr * g

    fns = {"spiraltorch_nb": ours, "numpy (hand-written)": numpy_hand}
    if torch is not None:
        tparams = [torch.tensor(w.copy(), requires_grad=True) for w in w_np]
        tx, ty = torch.tensor(x_np), torch.tensor(y_np)
        tF = torch.nn.functional

        def torch_fn() -> None:
            w1, b1, w2, b2, w3, b3 = tparams
            h = tF.linear(tx, w1, b1).relu()
            h = tF.linear(h, w2, b2).relu()
            loss = tF.cross_entropy(tF.linear(h, w3, b3), ty)
            for p in tparams:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in tparams:
                    p -= lr * p.grad

        fns["torch"] = torch_fn
    return interleaved(fns, inner=10)


def bench_big() -> dict[str, float]:
    rng = np.random.default_rng(1)
    a_np = rng.standard_normal((1024, 1024)).astype(np.float32)
    b_np = rng.standard_normal((1024, 1024)).astype(np.float32)
    u_np = rng.standard_normal(4 * 1024 * 1024).astype(np.float32)
    v_np = rng.standard_normal(4 * 1024 * 1024).astype(np.float32)
    a, b, u, v = (st.tensor(t) for t in (a_np, b_np, u_np, v_np))
    mm = interleaved({"spiraltorch_nb": lambda: a @ b, "numpy": lambda: a_np @ b_np}, inner=3)
    add = interleaved({"spiraltorch_nb": lambda: u + v, "numpy": lambda: u_np + v_np}, inner=10)
    return {"matmul " + k: t for k, t in mm.items()} | {"add " + k: t for k, t in add.items()}


def report(title: str, res: dict[str, float], base: str, target: str) -> None:
    print(f"\n{title}")
    ref = res[base]
    for name, t in res.items():
        print(f"  {name:28s} {t * 1e6:10.1f} us   x{t / ref:5.2f} vs {base}")
    print(f"  target: {target}")


def main() -> int:
    print(f"spiraltorch_nb {st.__version__}, numpy {np.__version__}, torch {getattr(torch, '__version__', 'absent')}, "
          f"python {sys.version.split()[0]}, BLAS threads pinned to 1, clock: "
          f"{'wall time' if CLOCK is time.perf_counter else 'thread CPU time (--wall for wall time)'}")
    tiny = bench_tiny()
    report("1. tiny a*b + a forward+backward", tiny, "torch" if "torch" in tiny else "spiraltorch_nb",
           "spiraltorch_nb <= torch")
    mlp = bench_mlp()
    report("2. MLP 784-256-256-10 training step, batch 128", mlp, "numpy (hand-written)",
           "spiraltorch_nb <= torch and <= 1.15x hand-written NumPy")
    big = bench_big()
    report("3a. 1024x1024 float32 matmul", {k: v for k, v in big.items() if k.startswith("matmul")}, "matmul numpy",
           "<= 1.05x NumPy")
    report("3b. 4M-element float32 add", {k: v for k, v in big.items() if k.startswith("add")}, "add numpy",
           "<= 1.05x NumPy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
