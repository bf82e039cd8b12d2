"""The backend matrix and the operator coverage table, built from the backends' declarations.

Nothing here opens a device. Each backend's dtypes, kernel names and capabilities come
from what its module declares: class attributes, and kernel tables listed without a
device (``CUDABackend.declared_kernels``, ``wgpu.kernels.kernel_names``). The generated
pages therefore read the same on every machine, with or without a GPU.

``docs/backend_matrix.md`` and ``docs/op_coverage.md`` are written by::

    python -m spiraltorch_nb.backends.matrix --write docs/

and ``--check docs/`` exits with status 1, printing a diff, when a committed page is stale.

>>> rows = backend_matrix()
>>> [row["feature"] for row in rows][:2]
['runs', 'native array']
>>> next(r for r in op_coverage() if r["op"] == "add")["cpu"]
'native'
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

from ..dtypes import ALL_DTYPES
from .base import Backend

__all__ = [
    "BackendDeclaration",
    "declarations",
    "backend_matrix",
    "op_coverage",
    "render_backend_matrix",
    "render_op_coverage",
    "write_docs",
    "check_docs",
    "main",
    "PAGES",
]

#: what each backend needs on a machine (words for people; probe() says it for this machine)
_NEEDS = {
    "cpu": "nothing: always available",
    "cuda": "an NVIDIA GPU and CuPy: `pip install 'spiraltorch-nb[cuda13]'` (or `[cuda12]`)",
    "wgpu": "a WebGPU adapter: any GPU, or Mesa's lavapipe on the CPU (`apt-get install mesa-vulkan-drivers`)",
}

#: capability keys shown in their own rows, not in the "more" row
_SHOWN = {"dtypes", "ops", "fused", "autograd"}


@dataclass(frozen=True)
class BackendDeclaration:
    """What one backend declares it can do, gathered without opening a device.

    Attributes
    ----------
    name : str
        Device type ("cpu", "cuda", "wgpu").
    summary : str
        The first line of the backend class's docstring.
    native_array : str
        Import path of the array type a tensor's data has on this backend.
    dtypes : tuple of str
        dtypes every device of this backend holds.
    optional_dtypes : dict
        dtype name -> the condition under which a device holds it too.
    kernels : frozenset of str
        Operator names with a native forward on this backend.
    fused : tuple of str
        Operators whose native forward is one fused kernel instead of a chain of primitives.
    capabilities : dict
        The rest of ``Backend.capabilities()``.
    kernel_sources : tuple of str
        Kernel source files in ``kernels/`` (empty for the cpu).
    needs : str
        What a machine needs for the backend to be available.
    """

    name: str
    summary: str
    native_array: str
    dtypes: tuple[str, ...]
    optional_dtypes: dict[str, str] = field(default_factory=dict)
    kernels: frozenset[str] = frozenset()
    fused: tuple[str, ...] = ()
    capabilities: dict[str, Any] = field(default_factory=dict)
    kernel_sources: tuple[str, ...] = ()
    needs: str = ""


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0].rstrip(".")


def _type_path(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _capabilities_without_device(cls: type[Backend], **attrs: Any) -> dict[str, Any]:
    """``cls.capabilities()`` on an instance whose ``__init__`` never ran, so no device opens.

    ``capabilities()`` reads declarations only (dtypes, the kernel table, constants); the
    attributes it needs that ``__init__`` would set are passed in ``attrs``.
    """
    inst = cls.__new__(cls)
    for name, value in attrs.items():
        setattr(inst, name, value)
    return dict(cls.capabilities(inst))


def _kernel_files(subdir: str, suffix: str) -> tuple[str, ...]:
    from .._assets import asset_dir

    return tuple(sorted(p.name for p in (asset_dir("kernels") / subdir).glob(f"*{suffix}")))


def _cpu() -> BackendDeclaration:
    import numpy as np
    import scipy.special

    from ..device import Device
    from .array_kernels import build_kernels
    from .cpu import CPUBackend

    caps = CPUBackend(Device("cpu")).capabilities()  # the cpu backend opens nothing
    return BackendDeclaration(
        name="cpu", summary=_summary(CPUBackend), native_array=_type_path(np.ndarray),
        dtypes=tuple(d.name for d in CPUBackend.dtypes), kernels=frozenset(build_kernels(np, scipy.special)),
        fused=tuple(caps.get("fused", ())), capabilities=caps, needs=_NEEDS["cpu"])


def _cuda() -> BackendDeclaration:
    from .cuda import CUDABackend
    from .cuda.fused import KERNEL_FILES

    caps = _capabilities_without_device(CUDABackend)
    return BackendDeclaration(
        name="cuda", summary=_summary(CUDABackend), native_array="cupy.ndarray",
        dtypes=tuple(d.name for d in CUDABackend.dtypes), kernels=frozenset(CUDABackend.declared_kernels()),
        fused=tuple(caps.get("fused", ())), capabilities=caps,
        kernel_sources=tuple(f"cuda/{f}" for f in KERNEL_FILES), needs=_NEEDS["cuda"])


def _wgpu() -> BackendDeclaration:
    from .wgpu.backend import WGPUBackend
    from .wgpu.kernels import declared_dtypes, kernel_names

    names = kernel_names()
    base = declared_dtypes(False)
    extra = [d for d in declared_dtypes(True) if d not in base]
    caps = _capabilities_without_device(WGPUBackend, dtypes=base, kernels=lambda: dict.fromkeys(names))
    return BackendDeclaration(
        name="wgpu", summary=_summary(WGPUBackend), native_array=_type_path(WGPUBackend.native_type),
        dtypes=tuple(d.name for d in base),
        optional_dtypes={d.name: "where the adapter has the `shader-f16` feature" for d in extra},
        kernels=frozenset(names), fused=tuple(caps.get("fused", ())), capabilities=caps,
        kernel_sources=tuple(f"wgsl/{f}" for f in _kernel_files("wgsl", ".wgsl")), needs=_NEEDS["wgpu"])


_DECLARERS: dict[str, Callable[[], BackendDeclaration]] = {"cpu": _cpu, "cuda": _cuda, "wgpu": _wgpu}


def declarations() -> dict[str, BackendDeclaration]:
    """Every backend's declaration, by device type, in the order of ``BACKEND_MODULES``.

    Raises
    ------
    KeyError
        When a backend is registered in ``BACKEND_MODULES`` but this module does not know
        how to read its declarations (add a function to ``_DECLARERS``).
    """
    from . import BACKEND_MODULES

    out = {}
    for name in BACKEND_MODULES:
        if name not in _DECLARERS:
            raise KeyError(f"backend {name!r} has no declaration reader in spiraltorch_nb.backends.matrix; "
                           f"add one to _DECLARERS")
        out[name] = _DECLARERS[name]()
    return out


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


def backend_matrix(decls: dict[str, BackendDeclaration] | None = None) -> list[dict[str, str]]:
    """The support table: one row per feature, one column per backend.

    Parameters
    ----------
    decls : dict, optional
        Declarations to tabulate; by default :func:`declarations`.

    Returns
    -------
    list of dict
        Rows ``{"feature": ..., "cpu": ..., "cuda": ..., "wgpu": ...}``; dtype rows are
        named ``dtype <name>``.
    """
    decls = decls if decls is not None else declarations()
    names = list(decls)
    ops = _builtin_ops()

    def row(feature: str, cell: Callable[[BackendDeclaration], str]) -> dict[str, str]:
        return {"feature": feature, **{n: cell(decls[n]) for n in names}}

    def native_count(d: BackendDeclaration) -> str:
        return str(sum(1 for op in ops if op.name in d.kernels))

    def composite_count(d: BackendDeclaration) -> str:
        return str(sum(1 for op in ops if op.name not in d.kernels and op.composite is not None))

    def more(d: BackendDeclaration) -> str:
        keys = sorted(k for k, v in d.capabilities.items() if k not in _SHOWN and v is True)
        return ", ".join(keys) or "—"

    def dtype_cell(d: BackendDeclaration, dtype: str) -> str:
        if dtype in d.dtypes:
            return "yes"
        return d.optional_dtypes.get(dtype, "no")

    rows = [
        row("runs", lambda d: d.summary),
        row("native array", lambda d: f"`{d.native_array}`"),
        row("needs", lambda d: d.needs),
        row("autograd", lambda d: _yes(d.capabilities.get("autograd"))),
        row("operators with a native kernel", native_count),
        row("operators composed of primitives", composite_count),
        row("fused kernels", lambda d: ", ".join(f"`{f}`" for f in d.fused) or "—"),
        row("kernel sources", lambda d: ", ".join(f"`kernels/{f}`" for f in d.kernel_sources)
            or "NumPy and SciPy"),
        row("more capabilities", more),
    ]
    rows += [row(f"dtype {dt.name}", partial(dtype_cell, dtype=dt.name)) for dt in ALL_DTYPES]
    return rows


def _builtin_ops() -> list[Any]:
    from ..ops.registry import global_operator_registry

    # registration order: the families come out grouped as the ops modules define them
    ops = cast("Iterable[Any]", global_operator_registry())
    return [op for op in ops if op.builtin]


def _forward_kind(op: Any, d: BackendDeclaration) -> str:
    if op.name in d.kernels:
        return "fused kernel" if op.name in d.fused else "native"
    if op.composite is not None:
        return "composite"
    if op.name == "to_device":  # Tensor.to copies through the host, outside any backend's table
        return "host copy"
    return "—"


def _backward_kind(op: Any, op_names: set[str]) -> str:
    if op.differentiable is False:
        return "not differentiable"
    if op.backward is None:
        return "none (a first-order helper)" if op.name.endswith("_backward") else "none registered"
    text = "formula in Tensor ops (higher order)"
    helper = f"{op.name}_backward"
    if helper in op_names:
        text += f"; first order via `{helper}`"
    return text


def op_coverage(decls: dict[str, BackendDeclaration] | None = None) -> list[dict[str, str]]:
    """The operator coverage table: one row per built-in operator.

    Each backend's cell says how the forward runs there: ``native`` (a kernel of the
    backend), ``fused kernel``, ``composite`` (written with other operators, so it runs
    wherever they do), ``host copy`` (``to_device``) or ``—`` (not available). The
    ``backward`` cell says how gradients are computed; backward formulas are Tensor
    operations, so they run on every backend the forward runs on.

    Returns
    -------
    list of dict
        Rows ``{"op", "inputs", <backend>..., "backward"}`` in registration order.
    """
    decls = decls if decls is not None else declarations()
    ops = _builtin_ops()
    names = {op.name for op in ops}
    rows = []
    for op in ops:
        r = {"op": op.name, "inputs": "any" if op.num_inputs < 0 else str(op.num_inputs)}
        r.update({n: _forward_kind(op, d) for n, d in decls.items()})
        r["backward"] = _backward_kind(op, names)
        rows.append(r)
    return rows


_HEADER = ("<!-- generated by `python -m spiraltorch_nb.backends.matrix --write docs/`: do not edit by hand; "
           "tests/docs/test_backend_matrix.py fails when this page is stale -->")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_backend_matrix(decls: dict[str, BackendDeclaration] | None = None) -> str:
    """``docs/backend_matrix.md``: the support table and each backend's native operators."""
    decls = decls if decls is not None else declarations()
    names = list(decls)
    rows = backend_matrix(decls)
    features = [r for r in rows if not r["feature"].startswith("dtype ")]
    dtypes = [r for r in rows if r["feature"].startswith("dtype ")]
    ops = {op.name for op in _builtin_ops()}
    parts = [
        _HEADER,
        "# Backend matrix",
        "What each backend declares it supports. The page is generated from the backends' "
        "declarations (dtypes, kernel tables, capabilities), not from whichever devices the "
        "machine that built it has, so it reads the same everywhere. To see what *this* machine "
        "can use, run `st.available_devices()` or `python -m spiraltorch_nb info`; per-operator "
        "detail is in the [operator coverage table](op_coverage.md).",
        "## Backends",
        _table(["", *names], [[r["feature"], *(r[n] for n in names)] for r in features]),
        "## dtypes",
        "Tensors of a dtype a backend does not hold cannot be moved there: the error names the "
        "dtype and the backend, and `.to(dtype)` first is the fix (for example `float64` to "
        "`float32` before `.to(\"wgpu\")`).",
        _table(["dtype", *names], [[r["feature"].removeprefix("dtype "), *(r[n] for n in names)] for r in dtypes]),
        "## Native kernels by backend",
        "Operators not listed for a backend run there as composites of the listed ones "
        "(or, where neither exists, are unavailable on it).",
    ]
    for n, d in decls.items():
        listed = ", ".join(f"`{k}`" for k in sorted(d.kernels & ops))
        parts.append(f"**{n}** ({len(d.kernels & ops)}): {listed}")
        orphans = sorted(d.kernels - ops)
        if orphans:
            parts.append(f"Kernels of {n} with no built-in operator of that name (unused): "
                         + ", ".join(f"`{k}`" for k in orphans))
    return "\n\n".join(parts) + "\n"


