"""The wgpu backend measured against the cpu backend (NumPy) in one run (interleaved, medians).

1. per-op overhead of a chain of tiny ops, batched submission vs one submit per op;
2. float32 matmul GFLOP/s, wgpu vs cpu;
3. elementwise add GB/s (bytes read + written), wgpu vs cpu;
4. a small MLP training step, wgpu vs cpu.

``--large`` (for a real GPU): a 4096x4096 float32 matmul against CuPy/cuBLAS when CuPy
is importable, and a 64M-element add. With CuPy on an NVIDIA GPU it checks the targets:
wgpu matmul at least 50% of cuBLAS's GFLOP/s, and the add at least 60% of the GPU's
peak memory bandwidth (from CuPy's device properties; the CuPy add is shown alongside
as a reference). Without CuPy those targets are reported as not measured.

Every wgpu timing includes ``synchronize()`` (the GPU work is finished, not just
queued). Run: ``python benchmarks/bench_wgpu.py [--large]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)
import numpy as np  # noqa: E402

import spiraltorch_nb as st  # noqa: E402
import spiraltorch_nb.nn.functional as F  # noqa: E402
from spiraltorch_nb.backends import get_backend, probe  # noqa: E402


def interleaved(fns: dict[str, Callable[[], None]], inner: int, rounds: int = 7) -> common.Timings:
    return common.interleaved(fns, inner, rounds)


def bench_overhead(be: object, n_ops: int = 100) -> dict[str, float]:
    """Seconds per op of ``y = y * a + b`` chains (2 ops per step) on 256 elements.

    "recording only" times the Python side and command encoding (the GPU work is
    finished outside the timed region); the other rows include the GPU's execution.
    """
    x = st.randn(256, device="wgpu")
    xc = st.randn(256)
    queue = be.queue

    def chain(t: object) -> object:
        y = t
        for _ in range(n_ops // 2):
            y = y * 1.0001 + 0.001
        return y

    def batched() -> None:
        chain(x)._be.synchronize()

    def per_op() -> None:
        queue.submit_every_op = True
        try:
            chain(x)._be.synchronize()
        finally:
            queue.submit_every_op = False

    record_samples = []

    def record_only() -> None:
        t0 = time.perf_counter()
        chain(x)
        record_samples.append(time.perf_counter() - t0)
        be.synchronize()

    res = interleaved({"wgpu batched": batched, "wgpu submit per op": per_op, "wgpu recording only": record_only,
                       "cpu": lambda: chain(xc)}, inner=3)
    res["wgpu recording only"] = statistics.median(record_samples)
    return {k: v / n_ops for k, v in res.items()}


def bench_matmul(n: int, cupy: object = None, rounds: int = 5) -> common.Timings:
    """Seconds per n x n float32 matmul."""
    rng = np.random.default_rng(0)
    a_np, b_np = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    a, b = st.tensor(a_np, device="wgpu"), st.tensor(b_np, device="wgpu")
    ac, bc = st.tensor(a_np), st.tensor(b_np)
    be = a._be
    got = (a @ b).numpy()
    ref = a_np @ b_np
    err = float(np.abs(got - ref).max() / (np.abs(ref).max() + 1e-30))
    if err > 1e-4:
        raise AssertionError(f"wgpu matmul {n}x{n} disagrees with NumPy (relative error {err:.2e})")

    def wgpu_mm() -> None:
        a @ b
        be.synchronize()

    fns: dict[str, Callable[[], None]] = {"wgpu": wgpu_mm}
    if n <= 2048 or cupy is None:
        fns["cpu"] = lambda: ac @ bc
    if cupy is not None:
        ca, cb = cupy.asarray(a_np), cupy.asarray(b_np)

        def cublas() -> None:
            ca @ cb
            cupy.cuda.Device().synchronize()

        fns["cupy (cuBLAS)"] = cublas
    return interleaved(fns, inner=1 if n >= 1024 else 3, rounds=rounds)


def bench_add(n: int, cupy: object = None, rounds: int = 5) -> common.Timings:
    """Seconds per n-element float32 add."""
    rng = np.random.default_rng(1)
    u_np, v_np = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    u, v = st.tensor(u_np, device="wgpu"), st.tensor(v_np, device="wgpu")
    uc, vc = st.tensor(u_np), st.tensor(v_np)
    be = u._be

    def wgpu_add() -> None:
        u + v
        be.synchronize()

    fns: dict[str, Callable[[], None]] = {"wgpu": wgpu_add, "cpu": lambda: uc + vc}
    if cupy is not None:
        cu, cv = cupy.asarray(u_np), cupy.asarray(v_np)

        def cupy_add() -> None:
            cu + cv
            cupy.cuda.Device().synchronize()

        fns["cupy"] = cupy_add
    return interleaved(fns, inner=3, rounds=rounds)


def bench_mlp() -> dict[str, float]:
    """Seconds per training step of a 64-128-10 MLP on a batch of 64."""
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((64, 64)).astype(np.float32)
    y_np = rng.integers(0, 10, 64).astype(np.int32)
    w_np = [(rng.standard_normal(s) * 0.1).astype(np.float32) for s in ((128, 64), (128,), (10, 128), (10,))]

    def make(device: str) -> Callable[[], None]:
        x, y = st.tensor(x_np, device=device), st.tensor(y_np, device=device)
        params = [st.tensor(w, device=device, requires_grad=True) for w in w_np]

        def step() -> None:
            w1, b1, w2, b2 = params
            loss = F.cross_entropy(F.linear(F.linear(x, w1, b1).relu(), w2, b2), y)
            for p in params:
                p.grad = None
            loss.backward()
            with st.no_grad():
                for p in params:
                    p -= 0.01 * p.grad
            x._be.synchronize()

        return step

    return interleaved({"wgpu": make("wgpu"), "cpu": make("cpu")}, inner=5)


def _cupy_or_none() -> object:
    """CuPy when it is importable and sees a CUDA device, else None (with a note)."""
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception as exc:  # not installed, or no driver/GPU: compare with the cpu only
        print(f"\n(no CuPy/cuBLAS reference: {type(exc).__name__}: {exc}; the --large section compares with "
              "the cpu only)")
        return None


def peak_memory_bandwidth(cupy: Any) -> tuple[float | None, str]:
    """The current CUDA device's theoretical peak memory bandwidth in bytes/s, and how it was found.

    ``2 * memoryClockRate (kHz) * 1e3 * memoryBusWidth (bits) / 8``: two transfers per
    memory clock over the whole bus. Returns ``(None, why)`` when the device reports no
    clock or bus width, rather than guessing a figure.
    """
    rt = cupy.cuda.runtime
    dev = cupy.cuda.Device().id
    props = rt.getDeviceProperties(dev)
    clock_khz, bus_bits = int(props.get("memoryClockRate") or 0), int(props.get("memoryBusWidth") or 0)
    source = "cupy.cuda.runtime.getDeviceProperties"
    if not (clock_khz and bus_bits):
        # CUDA 13 dropped memoryClockRate from cudaDeviceProp; the attribute query keeps it
        try:
            clock_khz = clock_khz or int(rt.deviceGetAttribute(rt.cudaDevAttrMemoryClockRate, dev))
            bus_bits = bus_bits or int(rt.deviceGetAttribute(rt.cudaDevAttrGlobalMemoryBusWidth, dev))
            source = "cupy.cuda.runtime.deviceGetAttribute"
        except Exception:  # an old CuPy without the query: reported as unknown below
            pass
    if not (clock_khz and bus_bits):
        return None, (f"CUDA device {dev} reports memoryClockRate={clock_khz} kHz and memoryBusWidth={bus_bits} "
                      "bits, so its peak memory bandwidth is unknown")
    peak = 2 * clock_khz * 1e3 * bus_bits / 8
    return peak, (f"{peak / 1e9:.0f} GB/s = 2 x {clock_khz / 1e6:.3f} GHz memory clock x {bus_bits}-bit bus / 8 "
                  f"(CUDA device {dev}, {source})")


def report_matmul_target(mm: common.Timings, n: int) -> None:
    """Print wgpu's and cuBLAS's GFLOP/s and wgpu's share of cuBLAS against the 50% target."""
    cublas = "cupy (cuBLAS)"
    if cublas not in mm:
        print("  target wgpu >= 50% of cuBLAS: not measured (no CuPy/cuBLAS on a CUDA device here)")
        return
    flop = 2 * n**3
    share = mm[cublas] / mm["wgpu"]
    print(f"  wgpu {flop / mm['wgpu'] / 1e9:.1f} GFLOP/s, cuBLAS {flop / mm[cublas] / 1e9:.1f} GFLOP/s")
    print(f"  wgpu = {100 * share:.1f}% of cuBLAS (target >= 50%: {'met' if share >= 0.5 else 'NOT met'}; "
          f"paired per-round: {100 * mm.paired_ratio(cublas, 'wgpu'):.1f}%)")


