"""The tape: nodes recorded by dispatch, and the reverse-mode engine that walks them.

Every recorded op leaves one :class:`Node` holding the operator, its inputs, its
attributes and edges to where gradients go (the producing node of a non-leaf input,
or the leaf tensor itself). Backward formulas are Tensor operations, so running the
engine with ``create_graph=True`` records the backward pass too: gradients of
gradients come for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import AutogradError, OperatorError
from .grad_mode import state as _state

__all__ = ["Node", "backward", "grad", "RemovableHandle"]

_Tensor: Any = None  # bound by tensor.py


class Node:
    """One recorded operation (``tensor.grad_fn``)."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "edges", "versions", "hooks", "freed",
                 "out_meta", "__weakref__")
    # declared for type checkers (annotations only: the slots above hold the values)
    op: Any
    inputs: tuple[Any, ...]
    attrs: dict[str, Any]
    outputs: tuple[Any, ...] | None
    edges: list[Any]
    versions: list[int | None] | None
    hooks: dict[int, list[Callable[..., Any]]] | None
    freed: bool
    out_meta: list[int] | None

    def __init__(self, op: Any, inputs: tuple, attrs: dict, outputs: tuple) -> None:
        T = _Tensor
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.hooks = None
        self.freed = False
        saves = op.saves_inputs
        edges: list[Any] = []
        versions: list[int | None] | None = [] if saves else None
        for a in inputs:
            if a.__class__ is T:  # Tensor has no subclasses
                if a.requires_grad:
                    node = a._node
                    edges.append((node, a._oidx) if node is not None else a)
                else:
                    edges.append(None)
                if versions is not None:  # not None exactly when the op saves its inputs
                    versions.append(a._ver[0])
            else:
                edges.append(None)
                if versions is not None:
                    versions.append(None)
        self.edges = edges
        self.versions = versions
        multi = len(outputs) > 1
        self.outputs = outputs if (op.saves_output or multi) else None
        self.out_meta = [(o._ver[0]) for o in outputs] if op.saves_output else None
        i = 0
        for o in outputs:
            if o._data.dtype.kind == "f":  # NumPy/CuPy dtypes and wgpu DTypes share the kind letter
                o.requires_grad = True
                o._node = self
                o._oidx = i
            i += 1

    @property
    def name(self) -> str:
        return self.op.name

    def __repr__(self) -> str:
        return f"<{self.op.name}Backward>"

    def next_functions(self) -> list[Any]:
        """Where this node sends gradients: parent nodes, or leaf tensors."""
        return [e[0] if isinstance(e, tuple) else e for e in self.edges if e is not None]

    def _check_saved(self) -> None:
        if self.freed:
            raise AutogradError(
                f"trying to backward through the graph a second time (through '{self.op.name}'): "
                "its saved tensors were freed after the first backward. Pass retain_graph=True to "
                "the first backward() if you need to go through the graph again.", op=self.op.name)
        T = _Tensor
        if self.versions is not None:
            for a, v in zip(self.inputs, self.versions, strict=False):
                if v is not None and isinstance(a, T) and a._ver[0] != v:
                    _raise_version(self.op.name, a, v)
        if self.out_meta is not None and self.outputs is not None:  # both kept when saves_output
            for o, v in zip(self.outputs, self.out_meta, strict=False):
                if o._ver[0] != v:
                    _raise_version(self.op.name, o, v)


def _raise_version(opname: str, t: Any, v: int) -> None:
    msg = (f"a tensor of shape {tuple(t.shape)} needed to compute the gradient of '{opname}' was "
           f"modified by an in-place operation (version {t._ver[0]}, expected {v}); use an "
           "out-of-place op (y = y + 1 instead of y += 1) or .clone() it before changing it")
    raise AutogradError(msg, op=opname)


