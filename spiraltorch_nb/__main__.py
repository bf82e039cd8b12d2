"""Command line: ``python -m spiraltorch_nb demo`` (train a small model, headless) and ``info``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

__all__ = ["main"]


def _load_data(seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's bundled 8x8 digits when installed, else a synthetic 3-class spiral."""
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        return x, d.target.astype(np.int64), "scikit-learn digits (1797 images, 8x8, 10 classes)"
    except ImportError:
        rng = np.random.default_rng(seed)
        n = 600
        t = rng.uniform(0, 1, n)
        cls = rng.integers(0, 3, n)
        ang = t * 4.0 + cls * (2 * np.pi / 3) + rng.normal(0, 0.15, n)
        x = np.stack([t * np.cos(ang), t * np.sin(ang)], 1).astype(np.float32)
        return x, cls.astype(np.int64), "synthetic 3-class spiral (600 points; install scikit-learn for digits)"


def demo(epochs: int = 8, device: str = "cpu", seed: int = 0, out: Any = None) -> dict[str, Any]:
    """Train an MLP on the CPU (or ``device``), printing what happens; returns the final metrics."""
    import spiraltorch_nb as st

    out = out or sys.stdout

    def say(msg: str = "") -> None:
        print(msg, file=out, flush=True)

    st.manual_seed(seed)
    x, y, what = _load_data(seed)
    perm = np.random.default_rng(seed).permutation(len(x))
    x, y = x[perm], y[perm]
    n_test = len(x) // 5
    x_tr, y_tr, x_te, y_te = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    n_cls = int(y.max()) + 1
    say(f"spiraltorch_nb {st.__version__} demo")
    say(f"data: {what}; train {len(x_tr)}, test {len(x_te)}")
    model = st.nn.Sequential(st.nn.Linear(x.shape[1], 128), st.nn.ReLU(), st.nn.Linear(128, 64), st.nn.ReLU(),
                             st.nn.Linear(64, n_cls))
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    say(f"model: MLP {x.shape[1]}-128-64-{n_cls} ({n_params} parameters) on {device}")
    opt = st.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    train = st.train.DataLoader(x_tr, y_tr, batch_size=64, shuffle=True, seed=seed, device=device)
    test = st.train.DataLoader(x_te, y_te, batch_size=256, device=device)
    trainer = st.train.Trainer(model, st.nn.CrossEntropyLoss(), opt, progress=False)
    t0 = time.perf_counter()
    with st.telemetry.record() as rec:
        trainer.fit(train, test, epochs=epochs)
    elapsed = time.perf_counter() - t0
    wide = trainer.history.wide("epoch")
    for row in wide.iter_rows(named=True):
        say(f"epoch {row['epoch'] + 1:2d}/{epochs}: train loss {row.get('train_loss', float('nan')):.4f}  "
            f"val loss {row.get('val_loss', float('nan')):.4f}  val accuracy {row.get('val_accuracy', float('nan')):.3f}")
    final = trainer.evaluate(test)
    say(f"trained {epochs} epochs in {elapsed:.1f} s; test accuracy {final['accuracy']:.3f}")
    summary = rec.summary().head(5)
    say("where the time went (top ops):")
    width = max((len(op) for op in summary["op"]), default=0)
    for r in summary.iter_rows(named=True):
        say(f"  {r['op']:<{width}s}  {r['backend']:<5s} {r['count']:6d} calls  {r['share']:6.1%} of op time")
    return final


def info() -> None:
    """Print every device and why it is (un)available."""
    import spiraltorch_nb as st

    print(f"spiraltorch_nb {st.__version__}")
    for name in ("cpu", "wgpu", "cuda"):
        d = st.describe_device(name)
        state = f"available: {d.get('device_name')}" if d["available"] else f"unavailable: {d['reason']}"
        print(f"  {name:5s} {state}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spiraltorch_nb", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="train a small model headless and print what it did")
    p_demo.add_argument("--epochs", type=int, default=8)
    p_demo.add_argument("--device", default="cpu")
    p_demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("info", help="list devices and why each is (un)available")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(epochs=args.epochs, device=args.device, seed=args.seed)
        return 0
    if args.command == "info":
        info()
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
