"""PipelineEditor: compose a model from the module registry, with forms, shapes and inline errors.

The editor is a view over :class:`~spiraltorch_nb.nn.discovery.PipelineBuilder`'s config:
``editor.config`` is exactly the builder's JSON config and ``editor.build()`` builds it.
Editing never raises: a bad value stays in the config as typed and its error is shown at
the stage and field that is wrong (:attr:`PipelineEditor.errors`).

>>> import spiraltorch_nb as st
>>> ed = st.widgets.PipelineEditor(input_shape=(2, 4))
>>> ed.add_stage("linear", out_features=8)
0
>>> ed.add_stage("relu")
1
>>> ed.config["stages"][0]
{'name': 'linear', 'params': {'in_features': 4, 'out_features': 8}}
>>> ed.config["input_shape"]
[2, 4]
>>> [s["output_shape"] for s in ed.shapes]
[[2, 8], [2, 8]]
>>> ed.set_param(0, "out_features", "eight")
>>> ed.errors
{0: {'out_features': "'out_features' must be ...; got str 'eight'"}}
"""

from __future__ import annotations

import copy
import json
import re
import weakref
from typing import Any

import traitlets

from ._base import ActionWidget, WidgetError, widget_asset

__all__ = ["PipelineEditor"]

#: registry categories whose modules can be a stage of a Sequential pipeline
STAGE_CATEGORIES = ("layer", "activation", "normalization", "pooling", "container", "custom")

#: a required parameter absent from a new stage is taken from the previous stage's output shape
_SHAPE_DERIVED = {
    "in_features": -1, "normalized_shape": -1, "embed_dim": -1, "d_model": -1,
    "in_channels": 1, "num_features": 1, "num_channels": 1,
}


def _registry(registry: Any) -> Any:
    if registry is not None:
        return registry
    from ..nn.discovery import default_registry

    return default_registry()


def _strip_prefix(message: str, index: int) -> str:
    """``"stage 0 (linear): 'x' is required"`` -> ``"'x' is required"`` (the stage is shown already)."""
    return re.sub(rf"^stage {index}( \([^)]*\))?: ", "", message)


def _coerce(kind: str, text: Any) -> Any:
    """A value typed into a form field, converted to the parameter's type when it parses.

    Non-strings pass through unchanged; a string that does not parse is returned as
    typed, and validation then reports it at its field.
    """
    if not isinstance(text, str):
        return text
    raw = text.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            return text
        if kind == "ints":
            parts = [p for p in re.split(r"[,\s()\[\]]+", raw) if p]
            values = [int(p) for p in parts]
            return values[0] if len(values) == 1 and "," not in raw else values
        if kind == "any":
            return json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        return text
    return text


def _parse_shape(shape: Any) -> list[int] | None:
    if shape is None or shape == "":
        return None
    if isinstance(shape, str):
        parts = [p for p in re.split(r"[,\s()\[\]x×]+", shape.strip()) if p]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise WidgetError(f"an input shape is a list of positive integers such as '2, 4' or (2, 4); got {shape!r}") from None
    else:
        try:
            values = [int(s) for s in shape]
        except (TypeError, ValueError):
            raise WidgetError(f"an input shape is a list of positive integers such as (2, 4); got {shape!r}") from None
    if not values or any(v <= 0 for v in values):
        raise WidgetError(f"an input shape needs at least one dimension, all positive; got {shape!r}")
    return values


class _RegistryListener:
    """Refreshes the palette of an editor on registry changes without keeping the editor alive."""

    def __init__(self, editor: PipelineEditor) -> None:
        self._ref = weakref.ref(editor)
        self.remove: Any = None

    def __call__(self, action: str, name: str) -> None:
        editor = self._ref()
        if editor is None:
            if self.remove is not None:
                self.remove()
            return
        editor.refresh()


