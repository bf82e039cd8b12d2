"""The cuda backend against CuPy and PyTorch CUDA, measured side by side in one run.

1. a 784-256-256-10 ReLU MLP training step (batch 128, cross-entropy, SGD) against
   PyTorch CUDA and a hand-written CuPy forward/backward/update;
2. a 4096x4096 float32 matmul (GFLOP/s) against CuPy and PyTorch CUDA;
3. cross-entropy forward+backward (8192 x 1000 and 2048 x 32000 logits): the fused
   kernel against the unfused chain of primitives on the same GPU, and PyTorch CUDA;
4. layer norm and bias+GELU forward+backward: fused kernels against their unfused chains.

Every timing is a median over interleaved rounds (A B A B ...), each round ending with a
device synchronize, so queued GPU work is always counted. Run:
``python benchmarks/bench_cuda.py``. Without a usable GPU it says why and exits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import common  # benchmarks/common.py
import numpy as np

import spiraltorch_nb as st
import spiraltorch_nb.nn.functional as F
from spiraltorch_nb.backends import get_backend, probe
from spiraltorch_nb.ops import fused

try:
    import torch

    TORCH_CUDA = torch.cuda.is_available()
except ImportError:  # the comparisons with torch are skipped
    torch = None
    TORCH_CUDA = False


interleaved = common.interleaved
report = common.report


# ---- 1. MLP step -------------------------------------------------------------------------------------
def bench_mlp(cp: object, sync: Callable[[], None]) -> dict[str, float]:
    x_np, y_np, w_np = common.mlp_problem()
    lr = 0.01
    params = [st.tensor(w.copy(), device="cuda", requires_grad=True) for w in w_np]
    x, y = st.tensor(x_np, device="cuda"), st.tensor(y_np, device="cuda")
    fns = {"spiraltorch_nb cuda": common.st_mlp_step(st, params, x, y, lr),
           "cupy (hand-written)": common.hand_mlp_step(cp, [cp.asarray(w) for w in w_np], cp.asarray(x_np),
                                                       cp.asarray(y_np), lr)}
    if TORCH_CUDA:
        tparams = [torch.tensor(w.copy(), device="cuda", requires_grad=True) for w in w_np]
        fns["torch cuda"] = common.torch_mlp_step(torch, tparams, torch.tensor(x_np, device="cuda"),
                                                  torch.tensor(y_np, device="cuda"), lr)
    return interleaved(fns, inner=20, sync=sync)


# ---- 2. matmul ------------------------------------------------------------------------------------------
def bench_matmul(cp: object, sync: Callable[[], None], n: int = 4096) -> dict[str, float]:
    a = st.randn(n, n, device="cuda")
    b = st.randn(n, n, device="cuda")
    ac, bc = a._data, b._data
    fns: dict[str, Callable[[], object]] = {"spiraltorch_nb cuda": lambda: a @ b, "cupy": lambda: ac @ bc}
    if TORCH_CUDA:
        ta, tb = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        fns["torch cuda"] = lambda: ta @ tb
    return interleaved(fns, inner=5, sync=sync)


# ---- 3. cross-entropy -------------------------------------------------------------------------------------
def _unfused_cross_entropy(x: st.Tensor, t: st.Tensor) -> st.Tensor:
    """The same loss as a chain of primitives (what the fused kernel replaces)."""
    z = x - x.amax(dim=1, keepdim=True).detach()
    lse = z.exp().sum(dim=1).log()
    return (lse - z.gather(1, t.unsqueeze(1)).squeeze(1)).mean()


def bench_cross_entropy(sync: Callable[[], None], rows: int, cols: int) -> dict[str, float]:
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((rows, cols)).astype(np.float32)
    t_np = rng.integers(0, cols, rows)
    x = st.tensor(x_np, device="cuda", requires_grad=True)
    t = st.tensor(t_np, device="cuda")

    def step(loss_fn: Callable[[st.Tensor, st.Tensor], st.Tensor]) -> Callable[[], None]:
        def run() -> None:
            x.grad = None
            loss_fn(x, t).backward()
        return run

    fns = {"fused kernel": step(F.cross_entropy), "unfused primitives": step(_unfused_cross_entropy)}
    if TORCH_CUDA:
        tx = torch.tensor(x_np, device="cuda", requires_grad=True)
        tt = torch.tensor(t_np, device="cuda")

        def torch_fn() -> None:
            tx.grad = None
            torch.nn.functional.cross_entropy(tx, tt).backward()

        fns["torch cuda"] = torch_fn
    return interleaved(fns, inner=10, sync=sync)


# ---- 4. layer norm, bias + GELU -------------------------------------------------------------------------------
def bench_norm_gelu(sync: Callable[[], None], rows: int = 8192, cols: int = 1024) -> dict[str, float]:
    x = st.randn(rows, cols, device="cuda", requires_grad=True)
    w = st.ones(cols, device="cuda", requires_grad=True)
    b = st.zeros(cols, device="cuda", requires_grad=True)
    g = st.randn(rows, cols, device="cuda")

    def unfused_ln(x: st.Tensor) -> st.Tensor:
        mu = x.mean(dim=-1, keepdim=True)
        xc = x - mu
        return xc * ((xc * xc).mean(dim=-1, keepdim=True) + 1e-5).rsqrt() * w + b

    def step(fn: Callable[[st.Tensor], st.Tensor]) -> Callable[[], None]:
        def run() -> None:
            x.grad = w.grad = b.grad = None
            fn(x).backward(g)
        return run

    return interleaved({
        "layer norm fused": step(lambda x: fused.layer_norm(x, cols, w, b)),
        "layer norm unfused": step(unfused_ln),
        "bias+gelu fused": step(lambda x: fused.bias_gelu(x, b)),
        "bias+gelu unfused": step(lambda x: F.gelu(x + b)),
    }, inner=10, sync=sync)


def main() -> int:
    info = probe("cuda")
    if not info["available"]:
        print(f"bench_cuda: no usable GPU here, nothing to measure ({info['reason']})")
        return 0
    import cupy as cp

    be = get_backend("cuda")
    desc = be.describe()
    dev = cp.cuda.Device(0)
    sync = dev.synchronize
    print(f"spiraltorch_nb {st.__version__}, cupy {cp.__version__}, torch {getattr(torch, '__version__', 'absent')}"
          f"{' (cuda)' if TORCH_CUDA else ' (no cuda: torch rows skipped)'}, python {sys.version.split()[0]}")
    print(f"device: {desc['device_name']} (sm {desc['compute_capability']}, {desc['memory_total'] / 2**30:.0f} GiB), "
          f"CUDA runtime {desc['cuda_runtime']}, driver {desc['cuda_driver']}")

    mlp = bench_mlp(cp, sync)
    report("1. MLP 784-256-256-10 training step, batch 128", mlp, "cupy (hand-written)")
    if "torch cuda" in mlp:
        print(f"  ratio spiraltorch_nb / torch: {mlp['spiraltorch_nb cuda'] / mlp['torch cuda']:.2f}")

    n = 4096
    mm = bench_matmul(cp, sync, n)
    report(f"2. {n}x{n} float32 matmul", mm, "cupy", extra=lambda t: f"{2 * n**3 / t / 1e9:8.0f} GFLOP/s")

    for rows, cols in ((8192, 1000), (2048, 32000)):
        ce = bench_cross_entropy(sync, rows, cols)
        report(f"3. cross-entropy forward+backward, {rows} x {cols} logits", ce, "fused kernel")
        print(f"  fused speedup over the unfused chain: x{ce['unfused primitives'] / ce['fused kernel']:.2f}")

    ng = bench_norm_gelu(sync)
    report("4. layer norm and bias+GELU forward+backward, 8192 x 1024", ng, "layer norm fused")
    print(f"  layer norm fused speedup: x{ng['layer norm unfused'] / ng['layer norm fused']:.2f}; "
          f"bias+gelu fused speedup: x{ng['bias+gelu unfused'] / ng['bias+gelu fused']:.2f}")
    mem = be.memory_stats()
    print(f"\nCuPy pool: {mem['used'] / 2**20:.0f} MiB in use, {mem['total'] / 2**20:.0f} MiB held, "
          f"peak {mem['peak'] / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
