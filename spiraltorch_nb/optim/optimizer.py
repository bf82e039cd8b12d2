"""The Optimizer base class: parameter groups, per-parameter state, state dicts.

The structure follows ``torch.optim.Optimizer`` so that code and checkpoints move
between the two: ``param_groups`` is a list of dicts (``"params"`` plus the options,
which schedulers change in place), ``state`` maps each parameter to a dict of
tensors, and ``state_dict()`` identifies parameters by their position across groups.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..errors import SpiralTorchError
from ..tensor import Tensor

__all__ = ["Optimizer", "OptimizerError", "required"]


class OptimizerError(SpiralTorchError, ValueError):
    """An optimizer option, parameter group or state dict that cannot be used."""


class _Required:
    """Marks an option that has no default and must be given per group."""

    def __repr__(self) -> str:
        return "<required>"

    def __deepcopy__(self, memo: dict) -> _Required:
        return self


required = _Required()


def _check_nonneg(name: str, value: Any, owner: str) -> None:
    if isinstance(value, Tensor):
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value) or value < 0:
        raise OptimizerError(f"{owner}: {name} must be a number >= 0; got {value!r}")


class Optimizer:
    """Base class of optimizers: holds parameter groups and per-parameter state.

    Subclasses set their option defaults and implement :meth:`step`.

    Parameters
    ----------
    params : iterable
        Tensors to optimize, ``(name, tensor)`` pairs (as from ``named_parameters()``),
        or dicts defining parameter groups (``{"params": [...], "lr": 0.1}``).
    defaults : dict
        Default options for groups that do not set them.

    Attributes
    ----------
    param_groups : list of dict
        ``"params"`` and the options of each group; change ``"lr"`` here to change it.
    state : dict
        Per-parameter state (momentum buffers, moment estimates, step counts).
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise OptimizerError(
                f"{type(self).__name__}: params must be an iterable of tensors or of group dicts; got a "
                "single Tensor. Wrap it in a list: [w]")
        if isinstance(params, set | frozenset):
            raise OptimizerError(f"{type(self).__name__}: parameters must be an ordered collection (a list), not a "
                                 "set, so that state dicts match parameters by position; use list(...) instead")
        groups = list(params)
        if not groups:
            raise OptimizerError(f"{type(self).__name__} got an empty parameter list; pass model.parameters() "
                                 "or a list of tensors that require grad")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- groups -----------------------------------------------------------------
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones take the defaults).

        Raises
        ------
        OptimizerError
            If a parameter is not a leaf tensor, appears in another group, or an
            option without default is missing.
        """
        name = type(self).__name__
        if not isinstance(param_group, Mapping):
            raise OptimizerError(f"{name}.add_param_group expects a dict like {{'params': [...], 'lr': 0.1}}; "
                                 f"got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise OptimizerError(f"{name}: a parameter group needs a 'params' entry; got keys {sorted(group)}")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set | frozenset):
            raise OptimizerError(f"{name}: parameters must be an ordered collection (a list), not a set, so that "
                                 "state dicts match parameters by position; use list(...) instead")
        else:
            params = list(params)
        names: list[str] | None = None
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):
            names = [str(p[0]) for p in params]
            params = [p[1] for p in params]
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise OptimizerError(f"{name}: parameter {i} of a group is a {type(p).__name__}; optimizers take "
                                     "Tensors (e.g. model.parameters())")
            if not p.is_leaf:
                raise OptimizerError(f"{name}: parameter {i} (shape {tuple(p.shape)}) is not a leaf tensor, so it "
                                     "cannot be optimized in place; pass the leaf it was computed from, or "
                                     "x.detach().requires_grad_()")
            if not p.dtype.is_floating_point:
                raise OptimizerError(f"{name}: parameter {i} has dtype {p.dtype.name}; only floating-point tensors "
                                     "can be optimized")
        group["params"] = params
        if names is not None:
            group["param_names"] = names
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise OptimizerError(f"{name}: parameter group {len(self.param_groups)} does not set '{key}', "
                                     f"which has no default; pass {key}=... to the optimizer or in the group")
            group.setdefault(key, default)
        self._validate_group(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise OptimizerError(f"{name}: a parameter group lists the same tensor twice; each parameter may "
                                 "appear once")
        clash = [i for i, p in enumerate(params) if id(p) in seen]
        if clash:
            raise OptimizerError(f"{name}: parameters {clash} of the new group already belong to another group; "
                                 "a parameter may appear in one group only")
        self.param_groups.append(group)

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a group's options (subclasses extend)."""
        if "lr" in group:
            _check_nonneg("lr", group["lr"], type(self).__name__)

    # ---- steps ----------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (``None`` by default, else zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g._node is not None or g.requires_grad:
                        g = g.detach()
                        p.grad = g
                    g.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        raise NotImplementedError(f"{type(self).__name__} must define step(); subclass an optimizer such as "
                                  "st.optim.SGD, or implement step() with the update rule")

    @staticmethod
    def _eval_closure(closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ---- state dicts ------------------------------------------------------------
    def _index(self) -> tuple[dict[int, int], list[Tensor]]:
        order = [p for g in self.param_groups for p in g["params"]]
        return {id(p): i for i, p in enumerate(order)}, order

    def state_dict(self) -> dict[str, Any]:
        """A snapshot: ``{"state": {index: {name: value}}, "param_groups": [{..., "params": [index]}]}``.

        Parameters are identified by their position across the groups, as in PyTorch.
        State tensors are copies, so training on does not change a saved snapshot.
        """
        index, _ = self._index()
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state: dict[int, dict[str, Any]] = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v))
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore options and state saved by :meth:`state_dict` (also torch's, for the same optimizer).

        State tensors are copied onto each parameter's device; floating-point ones take
        the parameter's dtype. NumPy arrays and PyTorch tensors are accepted as values.

        Raises
        ------
        OptimizerError
            When the groups or their sizes do not match this optimizer's.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise OptimizerError(f"{name}.load_state_dict expects a dict with 'state' and 'param_groups' (from "
                                 f"optimizer.state_dict()); got {got}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise OptimizerError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups "
                                 f"but this optimizer has {len(self.param_groups)}; build the optimizer with the "
                                 "same groups as the one that was saved")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise OptimizerError(f"{name}.load_state_dict: group sizes differ: saved {saved_sizes}, here {sizes}; "
                                 "the model's parameters must be the same (same order) as when it was saved")
        _, order = self._index()
        id_map: dict[int, Tensor] = {}
        for saved, g in zip(saved_groups, self.param_groups, strict=True):
            for idx, p in zip(saved["params"], g["params"], strict=True):
                id_map[int(idx)] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, values in dict(state_dict["state"]).items():
            try:
                p = id_map[int(key)]
            except (KeyError, ValueError):
                raise OptimizerError(f"{name}.load_state_dict: state entry {key!r} names no parameter of the saved "
                                     f"groups (indices {sorted(id_map)})") from None
            new_state[p] = {k: _restore_value(k, v, p) for k, v in dict(values).items()}
        new_groups = []
        for saved, g in zip(saved_groups, self.param_groups, strict=True):
            ng = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            ng["params"] = g["params"]
            new_groups.append(ng)
        self.param_groups = new_groups
        self.state = new_state

    # ---- display ------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k in ("params", "param_names", "lr_history"):
                    continue
                lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _restore_value(key: str, value: Any, param: Tensor) -> Any:
    """A state value copied to the parameter's device (floats in its dtype, the step count kept)."""
    if not isinstance(value, Tensor | np.ndarray) and hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()  # a torch tensor
    if key == "step":
        return int(np.asarray(value.numpy() if isinstance(value, Tensor) else value).reshape(()).item())
    if isinstance(value, np.ndarray):
        from ..ops.creation import tensor

        value = tensor(value)
    if isinstance(value, Tensor):
        out = value.detach()
        if out.device != param.device:
            out = out.to(param.device)
        if out.dtype.is_floating_point and out.dtype is not param.dtype:
            out = out.to(param.dtype)
        return out.clone() if out is value or out._data is value._data else out
    return copy.deepcopy(value)