class PipelineEditor(ActionWidget):
    """Edit a pipeline of registered modules: palette, stages, forms, shapes and errors.

    Parameters
    ----------
    registry : ModuleDiscoveryRegistry, optional
        Where modules come from (default: ``st.nn.discovery.default_registry()``).
        Modules registered later (by plugins) appear in the palette at once.
    input_shape : sequence of int, optional
        With it, each stage shows its inferred output shape and parameter count, and a
        new stage's missing input size (``in_features``, ``in_channels``...) is taken from
        the previous stage's output.

    Attributes
    ----------
    palette : dict
        category -> list of ``{"name", "description", "params"}`` (the parameter schema).
    stages : list of dict
        ``{"name", "params"}`` per stage, as in the config.
    errors : dict
        stage index -> {field -> message}; field ``"name"`` for an unknown module,
        ``"input_shape"`` for a stage that cannot take its input.
    shapes : list
        Per stage ``{"input_shape", "output_shape", "params"}``, or None where unknown.
    """

    _esm = widget_asset("pipeline_editor.js")
    _css = widget_asset("pipeline_editor.css")
    _actions = {"add_stage": "_front_add", "remove_stage": "remove_stage", "move_stage": "move_stage",
                "set_param": "set_param", "set_input_shape": "set_input_shape", "refresh": "refresh"}

    palette = traitlets.Dict().tag(sync=True)
    stages = traitlets.List(traitlets.Dict()).tag(sync=True)
    errors: Any = traitlets.Dict().tag(sync=True)  # int keys: stage indices
    shapes: traitlets.List[Any] = traitlets.List().tag(sync=True)
    input_shape: Any = traitlets.List(traitlets.Int(), allow_none=True, default_value=None).tag(sync=True)
    input_error = traitlets.Unicode("").tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)

    def __init__(self, registry: Any = None, input_shape: Any = None, **kwargs: Any) -> None:
        self._registry_obj = _registry(registry)
        self._registry_version: Any = -1
        self._unsubscribe: Any = None
        super().__init__(**kwargs)
        listener = _RegistryListener(self)
        subscribe = getattr(self._registry_obj, "subscribe", None)
        if callable(subscribe):
            listener.remove = self._unsubscribe = subscribe(listener)
        self.refresh()
        self.input_shape = _parse_shape(input_shape)
        self._revalidate()

    # ---- loading --------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any], registry: Any = None, input_shape: Any = None) -> PipelineEditor:
        """An editor holding ``config``'s stages (bad stages load too, with their errors shown).

        ``config`` is ``PipelineBuilder.to_config()``'s format (or its JSON text); its
        ``"input_shape"``, when present, is the editor's input shape unless ``input_shape``
        is given. So ``PipelineEditor.from_config(c).config == c`` for a builder's config.
        """
        from ..nn.discovery import PipelineError

        if isinstance(config, str):
            config = json.loads(config)
        if not isinstance(config, dict) or not isinstance(config.get("stages"), list):
            raise PipelineError("a pipeline config is an object with a 'stages' list, e.g. "
                                "{'version': 1, 'stages': [{'name': 'linear', 'params': {...}}]}", field="stages")
        if input_shape is None:
            input_shape = config.get("input_shape")
        editor = cls(registry=registry, input_shape=input_shape)
        stages = []
        for i, stage in enumerate(config["stages"]):
            if not isinstance(stage, dict) or "name" not in stage:
                raise PipelineError(f"stage {i}: expected an object with 'name' and 'params'", stage=i, field="name")
            params = stage.get("params", {})
            stages.append({"name": stage["name"], "params": dict(params) if isinstance(params, dict) else params})
        editor.stages = stages
        editor._revalidate()
        return editor

    @classmethod
    def from_model(cls, model: Any, registry: Any = None, input_shape: Any = None) -> PipelineEditor:
        """An editor describing a ``Sequential`` model (each child mapped to its registered module).

        Constructor arguments are read back from the modules' attributes of the same name;
        a child whose class is not registered raises :class:`WidgetError` naming it.
        """
        reg = _registry(registry)
        children = list(model.children()) if hasattr(model, "children") else []
        if not children:
            children = [model]
        by_class: dict[Any, Any] = {}
        for info in reg:
            by_class.setdefault(info.factory, info)
        stages = []
        for i, child in enumerate(children):
            info = by_class.get(type(child))
            if info is None:
                raise WidgetError(f"stage {i}: {type(child).__name__} is not in the module registry, so the editor "
                                  "cannot describe it; register it with registry.register(name, factory)")
            params: dict[str, Any] = {}
            for spec in info.params:
                if hasattr(child, spec.name):
                    value = _read_back(spec, getattr(child, spec.name))
                    if value is not _SKIP:
                        params[spec.name] = value
            params = _drop_derived_defaults(info, params)
            stages.append({"name": info.name, "params": params})
        return cls.from_config({"version": 1, "stages": stages}, registry=reg, input_shape=input_shape)

    # ---- editing (never raises for configuration problems) ---------------------------
    def add_stage(self, name: str, index: int | None = None, /, **params: Any) -> int:
        """Add stage ``name`` with ``params`` (at the end, or before position ``index``); returns its index.

        ``name`` and ``index`` are positional-only, so every keyword is a module parameter,
        even one called ``name`` or ``index``: ``ed.add_stage("gelu", 1)`` inserts at 1.
        Missing input sizes (``in_features``, ``in_channels``, ...) are filled from the
        previous stage's inferred output when an input shape is set.
        """
        stages = copy.deepcopy(self.stages)
        pos = len(stages) if index is None else self._check_index(index, allow_end=True)
        params = dict(params)
        self._autofill(name, params, pos)
        stages.insert(pos, {"name": name, "params": params})
        self.stages = stages
        self._revalidate()
        return pos

    def remove_stage(self, i: int) -> None:
        """Remove stage ``i``."""
        i = self._check_index(i)
        stages = copy.deepcopy(self.stages)
        del stages[i]
        self.stages = stages
        self._revalidate()

    def move_stage(self, i: int, j: int) -> None:
        """Move stage ``i`` to position ``j`` (the others shift)."""
        i = self._check_index(i)
        j = self._check_index(j)
        stages = copy.deepcopy(self.stages)
        stages.insert(j, stages.pop(i))
        self.stages = stages
        self._revalidate()

    def set_param(self, i: int, key: str, value: Any) -> None:
        """Set parameter ``key`` of stage ``i``; ``None`` or ``""`` restores its default.

        Strings (what a form field holds) are converted to the parameter's type where
        they parse; a value that does not fit stays as given and is reported in :attr:`errors`.
        """
        i = self._check_index(i)
        stages = copy.deepcopy(self.stages)
        params = stages[i].setdefault("params", {})
        if value is None or (isinstance(value, str) and not value.strip()):
            params.pop(key, None)
        else:
            spec = self._spec(stages[i]["name"], key)
            params[key] = _coerce(spec["type"], value) if spec is not None else value
        self.stages = stages
        self._revalidate()

    def set_input_shape(self, shape: Any) -> None:
        """Set the input shape used for shape inference (``None`` clears it)."""
        try:
            self.input_shape = _parse_shape(shape)
            self.input_error = ""
        except WidgetError as exc:
            self.input_error = str(exc)
            return
        self._revalidate()

    def refresh(self) -> None:
        """Re-read the registry (modules registered by plugins since) and re-check the stages."""
        reg = self._registry_obj
        palette: dict[str, list[dict[str, Any]]] = {}
        for category in STAGE_CATEGORIES:
            items = [{"name": info.name, "description": info.description,
                      "params": [dict(p.as_dict(), default=_jsonable(p.default)) for p in info.params]}
                     for info in reg.list(category)]
            if items:
                palette[category] = items
        if palette != self.palette:
            self.palette = palette
        version = getattr(reg, "version", None)
        if version != self._registry_version:
            self._registry_version = version
            self._revalidate()

    # ---- the result -----------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The JSON config, the same format as ``PipelineBuilder.to_config()`` (with ``input_shape`` when one is set)."""
        config: dict[str, Any] = {"version": 1, "stages": copy.deepcopy(list(self.stages))}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    def builder(self) -> Any:
        """A :class:`PipelineBuilder` holding this config (raises ``PipelineError`` if it is invalid)."""
        from ..nn.discovery import PipelineBuilder

        return PipelineBuilder.from_config(self.config, registry=self._registry_obj)

    def build(self) -> Any:
        """The model (a ``Sequential``); raises ``PipelineError`` naming the stage and field when invalid."""
        return self.builder().build()

    # ---- internals ------------------------------------------------------------------
    def _front_add(self, name: str, index: int | None = None) -> None:
        self.add_stage(name, index)

    def _check_index(self, i: Any, allow_end: bool = False) -> int:
        n = len(self.stages)
        top = n if allow_end else n - 1
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i <= top:
            raise WidgetError(f"stage index must be an int from 0 to {top}; got {i!r} (the pipeline has {n} stages)")
        return i % n if i < 0 else i

    def _spec(self, name: str, key: str) -> dict[str, Any] | None:
        try:
            info = self._registry_obj.get(name)
        except KeyError:
            return None
        for p in info.params:
            if p.name == key:
                return p.as_dict()
        return None

    def _autofill(self, name: str, params: dict[str, Any], pos: int) -> None:
        if self.input_shape is None:
            return
        try:
            info = self._registry_obj.get(name)
        except KeyError:
            return
        shape = self.input_shape if pos == 0 else None
        if pos > 0:
            prev = self.shapes[pos - 1] if pos - 1 < len(self.shapes) else None
            shape = prev["output_shape"] if prev else None
        if not shape:
            return
        filled = {}
        for spec in info.params:
            axis = _SHAPE_DERIVED.get(spec.name)
            if axis is None or not spec.required or spec.name in params or len(shape) <= max(axis, 0):
                continue
            filled[spec.name] = int(shape[axis])
        if filled:  # keep the schema's order: in_features before out_features
            merged = {**params, **filled}
            order = [p.name for p in info.params if p.name in merged]
            ordered = {k: merged[k] for k in order}
            ordered.update({k: v for k, v in merged.items() if k not in ordered})
            params.clear()
            params.update(ordered)

    def _revalidate(self) -> None:
        """Recompute errors, shapes and the summary from the stages; never raises."""
        from ..nn.discovery import PipelineBuilder, PipelineError

        reg = self._registry_obj
        stages = copy.deepcopy(list(self.stages))
        builder = PipelineBuilder(registry=reg)
        builder.stages = stages
        errors: dict[int, dict[str, str]] = {}
        try:
            problems = builder.validate()
        except Exception as exc:  # a registry that breaks validation is reported, not raised
            problems = [{"stage": 0, "field": "name", "message": f"{type(exc).__name__}: {exc}"}]
        for p in problems:
            stage = int(p["stage"]) if p.get("stage") is not None else 0
            errors.setdefault(stage, {}).setdefault(p.get("field") or "name", _strip_prefix(p["message"], stage))
        shapes: list[Any] = [None] * len(stages)
        total_params: int | None = None
        if self.input_shape and stages:
            valid = min(errors) if errors else len(stages)
            prefix = PipelineBuilder(registry=reg)
            prefix.stages = stages[:valid]
            try:
                inferred = prefix.infer_shapes(self.input_shape) if valid else []
            except PipelineError as exc:
                bad = exc.stage if exc.stage is not None else 0
                errors.setdefault(bad, {})[exc.field or "input_shape"] = _strip_prefix(str(exc), bad)
                prefix.stages = stages[:bad]
                try:
                    inferred = prefix.infer_shapes(self.input_shape) if bad else []
                except Exception:
                    inferred = []
            except Exception as exc:
                errors.setdefault(0, {})["input_shape"] = f"{type(exc).__name__}: {exc}"
                inferred = []
            for row in inferred:
                shapes[row["index"]] = {"input_shape": list(row["input_shape"]),
                                        "output_shape": list(row["output_shape"]), "params": int(row["params"])}
            if len(inferred) == len(stages) and not errors:
                total_params = sum(s["params"] for s in shapes)
        with self.hold_sync():
            self.errors = {k: errors[k] for k in sorted(errors)}
            self.shapes = shapes
            self.error = ""
            self.summary = self._summary(shapes, total_params, errors)

    def _summary(self, shapes: list[Any], total: int | None, errors: dict) -> str:
        n = len(self.stages)
        parts = [f"{n} stage{'s' if n != 1 else ''}"]
        if errors:
            count = sum(len(v) for v in errors.values())
            parts.append(f"{count} problem{'s' if count != 1 else ''}")
        if total is not None:
            parts.append(f"{total:,} parameters")
            parts.append(f"{tuple(self.input_shape)} → {tuple(shapes[-1]['output_shape'])}")
        return " · ".join(parts)

    def close(self) -> None:
        """Stop following the registry and close the front end."""
        if getattr(self, "_unsubscribe", None) is not None:
            self._unsubscribe()
            self._unsubscribe = None
        super().close()

    def __repr__(self) -> str:
        names = [s.get("name") for s in self.stages]
        bad = sorted(self.errors)
        suffix = f", errors at stages {bad}" if bad else ""
        return f"PipelineEditor(stages={names}{suffix})"


