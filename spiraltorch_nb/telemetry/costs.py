"""Estimated floating-point operations per dispatched op, from shapes alone.

Estimates, not counts: they are what the achieved GFLOP/s in ``rec.summary()`` divide
by. The rules:

* ``matmul``: ``2 * M * N * K * batch``, computed as ``2 * numel(out) * K`` (the same
  number for every broadcast and 1-d case); ``linear`` adds ``numel(out)`` for a bias.
* convolution composes ``unfold`` and ``matmul``, so it is counted through its parts;
  layout and data-movement ops (``unfold``, ``reshape``, ``permute``, ``expand``,
  ``cat``, ``getitem``, ``gather``, ``cast``, ``clone``, ``to_device``...) count 0.
* reductions (``sum``, ``mean``, ``amax``...) count ``numel(input)``.
* fused ``softmax`` / ``log_softmax`` count ``5 * numel``.
* every other op is treated as elementwise: ``numel(output)``.

An operator may declare its own estimate in its metadata:
``OperatorBuilder(...).with_metadata(flops=lambda shapes, out_numel: ...)``, where
``shapes`` are the tensor inputs' shapes and ``out_numel`` the first output's element
count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import polars as pl

__all__ = ["estimate_flops", "flops_rule", "flops_column", "ZERO_FLOP_OPS", "REDUCTION_OPS"]

Shapes = Sequence[Sequence[int]]
Rule = Callable[[Shapes, int], int]

#: ops that only move or view data
ZERO_FLOP_OPS = frozenset({
    "unfold", "reshape", "permute", "expand", "flip", "cat", "getitem", "gather", "index_put",
    "pad", "cast", "clone", "to_device", "transpose", "squeeze", "unsqueeze", "view", "contiguous",
    "stack", "split", "index_select",
})

#: ops whose work scales with the input, not the (smaller) output
REDUCTION_OPS = frozenset({
    "sum", "mean", "prod", "amax", "amin", "argmax", "argmin", "cumsum", "logsumexp", "var", "std",
    "fold",
})


def _matmul(shapes: Shapes, out_numel: int) -> int:
    if not shapes or not shapes[0]:
        return 0
    return 2 * out_numel * int(shapes[0][-1])


def _linear(shapes: Shapes, out_numel: int) -> int:
    bias = out_numel if len(shapes) > 2 else 0
    return _matmul(shapes, out_numel) + bias


def _zero(shapes: Shapes, out_numel: int) -> int:
    return 0


def _reduction(shapes: Shapes, out_numel: int) -> int:
    return math.prod(shapes[0]) if shapes else out_numel


def _softmax(shapes: Shapes, out_numel: int) -> int:
    return 5 * out_numel


def _elementwise(shapes: Shapes, out_numel: int) -> int:
    return out_numel


_BUILTIN: dict[str, Rule] = {"matmul": _matmul, "linear": _linear, "softmax": _softmax,
                             "log_softmax": _softmax}
_BUILTIN.update(dict.fromkeys(ZERO_FLOP_OPS, _zero))
_BUILTIN.update(dict.fromkeys(REDUCTION_OPS, _reduction))


def flops_rule(op_name: str) -> Rule:
    """The estimate used for ``op_name``: the operator's ``flops`` metadata, a built-in rule, or numel."""
    from ..ops.registry import global_operator_registry

    reg = global_operator_registry()
    if op_name in reg:
        custom = reg.get(op_name).metadata.get("flops")
        if callable(custom):
            return custom
    return _BUILTIN.get(op_name, _elementwise)


def estimate_flops(op_name: str, shapes: Shapes, out_numel: int) -> int:
    """Estimated floating-point operations of one call.

    >>> estimate_flops("matmul", [(128, 784), (784, 256)], 128 * 256)
    51380224
    >>> estimate_flops("add", [(4, 3), (3,)], 12), estimate_flops("unfold", [(1, 3, 8, 8)], 432)
    (12, 0)
    """
    return int(flops_rule(op_name)(shapes, out_numel))


def _custom_rule(op_name: str) -> Rule | None:
    rule = flops_rule(op_name)
    return None if _BUILTIN.get(op_name, _elementwise) is rule else rule


def flops_column(ops: pl.Series, shapes: pl.Series, out_numel: pl.Series) -> pl.Series:
    """:func:`estimate_flops` for a whole column of events at once (Int64, null where unknown).

    The built-in rules run as one Polars expression; only ops with a ``flops`` rule in
    their metadata are evaluated row by row.
    """
    df = pl.DataFrame({"op": ops, "shapes": shapes, "n": out_numel})
    op = pl.col("op")
    n = pl.col("n")
    first = pl.col("shapes").list.first()
    k = first.list.last()
    numel_in = first.list.eval(pl.element().product()).list.first().fill_null(1)
    bias = pl.when(pl.col("shapes").list.len() > 2).then(n).otherwise(0)
    expr = (pl.when(op.is_in(list(ZERO_FLOP_OPS))).then(0)
            .when(op == "matmul").then(2 * n * k)
            .when(op == "linear").then(2 * n * k + bias)
            .when(op.is_in(list(REDUCTION_OPS))).then(pl.when(pl.col("shapes").list.len() > 0)
                                                       .then(numel_in).otherwise(n))
            .when(op.is_in(["softmax", "log_softmax"])).then(5 * n)
            .otherwise(n))
    out = df.select(flops=expr.cast(pl.Int64))["flops"]
    custom = {name: rule for name in ops.unique().to_list() if (rule := _custom_rule(name)) is not None}
    if custom:
        values = out.to_list()
        names = ops.to_list()
        shp = shapes.to_list()
        numel = out_numel.to_list()
        for i, name in enumerate(names):
            rule = custom.get(name)
            if rule is not None:
                try:
                    values[i] = int(rule([tuple(s) for s in shp[i]], numel[i]))
                except Exception:  # a failing custom estimate leaves the cell empty
                    values[i] = None
        out = pl.Series("flops", values, dtype=pl.Int64)
    return out