def report_bandwidth_target(add: common.Timings, nbytes: int, cupy: Any) -> None:
    """Print the add's achieved GB/s as a share of the GPU's peak memory bandwidth (target 60%)."""
    if cupy is None:
        print("  target wgpu >= 60% of the GPU's peak memory bandwidth: not measured (the peak comes from CuPy's "
              "device properties, and there is no CuPy on a CUDA device here)")
        return
    peak, how = peak_memory_bandwidth(cupy)
    if peak is None:
        print(f"  target wgpu >= 60% of the GPU's peak memory bandwidth: not measured ({how})")
        return
    print(f"  GPU peak memory bandwidth: {how}")
    for name, label, target in (("wgpu", "wgpu", " (target >= 60%: {})"), ("cupy", "cupy (reference)", "")):
        if name not in add:
            continue
        rate = nbytes / add[name]
        share = rate / peak
        verdict = target.format("met" if share >= 0.6 else "NOT met") if target else ""
        print(f"  {label}: {rate / 1e9:.1f} GB/s = {100 * share:.1f}% of the GPU's peak memory bandwidth{verdict}")


def table(title: str, rows: list[tuple[str, float, str]], base: str) -> None:
    """Print one section: name, median time, throughput and the ratio to ``base``."""
    print(f"\n{title}")
    ref = dict((n, t) for n, t, _ in rows)[base]
    for name, t, rate in rows:
        print(f"  {name:22s} {t * 1e6:12.1f} us  {rate:>16s}   x{t / ref:7.2f} time vs {base}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", action="store_true", help="4096^2 matmul and 64M-element add (real GPUs)")
    args = parser.parse_args(argv)
    info = probe("wgpu")
    if not info["available"]:
        print(f"wgpu unavailable: {info['reason']}")
        return 1
    be = get_backend("wgpu")
    d = be.describe()
    print(f"spiraltorch_nb {st.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}; "
          f"wgpu adapter: {d['device_name']} ({d['backend_type']}, {d['adapter_type']}); BLAS threads pinned to 1")

    ov = bench_overhead(be)
    table("1. per-op overhead, chain of 100 tiny ops (256 elements), incl. final synchronize",
          [(k, v, "") for k, v in ov.items()], "wgpu batched")

    for n in (256, 1024):
        mm = bench_matmul(n)
        table(f"2. matmul {n}x{n} float32", [(k, v, f"{2 * n**3 / v / 1e9:8.2f} GFLOP/s") for k, v in mm.items()],
              "cpu")
    n_add = 1 << 22
    add = bench_add(n_add)
    table(f"3. add, {n_add} float32 elements",
          [(k, v, f"{3 * 4 * n_add / v / 1e9:8.2f} GB/s") for k, v in add.items()], "cpu")
    mlp = bench_mlp()
    table("4. MLP 64-128-10 training step, batch 64", [(k, v, "") for k, v in mlp.items()], "cpu")

    if args.large:
        cupy = _cupy_or_none()
        n = 4096
        mm = bench_matmul(n, cupy, rounds=3)
        base = "cupy (cuBLAS)" if cupy is not None else "wgpu"
        table(f"5. matmul {n}x{n} float32", [(k, v, f"{2 * n**3 / v / 1e9:8.1f} GFLOP/s") for k, v in mm.items()],
              base)
        report_matmul_target(mm, n)
        n_add = 1 << 26
        add = bench_add(n_add, cupy, rounds=3)
        table(f"6. add, {n_add} float32 elements",
              [(k, v, f"{3 * 4 * n_add / v / 1e9:8.1f} GB/s") for k, v in add.items()],
              "cupy" if cupy is not None else "cpu")
        report_bandwidth_target(add, 3 * 4 * n_add, cupy)
    print(f"\nwgpu stats: {be.stats}; pool: {be.pool.stats}; pipelines: {be.pipelines.stats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
