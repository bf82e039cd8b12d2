"""Fixtures for the training tests.

The models here are small: single-threaded BLAS (and a single PyTorch thread) is as
fast for them, and it does not collapse when the machine's two cores are busy: idle
OpenBLAS and OpenMP threads spin while they wait, which made some of these fits ten
times slower under load.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_math() -> Iterator[None]:
    torch = sys.modules.get("torch")  # only when a test module imported it already
    prev = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, run as configured
        limits = None
    else:
        limits = threadpool_limits(limits=1, user_api="blas")
    try:
        yield
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if torch is not None and prev is not None:
            torch.set_num_threads(prev)