_SKIP = object()


def _read_back(spec: Any, value: Any) -> Any:
    """A module attribute as the config value that rebuilds it, or ``_SKIP`` when it is the default.

    Layers store normalized arguments (``kernel_size=3`` as ``(3, 3)``, ``bias=True`` as a
    Parameter); the config gets the short form back.
    """
    if spec.type == "bool" and not isinstance(value, bool):
        value = value is not None  # bias=True is stored as a bias Parameter
    if isinstance(value, tuple | list):
        value = list(value)
        if value and len(set(value)) == 1 and all(isinstance(v, int) and not isinstance(v, bool) for v in value) \
                and spec.type in ("ints", "any") and not isinstance(spec.default, tuple | list):
            value = value[0]  # kernel_size=(3, 3) was given as 3
    if value is None or not isinstance(value, int | float | str | bool | list):
        return _SKIP
    default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    if not spec.required and value == default and type(value) is type(default):
        return _SKIP
    return value


def _drop_derived_defaults(info: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Leave out values a ``None`` default would derive anyway (``MaxPool2d``'s stride = kernel size)."""
    for spec in info.params:
        if spec.required or spec.default is not None or spec.name not in params:
            continue
        trial = {k: v for k, v in params.items() if k != spec.name}
        try:
            rebuilt = info.factory(**{k: tuple(v) if isinstance(v, list) else v for k, v in trial.items()})
        except Exception:  # the value is needed after all
            continue
        if _read_back(spec, getattr(rebuilt, spec.name, None)) == params[spec.name]:
            params = trial
    return params


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if value is None or isinstance(value, int | float | str | bool | list | dict):
        return value
    return repr(value)