class RemovableHandle:
    """Returned by ``register_hook``: call ``.remove()`` to take the hook off."""

    __slots__ = ("_list", "_fn")

    def __init__(self, lst: list, fn: Callable[..., Any]) -> None:
        self._list = lst
        self._fn = fn

    def remove(self) -> None:
        try:
            self._list.remove(self._fn)
        except ValueError:
            pass

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# ---------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------

def _root_grads(tensors: Sequence[Any], grads: Sequence[Any] | None, fn: str) -> list[Any]:
    T = _Tensor
    out = []
    for i, t in enumerate(tensors):
        g = grads[i] if grads is not None and i < len(grads) else None
        if not t.requires_grad:
            raise AutogradError(
                f"{fn}: element {i} of the outputs does not require grad and has no grad_fn; "
                "make sure an input was created with requires_grad=True and that you are not "
                "inside st.no_grad()")
        if g is None:
            shape = t._be.shape_of(t._data)
            if shape and (len(shape) > 1 or shape[0] != 1):
                raise AutogradError(
                    f"{fn}: the output has shape {tuple(t.shape)}; a gradient can be created implicitly "
                    "only for a scalar. Reduce it first (y.sum().backward()) or pass gradient="
                    "st.ones_like(y)")
            g = T._wrap(t._be.full(shape, 1, t.dtype), t._be)
            out.append(g)
            continue
        elif not isinstance(g, T):
            from ..ops import creation

            g = creation.tensor(g, dtype=t.dtype, device=t.device)
        if tuple(g.shape) != tuple(t.shape):
            raise AutogradError(f"{fn}: gradient has shape {tuple(g.shape)} but the output has shape {tuple(t.shape)}")
        out.append(g)
    return out


def _run(
    roots: Sequence[Any],
    root_grads: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    capture: dict[int | tuple[int, int], Any] | None = None,
) -> dict[Any, Any]:
    """Walk the graph from ``roots``; accumulate into leaves, or capture for ``st.grad``.

    ``capture`` maps ``id(edge key)`` of wanted inputs to their gradient (filled in).
    """
    T = _Tensor
    # edges into the graph: (node, idx) for non-leaves, the tensor for leaves
    buffers: dict[Node, list[Any]] = {}
    leaf_grads: list[tuple[Any, Any]] = []
    starts: list[Node] = []
    for t, g in zip(roots, root_grads, strict=True):
        if t._node is None:
            leaf_grads.append((t, g))
            continue
        node = t._node
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * max(1, node.op.num_outputs)
            starts.append(node)
        buf[t._oidx] = g if buf[t._oidx] is None else buf[t._oidx] + g

    # dependency counts over the reachable graph (iterative DFS)
    deps: dict[Node, int] = {}
    stack = list(starts)
    seen = set(starts)
    while stack:
        node = stack.pop()
        for e in node.edges:
            if e.__class__ is tuple and e[0] is not None:
                parent = e[0]
                deps[parent] = deps.get(parent, 0) + 1
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
    needed = None
    terminal: set[Node] = set()
    if capture is not None:
        # st.grad: walk only the nodes that lead to a wanted input, and leave the rest
        # of the graph (and its saved tensors) untouched
        needed, terminal = _nodes_leading_to(starts, capture)
        deps = {}
        for node in needed:
            for e in node.edges:
                if e.__class__ is tuple and e[0] in needed:
                    deps[e[0]] = deps.get(e[0], 0) + 1
        starts = [n for n in starts if n in needed]

    prev_enabled, prev_phase = _state.enabled, _state.phase
    _state.enabled = create_graph
    _state.phase = "backward"
    try:
        ready = [n for n in starts if deps.get(n, 0) == 0]
        pop_buffer = buffers.pop
        while ready:
            node = ready.pop()
            grads_out = pop_buffer(node)
            if node.hooks:
                for idx, hooks in node.hooks.items():
                    for h in list(hooks):
                        r = h(grads_out[idx])
                        if r is not None:
                            grads_out[idx] = r
            if capture is not None:
                for idx in range(len(grads_out)):
                    key: int | tuple[int, int] = (id(node), idx)
                    if key in capture:
                        capture[key] = grads_out[idx]
                if node in terminal:
                    continue
            in_grads = _call_backward(node, grads_out)
            for e, g in zip(node.edges, in_grads, strict=False):
                if e is None:
                    continue
                if e.__class__ is tuple:
                    parent, idx = e
                    if needed is not None and parent not in needed:
                        continue
                    if g is not None:
                        buf = buffers.get(parent)
                        if buf is None:
                            buf = buffers[parent] = [None] * parent.op.num_outputs
                        buf[idx] = g if buf[idx] is None else buf[idx] + g
                    d = deps[parent] - 1
                    deps[parent] = d
                    if d == 0:
                        if parent in buffers:
                            ready.append(parent)
                        else:
                            _release_subgraph(parent, deps, ready, buffers, needed)
                elif g is not None:
                    leaf_grads.append((e, g))
            if not retain_graph:
                node.inputs = None  # type: ignore[assignment]  # freed: _check_saved raises before a read
                node.outputs = None
                node.freed = True
        for leaf, g in leaf_grads:
            if capture is not None:
                key = id(leaf)
                if key in capture:
                    prev = capture[key]
                    capture[key] = g if prev is None else prev + g
                continue
            hooks = leaf._hooks
            if hooks:
                for h in list(hooks):
                    r = h(g)
                    if r is not None:
                        g = r
            if not create_graph and g.requires_grad:
                g = g.detach()
            leaf.grad = g if leaf.grad is None else leaf.grad + g
    finally:
        _state.enabled, _state.phase = prev_enabled, prev_phase
    del T
    return buffers


