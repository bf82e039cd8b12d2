"""Shared fixtures: the list of backends the conformance suites run on.

Every available backend is tested. In CI (``CI=true``) the wgpu backend must be
available (Mesa's lavapipe/llvmpipe provide an adapter without a GPU): its absence
fails the run instead of skipping. cuda skips with the reason when no GPU is present.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per process: on a loaded 2-core machine, spinning worker
# threads of OpenBLAS and PyTorch slowed single fits ten-fold. Set before NumPy/torch
# start their pools (and enforced again below for pools already running).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

import spiraltorch_nb as st  # noqa: E402
from spiraltorch_nb.backends import probe  # noqa: E402

try:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:  # scikit-learn brings it in the dev extra; without it the env vars above apply
    pass

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("cpu", "wgpu", "cuda")


def backend_params() -> list:
    """pytest params for every backend; unavailable ones are skipped with their reason."""
    params = []
    for name in BACKENDS:
        info = probe(name)
        marks = []
        # in CI an absent wgpu adapter is a failure (the fixture fails), never a skip
        if not info["available"] and not (name == "wgpu" and IN_CI):
            marks.append(pytest.mark.skip(reason=f"{name} unavailable: {info['reason']}"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """In CI, a test that skipped because wgpu is unavailable fails instead, wherever the skip is."""
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "wgpu unavailable" in reason:
            report.outcome = "failed"
            report.longrepr = f"wgpu must be available here (CI=true), but the test skipped: {reason}"
    return report


@pytest.fixture(params=backend_params())
def device(request: pytest.FixtureRequest) -> str:
    """Each available backend's device name in turn ("cpu", "wgpu", "cuda")."""
    name = request.param
    info = probe(name)
    if not info["available"]:
        pytest.fail(f"{name} must be available here (CI=true) but is not: {info['reason']}")
    return name


@pytest.fixture(autouse=True)
def _seed_and_reset() -> None:
    st.manual_seed(0)
    yield
    st.set_default_device("cpu")


# this file configures the suite; it is not a test module for --doctest-modules
collect_ignore = ["conftest.py"]
