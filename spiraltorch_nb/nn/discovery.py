"""Module discovery and pipelines built from JSON-serializable configs.

``ModuleDiscoveryRegistry`` holds module factories with metadata (category,
description, a parameter schema derived from the factory's signature);
``PipelineBuilder`` composes a ``Sequential`` model from registered names and writes
the config back out. The PipelineEditor widget is a view over exactly these.

>>> from spiraltorch_nb.nn.discovery import PipelineBuilder
>>> b = PipelineBuilder().add("linear", in_features=4, out_features=8).add("relu")
>>> b.to_config()["stages"][1]
{'name': 'relu', 'params': {}}
>>> [s["output_shape"] for s in b.infer_shapes((2, 4))]
[(2, 8), (2, 8)]
"""

from __future__ import annotations

import copy
import difflib
import inspect
import threading
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ShapeError, SpiralTorchError

__all__ = [
    "CATEGORIES",
    "ParamSpec",
    "ModuleInfo",
    "ModuleDiscoveryRegistry",
    "PipelineBuilder",
    "PipelineError",
    "default_registry",
]

#: the categories a module factory can declare
CATEGORIES = ("layer", "activation", "normalization", "pooling", "loss", "optimizer", "container", "custom")

_REQUIRED = inspect.Parameter.empty
_CONFIG_VERSION = 1


class PipelineError(SpiralTorchError, ValueError):
    """A pipeline config that cannot be built; ``stage`` and ``field`` say where."""

    def __init__(self, message: str, stage: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.field = field


@dataclass(frozen=True)
class ParamSpec:
    """One constructor parameter: name, type name, default and whether it is required."""

    name: str
    type: str
    default: Any = None
    required: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "required": self.required}


@dataclass(frozen=True)
class ModuleInfo:
    """A registered module factory and what is known about it."""

    name: str
    factory: Callable[..., Any]
    category: str
    description: str
    params: tuple[ParamSpec, ...] = field(default=())

    def schema(self) -> dict[str, Any]:
        """A JSON-serializable description (what the pipeline editor renders forms from)."""
        return {"name": self.name, "category": self.category, "description": self.description,
                "params": [p.as_dict() for p in self.params]}


_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str"}


def _type_name(annotation: Any, default: Any) -> str:
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        for name in ("bool", "int", "float", "str"):
            if text == name or text.startswith(name + "|") or text.endswith("|" + name):
                if "tuple" not in text:
                    return name
        if "tuple" in text or "Sequence" in text:
            return "ints" if "int" in text else "any"
        return "any"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is not None and args:
        names = {_type_name(a, None) for a in args if a is not type(None)}
        if names == {"int", "ints"} or names == {"ints"}:
            return "ints"
        if len(names) == 1:
            return names.pop()
        if "int" in names and any(o in (tuple, list) for o in (typing.get_origin(a) for a in args)):
            return "ints"
    if default is not None and default is not _REQUIRED and type(default) in _TYPE_NAMES:
        return _TYPE_NAMES[type(default)]
    if isinstance(default, tuple):
        return "ints"
    return "any"