def render_op_coverage(decls: dict[str, BackendDeclaration] | None = None) -> str:
    """``docs/op_coverage.md``: which built-in operators run how on which backend."""
    decls = decls if decls is not None else declarations()
    names = list(decls)
    rows = op_coverage(decls)
    totals = []
    for n in names:
        kinds = [r[n] for r in rows]
        native = sum(k in ("native", "fused kernel") for k in kinds)
        totals.append(f"**{n}**: {native} native, {kinds.count('composite')} composite, "
                      f"{kinds.count('—')} unavailable")
    try:
        from ..nn import functional as F

        functional = ", ".join(f"`{f}`" for f in sorted(F.__all__))
    except ImportError:  # nn is optional for this table
        functional = ""
    parts = [
        _HEADER,
        "# Operator coverage",
        "Every built-in operator in the registry, how its forward runs on each backend and how "
        "its gradient is computed. `native`: a kernel of that backend; `fused kernel`: one kernel "
        "for what would otherwise be a chain of primitives; `composite`: written with other "
        "operators, so it runs wherever they do; `—`: not available there. Backward formulas "
        "are written with Tensor operations, so they run on every backend the forward runs on and "
        "can be differentiated again (`create_graph=True`). Custom operators registered at run "
        "time are listed by `st.ops.global_operator_registry().list()`.",
        "; ".join(totals) + ".",
        _table(["op", "inputs", *names, "backward"], [[f"`{r['op']}`", r["inputs"], *(r[n] for n in names),
                                                        r["backward"]] for r in rows]),
    ]
    if functional:
        parts += ["## Functions built on the operators",
                  "`spiraltorch_nb.nn.functional` composes the operators above, so each of these runs "
                  "on every backend that has the operators it uses: " + functional + "."]
    return "\n\n".join(parts) + "\n"