def _nodes_leading_to(starts: Sequence[Node], capture: dict[Any, Any]) -> tuple[set[Node], set[Node]]:
    """Nodes reachable from ``starts`` through which a gradient reaches a captured input."""
    cap_nodes = {k[0] for k in capture if isinstance(k, tuple)}
    cap_leaves = {k for k in capture if not isinstance(k, tuple)}
    order: list[Node] = []
    visited: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(n, False) for n in starts]
    while stack:  # iterative post-order: a node comes after every node it depends on
        n, done = stack.pop()
        if done:
            order.append(n)
            continue
        if n in visited:
            continue
        visited.add(n)
        stack.append((n, True))
        for e in n.edges:
            if e.__class__ is tuple and e[0] is not None and e[0] not in visited:
                stack.append((e[0], False))
    reach: set[Node] = set()   # captured, or leads to something captured
    runs: set[Node] = set()    # its backward must run: an input leads to something captured
    for n in order:
        for e in n.edges:
            if e is None:
                continue
            if (e[0] in reach) if e.__class__ is tuple else (id(e) in cap_leaves):
                runs.add(n)
                break
        if n in runs or id(n) in cap_nodes:
            reach.add(n)
    # a captured node whose own inputs lead nowhere wanted is only read, never run
    return reach, reach - runs


def _release_subgraph(node: Node, deps: dict, ready: list, buffers: dict, needed: set | None = None) -> None:
    """A node that received no gradient at all: its parents may still become ready."""
    stack = [node]
    while stack:
        n = stack.pop()
        for e in n.edges:
            if e.__class__ is tuple and e[0] is not None:
                p = e[0]
                if needed is not None and p not in needed:
                    continue
                deps[p] -= 1
                if deps[p] == 0:
                    if p in buffers:
                        ready.append(p)
                    else:
                        stack.append(p)


