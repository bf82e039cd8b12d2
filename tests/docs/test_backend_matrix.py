"""The generated backend matrix and operator coverage pages: fresh, and machine-independent.

The pages are rendered from the backends' declarations only. These tests fail when a
committed page is stale, when rendering would touch a device, and when a declaration
drifts from the kernel table the backend really installs.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import spiraltorch_nb.backends as backends
from spiraltorch_nb.backends import matrix
from spiraltorch_nb.ops.registry import global_operator_registry

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "python -m spiraltorch_nb.backends.matrix --write docs/"


def test_committed_pages_are_up_to_date() -> None:
    diffs = matrix.check_docs(DOCS)
    assert not diffs, f"the generated pages are stale; regenerate with  {REGENERATE}\n\n" + "\n\n".join(diffs)


def test_rendering_never_asks_for_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = {name: render() for name, render in matrix.PAGES.items()}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the matrix must be built from declarations, not from this machine's devices")

    monkeypatch.setattr(backends, "probe", refuse)
    monkeypatch.setattr(backends, "get_backend", refuse)
    monkeypatch.setattr(backends, "describe", refuse)
    for name, render in matrix.PAGES.items():
        assert render() == expected[name], f"{name} depends on this machine's devices"


def test_the_matrix_has_a_column_per_backend_and_a_row_per_dtype() -> None:
    rows = matrix.backend_matrix()
    assert all(set(r) == {"feature", *backends.BACKEND_MODULES} for r in rows)
    features = [r["feature"] for r in rows]
    assert {"dtype float32", "dtype float64", "fused kernels", "native array"} <= set(features)
    by_feature = {r["feature"]: r for r in rows}
    assert by_feature["dtype float64"]["cpu"] == "yes" and by_feature["dtype float64"]["wgpu"] == "no"


def test_every_builtin_operator_is_covered_and_runs_on_the_cpu() -> None:
    rows = {r["op"]: r for r in matrix.op_coverage()}
    builtins = {op.name for op in global_operator_registry() if op.builtin}
    assert set(rows) == builtins
    unavailable = sorted(name for name, r in rows.items() if r["cpu"] == "—")
    assert not unavailable, f"every operator must run on the cpu (the reference); missing: {unavailable}"
    assert rows["add"]["cpu"] == "native" and rows["fused_bias_gelu"]["cpu"] == "composite"
    assert rows["eq"]["backward"] == "not differentiable"
    assert rows["exp"]["backward"].startswith("formula")


def test_wgpu_declared_kernels_match_the_installed_table() -> None:
    info = backends.probe("wgpu")
    if not info["available"]:
        pytest.skip(f"wgpu unavailable: {info['reason']}")
    from spiraltorch_nb.backends.wgpu.kernels import declared_dtypes, kernel_names

    be = backends.get_backend("wgpu")
    assert sorted(be.kernels()) == kernel_names()
    assert tuple(be.dtypes) in (declared_dtypes(False), declared_dtypes(True))


def test_cuda_fused_ops_declaration_matches_fused_kernels() -> None:
    # read fused_kernels' returned dict from its source: this runs without CuPy or a GPU
    from spiraltorch_nb.backends.cuda import fused

    tree = ast.parse(inspect.getsource(fused.fused_kernels))
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return) and isinstance(n.value, ast.Dict)]
    assert returns, "fused_kernels should end by returning a dict literal of name -> kernel"
    keys = {k.value for k in returns[-1].value.keys if isinstance(k, ast.Constant)}
    assert keys == set(fused.FUSED_OPS), (
        f"FUSED_OPS in backends/cuda/fused.py is out of date: fused_kernels returns {sorted(keys)}")


def test_cuda_declared_kernels_match_the_installed_table() -> None:
    info = backends.probe("cuda")
    if not info["available"]:
        pytest.skip(f"cuda unavailable: {info['reason']}")
    from spiraltorch_nb.backends.cuda import CUDABackend

    assert sorted(backends.get_backend("cuda").kernels()) == CUDABackend.declared_kernels()


def test_check_mode_reports_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix.write_docs(tmp_path)
    assert matrix.main(["--check", str(tmp_path)]) == 0
    page = tmp_path / "op_coverage.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| `add` |", "| `plus` |"), encoding="utf-8")
    assert matrix.main(["--check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "stale" in out and "plus" in out
