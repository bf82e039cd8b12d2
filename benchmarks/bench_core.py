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

import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)
import numpy as np  # noqa: E402

import spiraltorch_nb as st  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the comparisons with torch are skipped
    torch = None


#: which clock the comparisons use: the CPU time of this thread (other processes on a
#: shared machine do not inflate it; BLAS runs on this thread since it is pinned to one)
#: or wall time (``--wall``)
CLOCK = time.thread_time if "--wall" not in sys.argv else time.perf_counter


def interleaved(fns: dict[str, Callable[[], None]], inner: int, rounds: int = 15) -> common.Timings:
    return common.interleaved(fns, inner, rounds, clock=CLOCK)


def bench_tiny() -> common.Timings:
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


def bench_mlp() -> common.Timings:
    x_np, y_np, w_np = common.mlp_problem()
    lr = 0.01
    params = [st.tensor(w.copy(), requires_grad=True) for w in w_np]
    fns = {"spiraltorch_nb": common.st_mlp_step(st, params, st.tensor(x_np), st.tensor(y_np), lr),
           "numpy (hand-written)": common.hand_mlp_step(np, [w.copy() for w in w_np], x_np, y_np, lr)}
    if torch is not None:
        tparams = [torch.tensor(w.copy(), requires_grad=True) for w in w_np]
        fns["torch"] = common.torch_mlp_step(torch, tparams, torch.tensor(x_np), torch.tensor(y_np), lr)
    return interleaved(fns, inner=10, rounds=25)


def bench_big() -> tuple[common.Timings, common.Timings]:
    rng = np.random.default_rng(1)
    a_np = rng.standard_normal((1024, 1024)).astype(np.float32)
    b_np = rng.standard_normal((1024, 1024)).astype(np.float32)
    u_np = rng.standard_normal(4 * 1024 * 1024).astype(np.float32)
    v_np = rng.standard_normal(4 * 1024 * 1024).astype(np.float32)
    a, b, u, v = (st.tensor(t) for t in (a_np, b_np, u_np, v_np))
    mm = interleaved({"matmul spiraltorch_nb": lambda: a @ b, "matmul numpy": lambda: a_np @ b_np}, inner=3)
    add = interleaved({"add spiraltorch_nb": lambda: u + v, "add numpy": lambda: u_np + v_np}, inner=10)
    return mm, add


report = common.report


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
    mm, add = bench_big()
    report("3a. 1024x1024 float32 matmul", mm, "matmul numpy", "<= 1.05x NumPy")
    report("3b. 4M-element float32 add", add, "add numpy", "<= 1.05x NumPy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