def _call_backward(node: Node, grads_out: list[Any]) -> Sequence[Any]:
    op = node.op
    node._check_saved()
    if op.backward is None:
        raise AutogradError(
            f"operator '{op.name}' has no backward formula, so gradients cannot flow through it; "
            "register one with OperatorBuilder(...).with_backward(fn), or detach() its inputs", op=op.name)
    if node.outputs is not None:
        for g in grads_out:
            if g is None:  # an unused output of a multi-output op: its gradient is zero
                from ..ops import creation

                grads_out = [creation.zeros_like(o) if g is None else g
                             for o, g in zip(node.outputs, grads_out, strict=True)]
                break
    res = op.backward(node.inputs, node.outputs, tuple(grads_out), **node.attrs)
    if isinstance(res, _Tensor) or res is None:
        res = (res,)
    n_in = len(node.inputs)
    if len(res) != n_in:
        raise OperatorError(
            f"the backward of '{op.name}' returned {len(res)} gradients for {n_in} inputs; return one "
            "Tensor (or None) per input", op=op.name)
    if op.builtin:
        return res
    T = _Tensor
    for a, g in zip(node.inputs, res, strict=True):
        if g is not None and isinstance(a, T) and a.requires_grad:
            if not isinstance(g, T):
                raise OperatorError(f"the backward of '{op.name}' returned a {type(g).__name__}; it must return Tensors", op=op.name)
            if g._be.shape_of(g._data) != a._be.shape_of(a._data):
                raise OperatorError(
                    f"the backward of '{op.name}' returned a gradient of shape {tuple(g.shape)} for an "
                    f"input of shape {tuple(a.shape)}", op=op.name)
    return res


def backward(
    tensors: Any,
    grad_tensors: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on."""
    T = _Tensor
    if isinstance(tensors, T):
        tensors = [tensors]
        if grad_tensors is not None and isinstance(grad_tensors, T):
            grad_tensors = [grad_tensors]
    tensors = list(tensors)
    if grad_tensors is not None and not isinstance(grad_tensors, list | tuple):
        grad_tensors = [grad_tensors]
    grads = _root_grads(tensors, grad_tensors, "backward")
    if retain_graph is None:
        retain_graph = create_graph
    _run(tensors, grads, retain_graph, create_graph)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Any, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` is left alone).

    With ``create_graph=True`` the result is itself differentiable (gradients of gradients).

    >>> import spiraltorch_nb as st
    >>> x = st.tensor(3.0, requires_grad=True)
    >>> (dy,) = st.grad(x ** 3, x, create_graph=True)
    >>> (d2y,) = st.grad(dy, x)
    >>> dy.item(), d2y.item()
    (27.0, 18.0)
    """
    T = _Tensor
    single_out = isinstance(outputs, T)
    outputs = [outputs] if single_out else list(outputs)
    # a bare number (a learning rate passed as 0.1) reaches the check below instead of list()'s TypeError
    inputs = [inputs] if isinstance(inputs, T) or not hasattr(inputs, "__iter__") else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, T):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not isinstance(t, T):
            raise AutogradError(f"grad: input {i} is a {type(t).__name__}, not a Tensor; differentiate with respect "
                                "to a tensor created with requires_grad=True, e.g. st.tensor(0.1, requires_grad=True)")
        if not t.requires_grad:
            raise AutogradError(f"grad: input {i} does not require grad; create it with requires_grad=True")
    grads = _root_grads(outputs, grad_outputs, "grad")
    if retain_graph is None:
        retain_graph = create_graph
    keys = []
    capture: dict[Any, Any] = {}
    for t in inputs:
        key = (id(t._node), t._oidx) if t._node is not None else id(t)
        keys.append(key)
        capture[key] = None
    # an output that is itself an input
    for t, g in zip(outputs, grads, strict=True):
        if t._node is None and id(t) in capture:
            capture[id(t)] = g if capture[id(t)] is None else capture[id(t)] + g
    roots = [(t, g) for t, g in zip(outputs, grads, strict=True) if t._node is not None]
    _run([r[0] for r in roots], [r[1] for r in roots], retain_graph, create_graph, capture)
    result = []
    for i, (t, key) in enumerate(zip(inputs, keys, strict=True)):
        g = capture[key]
        if g is None and not allow_unused:
            raise AutogradError(
                f"grad: input {i} (shape {tuple(t.shape)}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it")
        if g is not None and not create_graph and g.requires_grad:
            g = g.detach()
        result.append(g)
    return tuple(result)