def params_from_signature(factory: Callable[..., Any]) -> tuple[ParamSpec, ...]:
    """The parameter schema of a factory, from its signature (``device``/``dtype`` are skipped)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return ()
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: fall back to the raw ones
        hints = {}
    out = []
    for i, (name, p) in enumerate(sig.parameters.items()):
        if (i == 0 and inspect.isclass(factory)) or name in ("self", "device", "dtype"):
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(name, p.annotation)
        default = None if p.default is _REQUIRED else p.default
        out.append(ParamSpec(name, _type_name(ann if ann is not _REQUIRED else None, p.default), default,
                             p.default is _REQUIRED))
    return tuple(out)


class ModuleDiscoveryRegistry:
    """Module factories by name, with metadata, search, and change notifications."""

    def __init__(self) -> None:
        self._items: dict[str, ModuleInfo] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, str], None]] = []
        self.version = 0  # bumped on every change (cheap staleness check for views)

    def register(self, name: str, factory: Callable[..., Any], metadata: dict[str, Any] | None = None, *,
                 replace: bool = False, **meta: Any) -> ModuleInfo:
        """Add a factory. ``metadata`` (or keywords): ``category``, ``description``, ``params``.

        Inside a plugin's ``on_load`` the registration is undone when the plugin fails to
        load or unloads.
        """
        meta = {**(metadata or {}), **meta}
        if not isinstance(name, str) or not name:
            raise SpiralTorchError(f"a module name must be a non-empty string; got {name!r}")
        if not callable(factory):
            raise SpiralTorchError(f"module '{name}': the factory must be callable; got {type(factory).__name__}")
        category = meta.get("category", "custom")
        if category not in CATEGORIES:
            raise SpiralTorchError(f"module '{name}': unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
        desc = meta.get("description") or (inspect.getdoc(factory) or "").split("\n")[0]
        params = meta.get("params")
        params = tuple(params) if params is not None else params_from_signature(factory)
        info = ModuleInfo(name, factory, category, desc, params)
        with self._lock:
            old = self._items.get(name)
            if old is not None and not replace:
                raise SpiralTorchError(f"a module named '{name}' is already registered; pass replace=True to swap it")
            self._items[name] = info
            self.version += 1
        self._notify("registered", name)
        from ..plugins.context import current_loading_context

        log = current_loading_context()
        if log is not None:
            log(lambda: self._restore(name, info, old), f"module {name!r}")
        return info

    def _restore(self, name: str, info: ModuleInfo, old: ModuleInfo | None) -> None:
        with self._lock:
            if self._items.get(name) is info:
                if old is None:
                    del self._items[name]
                else:
                    self._items[name] = old
                self.version += 1
        self._notify("unregistered", name)

    def unregister(self, name: str) -> ModuleInfo:
        with self._lock:
            info = self.get(name)
            del self._items[name]
            self.version += 1
        self._notify("unregistered", name)
        return info

    def get(self, name: str) -> ModuleInfo:
        info = self._items.get(name)
        if info is None:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"no module named '{name}' is registered{hint}")
        return info

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[ModuleInfo]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def list(self, category: str | None = None) -> list[ModuleInfo]:
        """Registered modules, optionally of one category, sorted by name."""
        items = sorted(self._items.values(), key=lambda i: i.name)
        return [i for i in items if category is None or i.category == category]

    def by_category(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for info in self.list():
            out.setdefault(info.category, []).append(info.name)
        return out

    def search(self, query: str) -> list[ModuleInfo]:
        """Modules whose name, category or description contains every word of ``query``."""
        words = query.lower().split()
        hits = []
        for info in self.list():
            text = f"{info.name} {info.category} {info.description}".lower()
            if all(w in text for w in words):
                hits.append(info)
        return hits

    def subscribe(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``callback(action, name)`` on every change; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def _notify(self, action: str, name: str) -> None:
        for cb in list(self._listeners):
            try:
                cb(action, name)
            except Exception as exc:  # a broken view must not break registration
                import warnings

                warnings.warn(f"module registry listener {cb!r} failed: {exc}", stacklevel=2)

    # ---- validation ------------------------------------------------------------------
    def check_params(self, name: str, params: dict[str, Any]) -> dict[str, str]:
        """Errors by field for building module ``name`` with ``params`` (empty when fine)."""
        info = self.get(name)
        errors: dict[str, str] = {}
        known = {p.name: p for p in info.params}
        for key in params:
            if key not in known:
                errors[key] = f"unknown parameter '{key}' (expected one of: {', '.join(known) or 'none'})"
        for p in info.params:
            if p.name not in params:
                if p.required:
                    errors[p.name] = f"'{p.name}' is required ({p.type})"
                continue
            problem = _type_problem(p, params[p.name])
            if problem:
                errors[p.name] = problem
        return errors


def _type_problem(spec: ParamSpec, value: Any) -> str | None:
    t = spec.type
    if value is None and not spec.required:
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "ints": (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)),
    }.get(t, True)
    if ok:
        if t in ("int", "ints") and isinstance(value, int) and value < 0 and spec.name not in ("dim", "start_dim", "end_dim"):
            return f"'{spec.name}' must be non-negative; got {value}"
        return None
    return f"'{spec.name}' must be {t}; got {type(value).__name__} {value!r}"


_default: ModuleDiscoveryRegistry | None = None
_default_lock = threading.Lock()

# name -> (attribute of spiraltorch_nb.nn, category)
_BUILTINS = {
    "linear": ("Linear", "layer"), "conv2d": ("Conv2d", "layer"), "embedding": ("Embedding", "layer"),
    "flatten": ("Flatten", "layer"), "dropout": ("Dropout", "layer"), "identity": ("Identity", "layer"),
    "multihead_attention": ("MultiheadAttention", "layer"),
    "transformer_encoder_layer": ("TransformerEncoderLayer", "layer"),
    "relu": ("ReLU", "activation"), "gelu": ("GELU", "activation"), "silu": ("SiLU", "activation"),
    "tanh": ("Tanh", "activation"), "sigmoid": ("Sigmoid", "activation"), "softmax": ("Softmax", "activation"),
    "leaky_relu": ("LeakyReLU", "activation"), "log_softmax": ("LogSoftmax", "activation"),
    "layer_norm": ("LayerNorm", "normalization"), "batch_norm1d": ("BatchNorm1d", "normalization"),
    "batch_norm2d": ("BatchNorm2d", "normalization"),
    "max_pool2d": ("MaxPool2d", "pooling"), "avg_pool2d": ("AvgPool2d", "pooling"),
    "mse_loss": ("MSELoss", "loss"), "l1_loss": ("L1Loss", "loss"), "cross_entropy_loss": ("CrossEntropyLoss", "loss"),
    "bce_with_logits_loss": ("BCEWithLogitsLoss", "loss"), "nll_loss": ("NLLLoss", "loss"),
}
_BUILTIN_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}


def default_registry() -> ModuleDiscoveryRegistry:
    """The registry holding every built-in module (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                reg = ModuleDiscoveryRegistry()
                from .. import nn

                for name, (attr, cat) in _BUILTINS.items():
                    cls = getattr(nn, attr, None)
                    if cls is not None:
                        reg.register(name, cls, category=cat)
                try:
                    from .. import optim
                except ImportError:
                    optim = None
                for name, attr in _BUILTIN_OPTIMIZERS.items():
                    cls = getattr(optim, attr, None) if optim is not None else None
                    if cls is not None:
                        reg.register(name, cls, category="optimizer")
                _default = reg
    return _default


# ---------------------------------------------------------------------------------
# pipelines
# ---------------------------------------------------------------------------------

_STAGE_CATEGORIES = ("layer", "activation", "normalization", "pooling", "container", "custom")


class PipelineBuilder:
    """Build a ``Sequential`` model stage by stage, or from a JSON-serializable config."""

    def __init__(self, registry: ModuleDiscoveryRegistry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.stages: list[dict[str, Any]] = []

    def add(self, name: str, **params: Any) -> PipelineBuilder:
        """Append a stage; raises :class:`PipelineError` naming the stage and field when invalid."""
        index = len(self.stages)
        self._check_stage(index, name, params)
        self.stages.append({"name": name, "params": dict(params)})
        return self

    def _check_stage(self, index: int, name: Any, params: Any) -> None:
        if not isinstance(name, str) or name not in self.registry:
            close = difflib.get_close_matches(str(name), [i.name for i in self.registry], n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise PipelineError(f"stage {index}: unknown module {name!r}{hint}", stage=index, field="name")
        info = self.registry.get(name)
        if info.category not in _STAGE_CATEGORIES:
            raise PipelineError(f"stage {index}: '{name}' is a {info.category}, not a model stage", stage=index,
                                field="name")
        if not isinstance(params, dict):
            raise PipelineError(f"stage {index}: 'params' must be an object; got {type(params).__name__}",
                                stage=index, field="params")
        errors = self.registry.check_params(name, params)
        if errors:
            fld, msg = next(iter(errors.items()))
            raise PipelineError(f"stage {index} ({name}): {msg}", stage=index, field=fld)

    def validate(self) -> list[dict[str, Any]]:
        """Every problem as ``{"stage", "field", "message"}`` (empty when the pipeline is valid); never raises."""
        problems = []
        for i, st in enumerate(self.stages):
            name, params = st.get("name"), st.get("params", {})
            try:
                self._check_stage(i, name, params)
            except PipelineError as exc:
                problems.append({"stage": i, "field": exc.field, "message": str(exc)})
                if exc.field not in ("name", "params") and isinstance(params, dict):
                    for fld, msg in list(self.registry.check_params(name, params).items())[1:]:
                        problems.append({"stage": i, "field": fld, "message": f"stage {i} ({name}): {msg}"})
        return problems

    def _make(self, index: int) -> Any:
        st = self.stages[index]
        info = self.registry.get(st["name"])
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in st["params"].items()}
        try:
            return info.factory(**params)
        except SpiralTorchError as exc:
            raise PipelineError(f"stage {index} ({st['name']}): {exc}", stage=index) from exc
        except (TypeError, ValueError) as exc:
            raise PipelineError(f"stage {index} ({st['name']}): {exc}", stage=index) from exc

    def build(self) -> Any:
        """The model: a ``Sequential`` of the stages."""
        from . import Sequential

        problems = self.validate()
        if problems:
            p = problems[0]
            raise PipelineError(p["message"], stage=p["stage"], field=p["field"])
        return Sequential(*[self._make(i) for i in range(len(self.stages))])

    def to_config(self) -> dict[str, Any]:
        """The JSON-serializable config (``{"version": 1, "stages": [{"name", "params"}]}``)."""
        return {"version": _CONFIG_VERSION, "stages": copy.deepcopy(self.stages)}

    @classmethod
    def from_config(cls, config: dict[str, Any], registry: ModuleDiscoveryRegistry | None = None) -> PipelineBuilder:
        """A builder holding ``config``'s stages; raises :class:`PipelineError` on the first bad one."""
        b = cls(registry)
        if not isinstance(config, dict) or not isinstance(config.get("stages"), list):
            raise PipelineError("a pipeline config is an object with a 'stages' list, e.g. "
                                "{'version': 1, 'stages': [{'name': 'linear', 'params': {...}}]}", field="stages")
        version = config.get("version", _CONFIG_VERSION)
        if version != _CONFIG_VERSION:
            raise PipelineError(f"pipeline config version {version} is not supported (expected {_CONFIG_VERSION})",
                                field="version")
        for i, st in enumerate(config["stages"]):
            if not isinstance(st, dict) or "name" not in st:
                raise PipelineError(f"stage {i}: expected an object with 'name' and 'params'", stage=i, field="name")
            b._check_stage(i, st["name"], st.get("params", {}))
            b.stages.append({"name": st["name"], "params": dict(st.get("params", {}))})
        return b

    def infer_shapes(self, input_shape: tuple[int, ...] | list[int]) -> list[dict[str, Any]]:
        """Each stage's input and output shape and parameter count for an input of ``input_shape``.

        Runs each stage once on zeros (under ``no_grad``); a stage that cannot take the
        shape raises :class:`PipelineError` naming the stage.
        """
        from ..autograd.grad_mode import no_grad
        from ..ops.creation import zeros

        shape = tuple(int(s) for s in input_shape)
        out = []
        with no_grad():
            x = zeros(*shape)
            for i in range(len(self.stages)):
                module = self._make(i)
                try:
                    y = module(x)
                except (ShapeError, SpiralTorchError, ValueError, TypeError) as exc:
                    raise PipelineError(f"stage {i} ({self.stages[i]['name']}) cannot take input shape "
                                        f"{tuple(x.shape)}: {exc}", stage=i, field="input_shape") from exc
                n_params = sum(p.numel() for p in module.parameters()) if hasattr(module, "parameters") else 0
                out.append({"index": i, "name": self.stages[i]["name"], "input_shape": tuple(x.shape),
                            "output_shape": tuple(y.shape), "params": n_params})
                x = y
        return out

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        inner = ", ".join(s["name"] for s in self.stages)
        return f"PipelineBuilder([{inner}])"
