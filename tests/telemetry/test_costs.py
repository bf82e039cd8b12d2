"""FLOP estimates: the per-call rules and their vectorized form agree."""

from __future__ import annotations

import polars as pl
import pytest

from spiraltorch_nb.telemetry import OPS_SCHEMA, estimate_flops
from spiraltorch_nb.telemetry.costs import REDUCTION_OPS, ZERO_FLOP_OPS, flops_column

CASES = [
    ("matmul", [(128, 784), (784, 256)], 128 * 256, 2 * 128 * 256 * 784),
    ("matmul", [(4, 5, 6), (6, 7)], 4 * 5 * 7, 2 * 4 * 5 * 7 * 6),
    ("matmul", [(6,), (6,)], 1, 12),
    ("linear", [(8, 3), (5, 3), (5,)], 40, 2 * 40 * 3 + 40),
    ("linear", [(8, 3), (5, 3)], 40, 2 * 40 * 3),
    ("unfold", [(1, 3, 8, 8)], 3 * 9 * 36, 0),
    ("reshape", [(4, 4)], 16, 0),
    ("sum", [(10, 20)], 10, 200),
    ("sum", [()], 1, 1),
    ("amax", [(3, 4, 5)], 3, 60),
    ("softmax", [(2, 10)], 20, 100),
    ("add", [(4, 3), (3,)], 12, 12),
    ("exp", [(7,)], 7, 7),
    ("where", [(5,), (5,), (5,)], 5, 5),
    # dx (64x128), dweight (10x128) and dbias (10) of a 128 -> 10 linear over 64 rows
    ("linear_backward", [(64, 10), (64, 128), (10, 128)], 64 * 128 + 10 * 128 + 10, 2 * 2 * 64 * 128 * 10 + 640),
    ("linear_backward", [(64, 10), (64, 128), (10, 128)], 10 * 128 + 10, 2 * 64 * 128 * 10 + 640),  # no dx
    ("linear_backward", [(2, 3, 4), (2, 3, 5), (4, 5)], 4 * 5, 2 * 6 * 5 * 4),  # dweight only
    # da (128x784) and db (784x256) of a (128x784) @ (784x256)
    ("matmul_backward", [(128, 256), (128, 784), (784, 256)], 128 * 784 + 784 * 256, 2 * 2 * 128 * 784 * 256),
    ("matmul_backward", [(128, 256), (128, 784), (784, 256)], 784 * 256, 2 * 128 * 784 * 256),  # db only
    ("matmul_backward", [(0, 256), (0, 784), (784, 256)], 784 * 256, 0),  # no rows: no work
]


@pytest.mark.parametrize(("op", "shapes", "numel", "expected"), CASES)
def test_scalar_rules(op, shapes, numel, expected):
    assert estimate_flops(op, shapes, numel) == expected


def test_vectorized_rules_match_the_scalar_ones():
    ops = pl.Series([c[0] for c in CASES], dtype=pl.String)
    shapes = pl.Series([[list(s) for s in c[1]] for c in CASES], dtype=OPS_SCHEMA["shapes"])
    numel = pl.Series([c[2] for c in CASES], dtype=pl.Int64)
    assert flops_column(ops, shapes, numel).to_list() == [c[3] for c in CASES]


def test_rule_sets_are_disjoint():
    assert not ZERO_FLOP_OPS & REDUCTION_OPS