#: generated page name -> renderer
PAGES: dict[str, Callable[[], str]] = {
    "backend_matrix.md": render_backend_matrix,
    "op_coverage.md": render_op_coverage,
}


def write_docs(directory: str | Path) -> list[Path]:
    """Write every generated page into ``directory``; returns the paths written."""
    out = Path(directory)
    if not out.is_dir():
        raise FileNotFoundError(f"{out} is not a directory; pass the docs folder, e.g. --write docs/")
    written = []
    for name, render in PAGES.items():
        path = out / name
        path.write_text(render(), encoding="utf-8")
        written.append(path)
    return written


def check_docs(directory: str | Path) -> list[str]:
    """Unified diffs of the pages in ``directory`` that differ from what would be generated (empty: up to date)."""
    out = Path(directory)
    diffs = []
    for name, render in PAGES.items():
        path = out / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        fresh = render()
        if current != fresh:
            diff = difflib.unified_diff(current.splitlines(), fresh.splitlines(), f"{path} (committed)",
                                        f"{path} (generated)", lineterm="", n=1)
            diffs.append("\n".join(diff))
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--write DIR`` regenerates the pages, ``--check DIR`` reports stale ones."""
    parser = argparse.ArgumentParser(prog="python -m spiraltorch_nb.backends.matrix", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="DIR", help="write backend_matrix.md and op_coverage.md into DIR")
    group.add_argument("--check", metavar="DIR", help="exit 1 when a page in DIR is stale")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_docs(args.write):
            print(f"wrote {path}")
        return 0
    if args.check:
        diffs = check_docs(args.check)
        for d in diffs:
            print(d)
        if diffs:
            print(f"stale: regenerate with  python -m spiraltorch_nb.backends.matrix --write {args.check}")
            return 1
        print("up to date")
        return 0
    print(render_backend_matrix())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
