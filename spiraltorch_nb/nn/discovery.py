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

import builtins
import collections.abc as cabc
import contextlib
import copy
import difflib
import inspect
import json
import threading
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import SpiralTorchError

__all__ = [
    "CATEGORIES",
    "PARAM_TYPES",
    "ParamSpec",
    "ModuleInfo",
    "ModuleDiscoveryRegistry",
    "DiscoveryError",
    "UnknownModuleError",
    "PipelineBuilder",
    "PipelineError",
    "default_registry",
    "params_from_signature",
]

#: the categories a module factory can declare. ``container`` is for factories that build a block of
#: submodules from JSON parameters (a residual block, an MLP block), as plugins register them; the
#: built-in Sequential, ModuleList and ModuleDict are not entries (see ``_NOT_STAGES``).
CATEGORIES = ("layer", "activation", "normalization", "pooling", "loss", "optimizer", "container", "custom")
#: the parameter types a schema uses: JSON scalars, "ints" (an int or a list of ints), and "any"
PARAM_TYPES = ("int", "float", "bool", "str", "ints", "any")

_REQUIRED = inspect.Parameter.empty
_CONFIG_VERSION = 1
_CONFIG_KEYS = ("version", "stages", "input_shape")
_STAGE_KEYS = ("name", "params")
# the built-in containers, which are not registered, and why (a config naming one is told so)
_NOT_STAGES = {
    "sequential": "a pipeline is itself a Sequential: list the stages in this config directly",
    "modulelist": "a ModuleList has no forward, so it cannot be a pipeline stage",
    "moduledict": "a ModuleDict has no forward, so it cannot be a pipeline stage",
}
# parameters that may legitimately be negative (axes count from the end, indices wrap)
_SIGNED_SUFFIXES = ("dim", "idx", "index", "axis", "slope")


class DiscoveryError(SpiralTorchError, ValueError):
    """A module registration that cannot be accepted (bad name, factory, category or schema)."""


class UnknownModuleError(DiscoveryError, KeyError):
    """No module factory is registered under the name asked for; ``name`` and ``close`` say which."""

    def __init__(self, message: str, name: str, close: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.close = close

    def __str__(self) -> str:
        # KeyError would print the message as a quoted repr
        return str(self.args[0]) if self.args else ""


class PipelineError(SpiralTorchError, ValueError):
    """A pipeline config that cannot be built; ``stage`` (index) and ``field`` say where."""

    def __init__(self, message: str, stage: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.field = field


def _jsonable(value: Any) -> Any:
    """``value`` with tuples turned into lists (how it looks after a JSON round trip)."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _json_default(value: Any) -> Any:
    """A schema default that survives ``json.dumps`` (others are shown by their repr)."""
    value = _jsonable(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


@dataclass(frozen=True)
class ParamSpec:
    """One constructor parameter: name, type (one of :data:`PARAM_TYPES`), default, required."""

    name: str
    type: str
    default: Any = None
    required: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON-serializable form used in :meth:`ModuleInfo.schema`."""
        return {"name": self.name, "type": self.type, "default": _json_default(self.default),
                "required": self.required}


@dataclass(frozen=True)
class ModuleInfo:
    """A registered module factory and what is known about it (``plugin``: who registered it)."""

    name: str
    factory: Callable[..., Any]
    category: str
    description: str
    params: tuple[ParamSpec, ...] = ()
    plugin: str | None = None

    def schema(self) -> dict[str, Any]:
        """A JSON-serializable description (what the pipeline editor renders forms from)."""
        return {"name": self.name, "category": self.category, "description": self.description,
                "plugin": self.plugin, "params": [p.as_dict() for p in self.params]}


# ---------------------------------------------------------------------------------
# parameter schemas from signatures
# ---------------------------------------------------------------------------------

_SCALARS = {bool: "bool", int: "int", float: "float", str: "str"}
_SCALAR_NAMES = ("bool", "int", "float", "str")
_SEQUENCES = (tuple, list, cabc.Sequence, cabc.Iterable, cabc.Collection)


def _combine(names: set[str]) -> str:
    """One type name for a union of member types."""
    if len(names) == 1:
        return names.pop()
    if names <= {"int", "ints"}:
        return "ints"
    if names == {"int", "float"}:
        return "float"
    return "any"


def _default_type(default: Any) -> str:
    if default is _REQUIRED or default is None:
        return "any"
    if type(default) in _SCALARS:
        return _SCALARS[type(default)]
    if isinstance(default, tuple | list) and default and all(type(v) is int for v in default):
        return "ints"
    return "any"


def _annotation_type(annotation: Any) -> str | None:
    """The type name of a resolved annotation; None when there is none (the default decides)."""
    if annotation is _REQUIRED or annotation is None:
        return None
    if annotation is Any:
        return "any"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        names = {_annotation_type(a) or "any" for a in members}
        return _combine(names) if names else None
    if origin is typing.Literal:
        names = {_SCALARS.get(type(a), "any") for a in args}
        return _combine(names)
    if origin in _SEQUENCES:
        items = [a for a in args if a is not Ellipsis]
        if items and all(a is int for a in items):
            return "ints"
    return "any"


def _string_type(text: str) -> str | None:
    """The type name of an annotation left as a string (it could not be resolved)."""
    names = set()
    for part in (p.strip() for p in text.split("|")):
        if part in ("None", ""):
            continue
        base, _, rest = part.partition("[")
        items = [i.strip() for i in rest.rstrip("]").split(",") if i.strip() not in ("", "...")]
        if part in _SCALAR_NAMES:
            names.add(part)
        elif base in ("tuple", "list", "Sequence", "Iterable") and items and all(i == "int" for i in items):
            names.add("ints")
        else:
            names.add("any")
    return _combine(names) if names else None


def params_from_signature(factory: Callable[..., Any]) -> tuple[ParamSpec, ...]:
    """The parameter schema of a factory, from its signature (``device``/``dtype`` are skipped).

    Types come from the annotations (``int | None`` is ``"int"``, ``int | tuple[int, int]``
    is ``"ints"``, ``Any`` is ``"any"``) or, for an unannotated parameter, from the type
    of its default; a parameter without a default is required.

    >>> def block(width: int, dropout: float = 0.1, norm: bool = True, kernel=(3, 3)): ...
    >>> [(p.name, p.type, p.default, p.required) for p in params_from_signature(block)]
    [('width', 'int', None, True), ('dropout', 'float', 0.1, False), ('norm', 'bool', True, False), ('kernel', 'ints', (3, 3), False)]
    """
    is_class = inspect.isclass(factory)
    target = factory.__init__ if is_class else factory
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
        if (i == 0 and is_class) or name in ("self", "device", "dtype"):
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(name, p.annotation)
        kind = _string_type(ann) if isinstance(ann, str) else _annotation_type(ann)
        if kind is None:
            kind = _default_type(p.default)
        required = p.default is _REQUIRED
        out.append(ParamSpec(name, kind, None if required else p.default, required))
    return tuple(out)


def _coerce_params(name: str, params: Any) -> tuple[ParamSpec, ...]:
    """Explicit ``params`` metadata (ParamSpecs or their dicts) checked into ParamSpecs."""
    out = []
    for p in params:
        if isinstance(p, dict):
            try:
                p = ParamSpec(**p)
            except TypeError as exc:
                msg = (f"module '{name}': a parameter given as a dict takes the keys name, type, default, "
                       f"required; got {sorted(p)} ({exc})")
                raise DiscoveryError(msg) from None
        if not isinstance(p, ParamSpec):
            raise DiscoveryError(f"module '{name}': params must be ParamSpec objects or dicts; got {type(p).__name__}")
        if p.type not in PARAM_TYPES:
            msg = f"module '{name}': parameter '{p.name}' has type {p.type!r}; expected one of {', '.join(PARAM_TYPES)}"
            raise DiscoveryError(msg)
        out.append(p)
    return tuple(out)


# ---------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------

class ModuleDiscoveryRegistry:
    """Module factories by name, with metadata, search, and change notifications.

    Examples
    --------
    >>> reg = ModuleDiscoveryRegistry()
    >>> def scaled_tanh(scale: float = 2.0):
    ...     '''tanh scaled by a constant.'''
    >>> reg.register("scaled_tanh", scaled_tanh, category="activation").schema()["params"]
    [{'name': 'scale', 'type': 'float', 'default': 2.0, 'required': False}]
    >>> [i.name for i in reg.search("tanh")], reg.by_category()
    (['scaled_tanh'], {'activation': ['scaled_tanh']})
    """

    def __init__(self) -> None:
        self._items: dict[str, ModuleInfo] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, str], None]] = []
        self.version = 0  # bumped on every change (cheap staleness check for views)

    def register(self, name: str, factory: Callable[..., Any], metadata: dict[str, Any] | None = None, *,
                 replace: bool = False, **meta: Any) -> ModuleInfo:
        """Add a factory. ``metadata`` (or keywords): ``category``, ``description``, ``params``.

        ``params`` overrides the schema derived from the signature. Inside a plugin's
        ``on_load`` the registration is undone when the plugin fails to load or unloads.

        Raises
        ------
        DiscoveryError
            For a bad name, factory, category or schema, or a taken name without ``replace=True``.
        """
        meta = {**(metadata or {}), **meta}
        if not isinstance(name, str) or not name.strip():
            raise DiscoveryError(f"a module name must be a non-empty string such as 'my_block'; got {name!r}")
        if not callable(factory):
            raise DiscoveryError(f"module '{name}': the factory must be callable (a Module class or a function "
                                 f"returning a Module); got {type(factory).__name__}")
        unknown = sorted(set(meta) - {"category", "description", "params"})
        if unknown:
            raise DiscoveryError(f"module '{name}': unknown metadata {unknown}; expected category, description, params")
        category = meta.get("category", "custom")
        if category not in CATEGORIES:
            raise DiscoveryError(f"module '{name}': unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
        desc = meta.get("description") or (inspect.getdoc(factory) or "").split("\n")[0]
        params = meta.get("params")
        params = _coerce_params(name, params) if params is not None else params_from_signature(factory)
        from ..plugins.context import current_loading_context

        log = current_loading_context()
        info = ModuleInfo(name, factory, category, desc, params, log.plugin_id if log is not None else None)
        with self._lock:
            old = self._items.get(name)
            if old is not None and not replace:
                owner = f" by plugin '{old.plugin}'" if old.plugin else ""
                raise DiscoveryError(f"a module named '{name}' is already registered{owner}; pass replace=True "
                                     "to swap it, or choose another name")
            self._items[name] = info
            self.version += 1
        self._notify("registered", name)
        if log is not None:
            log(lambda: self._restore(name, info, old), f"module {name!r}")
        return info

    def _restore(self, name: str, info: ModuleInfo, old: ModuleInfo | None) -> None:
        """Undo one registration, unless someone replaced or removed it since."""
        with self._lock:
            if self._items.get(name) is not info:
                return
            if old is None:
                del self._items[name]
            else:
                self._items[name] = old
            self.version += 1
        self._notify("unregistered" if old is None else "registered", name)

    def unregister(self, name: str) -> ModuleInfo:
        """Remove the factory ``name`` and return its info.

        Inside a plugin's ``on_load`` the factory comes back when the plugin fails to load
        or unloads (unless another one took the name since).
        """
        with self._lock:
            info = self.get(name)
            del self._items[name]
            self.version += 1
        self._notify("unregistered", name)
        from ..plugins.context import current_loading_context

        log = current_loading_context()
        if log is not None:
            log(lambda: self._put_back(name, info), f"removal of module {name!r}")
        return info

    def _put_back(self, name: str, info: ModuleInfo) -> None:
        """Undo one removal, unless the name was taken again since."""
        with self._lock:
            if name in self._items:
                return
            self._items[name] = info
            self.version += 1
        self._notify("registered", name)

    def get(self, name: str) -> ModuleInfo:
        """The info of module ``name``; :class:`UnknownModuleError` (a KeyError) suggests close names."""
        info = self._items.get(name) if isinstance(name, str) else None
        if info is None:
            close = tuple(difflib.get_close_matches(str(name), list(self._items), n=3))
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; see registry.list()"
            raise UnknownModuleError(f"no module named {name!r} is registered{hint}", str(name), close)
        return info

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[ModuleInfo]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<ModuleDiscoveryRegistry: {len(self)} modules>"

    def list(self, category: str | None = None) -> list[ModuleInfo]:
        """Registered modules, optionally of one category, sorted by name."""
        if category is not None and category not in CATEGORIES:
            raise DiscoveryError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
        items = sorted(self._items.values(), key=lambda i: i.name)
        return [i for i in items if category is None or i.category == category]

    def by_category(self) -> dict[str, builtins.list[str]]:
        """Module names grouped by category (categories in :data:`CATEGORIES` order)."""
        out: dict[str, builtins.list[str]] = {}
        for info in sorted(self.list(), key=lambda i: CATEGORIES.index(i.category)):
            out.setdefault(info.category, []).append(info.name)
        return out

    def search(self, query: str) -> builtins.list[ModuleInfo]:
        """Modules whose name, category, description or parameter names contain every word of ``query``.

        Name matches come first.
        """
        words = query.lower().split()
        hits = []
        for info in self.list():
            text = " ".join([info.name, info.category, info.description, *(p.name for p in info.params)]).lower()
            if all(w in text for w in words):
                hits.append(info)
        return sorted(hits, key=lambda i: not all(w in i.name.lower() for w in words))

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
                warnings.warn(f"module registry listener {cb!r} failed on {action} '{name}': "
                              f"{type(exc).__name__}: {exc}", stacklevel=3)

    # ---- validation ------------------------------------------------------------------
    def check_params(self, name: str, params: dict[str, Any]) -> dict[str, str]:
        """Errors by field for building module ``name`` with ``params`` (empty when fine)."""
        info = self.get(name)
        errors: dict[str, str] = {}
        known = {p.name: p for p in info.params}
        for key in params:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                errors[key] = (f"unknown parameter '{key}' (expected one of: {', '.join(known) or 'none'})"
                               f"{hint}")
        for p in info.params:
            if p.name not in params:
                if p.required:
                    errors[p.name] = f"'{p.name}' is required ({p.type}) but missing"
                continue
            problem = _type_problem(p, params[p.name])
            if problem:
                errors[p.name] = problem
        return errors


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_problem(spec: ParamSpec, value: Any) -> str | None:
    t = spec.type
    if value is None and not spec.required:
        return None
    ok = {
        "int": _is_int(value),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "ints": _is_int(value) or (isinstance(value, list | tuple) and all(_is_int(v) for v in value)),
    }.get(t, True)
    if not ok:
        want = {"ints": "an int or a list of ints", "int": "an int"}.get(t, f"a {t}")
        return f"'{spec.name}' must be {want}; got {type(value).__name__} {value!r}"
    if t in ("int", "ints") and not spec.name.endswith(_SIGNED_SUFFIXES):
        values = value if isinstance(value, list | tuple) else [value]
        if any(v < 0 for v in values):
            return f"'{spec.name}' must be non-negative; got {value!r}"
    return None


# ---------------------------------------------------------------------------------
# the built-in modules
# ---------------------------------------------------------------------------------

_default: ModuleDiscoveryRegistry | None = None
_default_lock = threading.Lock()

# name -> (attribute of spiraltorch_nb.nn, category)
_BUILTINS = {
    "linear": ("Linear", "layer"), "conv2d": ("Conv2d", "layer"), "embedding": ("Embedding", "layer"),
    "flatten": ("Flatten", "layer"), "unflatten": ("Unflatten", "layer"), "dropout": ("Dropout", "layer"),
    "identity": ("Identity", "layer"), "multihead_attention": ("MultiheadAttention", "layer"),
    "transformer_encoder_layer": ("TransformerEncoderLayer", "layer"),
    "relu": ("ReLU", "activation"), "gelu": ("GELU", "activation"), "silu": ("SiLU", "activation"),
    "tanh": ("Tanh", "activation"), "sigmoid": ("Sigmoid", "activation"), "softmax": ("Softmax", "activation"),
    "softplus": ("Softplus", "activation"), "leaky_relu": ("LeakyReLU", "activation"),
    "log_softmax": ("LogSoftmax", "activation"),
    "layer_norm": ("LayerNorm", "normalization"), "group_norm": ("GroupNorm", "normalization"),
    "batch_norm1d": ("BatchNorm1d", "normalization"), "batch_norm2d": ("BatchNorm2d", "normalization"),
    "max_pool2d": ("MaxPool2d", "pooling"), "avg_pool2d": ("AvgPool2d", "pooling"),
    "adaptive_avg_pool2d": ("AdaptiveAvgPool2d", "pooling"),
    "mse_loss": ("MSELoss", "loss"), "l1_loss": ("L1Loss", "loss"), "cross_entropy_loss": ("CrossEntropyLoss", "loss"),
    "bce_loss": ("BCELoss", "loss"), "bce_with_logits_loss": ("BCEWithLogitsLoss", "loss"),
    "nll_loss": ("NLLLoss", "loss"),
}
_BUILTIN_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
# where a signature says only ``Any``: the types these parameters really take
_REFINED = {
    "conv2d": {"kernel_size": "ints", "stride": "ints", "dilation": "ints"},
    "max_pool2d": {"kernel_size": "ints", "stride": "ints", "padding": "ints", "dilation": "ints"},
    "avg_pool2d": {"kernel_size": "ints", "stride": "ints", "padding": "ints"},
    "adaptive_avg_pool2d": {"output_size": "ints"},
}


def _refined(name: str, factory: Callable[..., Any]) -> tuple[ParamSpec, ...]:
    types_ = _REFINED.get(name, {})
    return tuple(ParamSpec(p.name, types_.get(p.name, p.type), p.default, p.required)
                 for p in params_from_signature(factory))


def default_registry() -> ModuleDiscoveryRegistry:
    """The registry holding every built-in module (created on first use).

    >>> reg = default_registry()
    >>> reg.get("linear").schema()["params"][0]
    {'name': 'in_features', 'type': 'int', 'default': None, 'required': True}
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                reg = ModuleDiscoveryRegistry()
                from .. import nn

                for name, (attr, cat) in _BUILTINS.items():
                    cls = getattr(nn, attr, None)
                    if cls is not None:
                        reg.register(name, cls, category=cat, params=_refined(name, cls))
                try:
                    from .. import optim
                except ImportError:  # the optimizers are optional here
                    optim = None  # type: ignore[assignment]
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
# the parameter that fixes what input size a stage takes (named in shape errors)
_INPUT_SIZE_PARAMS = ("in_features", "in_channels", "num_features", "normalized_shape", "num_channels",
                      "embed_dim", "d_model", "num_embeddings")


def _problem(stage: int | None, field: str | None, message: str) -> dict[str, Any]:
    return {"stage": stage, "field": field, "message": message}


class PipelineBuilder:
    """Build a ``Sequential`` model stage by stage, or from a JSON-serializable config.

    A config is ``{"version": 1, "stages": [{"name": ..., "params": {...}}, ...]}``,
    optionally with ``"input_shape"`` (used by :meth:`infer_shapes` and
    :meth:`validate` when no shape is passed).

    Examples
    --------
    >>> import json
    >>> b = PipelineBuilder().add("linear", in_features=4, out_features=3).add("softmax", dim=-1)
    >>> model = PipelineBuilder.from_config(json.loads(json.dumps(b.to_config()))).build()
    >>> type(model).__name__, len(model)
    ('Sequential', 2)
    >>> PipelineBuilder().add("linear", in_features=4)
    Traceback (most recent call last):
    ...
    spiraltorch_nb.nn.discovery.PipelineError: stage 0 (linear): 'out_features' is required (int) but missing
    """

    def __init__(self, registry: ModuleDiscoveryRegistry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.stages: list[dict[str, Any]] = []
        self.input_shape: tuple[int, ...] | None = None

    # ---- editing -----------------------------------------------------------------
    def add(self, name: str, **params: Any) -> PipelineBuilder:
        """Append a stage; raises :class:`PipelineError` naming the stage and field when invalid."""
        stage = {"name": name, "params": dict(params)}
        problems = self._stage_problems(len(self.stages), stage)
        if problems:
            raise _as_error(problems[0])
        self.stages.append(stage)
        return self

    def remove(self, index: int) -> dict[str, Any]:
        """Take stage ``index`` out and return it."""
        return self.stages.pop(index)

    def _stage_problems(self, index: int, stage: Any) -> list[dict[str, Any]]:
        """Every problem of one stage (unknown module, wrong category, bad or missing params)."""
        if not isinstance(stage, dict):
            msg = f"stage {index}: expected an object with 'name' and 'params'; got {type(stage).__name__}"
            return [_problem(index, "name", msg)]
        problems = []
        for key in stage:
            if key not in _STAGE_KEYS:
                problems.append(_problem(index, key, f"stage {index}: unknown key {key!r} (a stage has 'name' "
                                                     "and 'params')"))
        name, params = stage.get("name"), stage.get("params", {})
        if not isinstance(name, str) or name not in self.registry:
            close = difflib.get_close_matches(str(name), [i.name for i in self.registry], n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            why = _NOT_STAGES.get(str(name).lower().replace("_", ""))
            hint = f" ({why})" if why else hint
            return [*problems, _problem(index, "name", f"stage {index}: unknown module {name!r}{hint}")]
        info = self.registry.get(name)
        if info.category not in _STAGE_CATEGORIES:
            msg = (f"stage {index}: '{name}' is a {info.category}, not a model stage (stages are "
                   f"{', '.join(_STAGE_CATEGORIES)})")
            return [*problems, _problem(index, "name", msg)]
        if not isinstance(params, dict):
            msg = f"stage {index} ({name}): 'params' must be an object; got {type(params).__name__}"
            return [*problems, _problem(index, "params", msg)]
        for fld, msg in self.registry.check_params(name, params).items():
            problems.append(_problem(index, fld, f"stage {index} ({name}): {msg}"))
        return problems

    def validate(self, input_shape: tuple[int, ...] | list[int] | None = None) -> list[dict[str, Any]]:
        """Every problem as ``{"stage", "field", "message"}`` (empty when the pipeline is valid); never raises.

        With an ``input_shape`` (or one stored in the config) and no parameter problems,
        shapes are checked too: the first stage that cannot take its input is reported.
        """
        problems = []
        for i, stage in enumerate(self.stages):
            problems.extend(self._stage_problems(i, stage))
        shape = input_shape if input_shape is not None else self.input_shape
        if not problems and shape is not None:
            try:
                self.infer_shapes(shape)
            except PipelineError as exc:
                problems.append(_problem(exc.stage, exc.field, str(exc)))
            except Exception as exc:  # validate() reports, it never raises
                problems.append(_problem(None, None, f"shape inference failed: {type(exc).__name__}: {exc}"))
        return problems

    def _raise_first(self) -> None:
        for i, stage in enumerate(self.stages):
            problems = self._stage_problems(i, stage)
            if problems:
                raise _as_error(problems[0])

    # ---- building ----------------------------------------------------------------
    def _make(self, index: int) -> Any:
        stage = self.stages[index]
        info = self.registry.get(stage["name"])
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in stage.get("params", {}).items()}
        try:
            return info.factory(**params)
        except (SpiralTorchError, TypeError, ValueError, NotImplementedError) as exc:
            msg = f"stage {index} ({stage['name']}): the factory refused {params}: {exc}"
            raise PipelineError(msg, stage=index, field="params") from exc

    def build(self) -> Any:
        """The model: a ``Sequential`` of the stages (raises the first problem as :class:`PipelineError`)."""
        from .container import Sequential

        self._raise_first()
        return Sequential(*[self._make(i) for i in range(len(self.stages))])

    # ---- configs -----------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The JSON-serializable config: ``{"version": 1, "stages": [{"name", "params"}, ...]}``.

        Tuples are written as lists, so the result equals its own JSON round trip.

        Raises
        ------
        PipelineError
            When a parameter holds something JSON cannot (a function, a tensor), naming it.
        """
        stages = []
        for i, stage in enumerate(self.stages):
            params = _jsonable(copy.deepcopy(stage.get("params", {})))
            for key, value in params.items():
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    msg = (f"stage {i} ({stage.get('name')}): parameter '{key}' holds a {type(value).__name__}, "
                           "which a JSON config cannot hold; use a number, string, bool or list")
                    raise PipelineError(msg, stage=i, field=key) from None
            stages.append({"name": stage.get("name"), "params": params})
        config: dict[str, Any] = {"version": _CONFIG_VERSION, "stages": stages}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], registry: ModuleDiscoveryRegistry | None = None) -> PipelineBuilder:
        """A builder holding ``config``'s stages; raises :class:`PipelineError` on the first bad one."""
        b = cls(registry)
        if not isinstance(config, dict) or not isinstance(config.get("stages"), list):
            raise PipelineError("a pipeline config is an object with a 'stages' list, e.g. "
                                "{'version': 1, 'stages': [{'name': 'linear', 'params': {...}}]}", field="stages")
        for key in config:
            if key not in _CONFIG_KEYS:
                raise PipelineError(f"unknown config key {key!r}; a config has {', '.join(map(repr, _CONFIG_KEYS))}",
                                    field=key)
        version = config.get("version", _CONFIG_VERSION)
        if version != _CONFIG_VERSION:
            raise PipelineError(f"pipeline config version {version!r} is not supported (expected {_CONFIG_VERSION})",
                                field="version")
        if config.get("input_shape") is not None:
            b.input_shape = _check_shape(config["input_shape"])
        for i, stage in enumerate(config["stages"]):
            problems = b._stage_problems(i, stage)
            if problems:
                raise _as_error(problems[0])
            b.stages.append({"name": stage["name"], "params": copy.deepcopy(dict(stage.get("params", {})))})
        return b

    # ---- shapes ------------------------------------------------------------------
    def infer_shapes(self, input_shape: tuple[int, ...] | list[int] | None = None, *,
                     dtype: Any = None) -> list[dict[str, Any]]:
        """Each stage's input and output shape and parameter count for an input of ``input_shape``.

        Each stage is built and run once on zeros (in eval mode, under ``no_grad``); the
        input is float32, or int64 when the first stage is an embedding, unless ``dtype``
        says otherwise. The random streams are left as they were, so a later ``build()``
        initializes the same weights whether or not shapes were inferred first.

        Returns
        -------
        list of dict
            ``{"index", "name", "input_shape", "output_shape", "params"}`` per stage.

        Raises
        ------
        PipelineError
            For a bad stage, or one that cannot take its input: the error names the stage
            and the parameter that sets the input size it expects (``field``).
        """
        from ..autograd.grad_mode import no_grad
        from ..ops.creation import zeros
        from ..tensor import Tensor

        shape = _check_shape(input_shape if input_shape is not None else self.input_shape)
        self._raise_first()
        if dtype is None and self.stages and self.stages[0]["name"] == "embedding":
            dtype = "int64"
        out = []
        with no_grad(), _random_state_kept():
            x = zeros(*shape, dtype=dtype)
            for i, stage in enumerate(self.stages):
                module = self._make(i)
                if hasattr(module, "eval"):
                    module.eval()
                try:
                    y = module(x)
                except Exception as exc:  # any failure here means this stage cannot take x
                    raise self._shape_error(i, tuple(x.shape), exc) from exc
                if not isinstance(y, Tensor):
                    msg = (f"stage {i} ({stage['name']}) returns a {type(y).__name__}, not a tensor, so the "
                           "next stage of a Sequential pipeline cannot take it")
                    raise PipelineError(msg, stage=i, field="name")
                n_params = sum(p.numel() for p in module.parameters()) if hasattr(module, "parameters") else 0
                out.append({"index": i, "name": stage["name"], "input_shape": tuple(x.shape),
                            "output_shape": tuple(y.shape), "params": int(n_params)})
                x = y
        return out

    def _shape_error(self, index: int, shape: tuple[int, ...], exc: Exception) -> PipelineError:
        stage = self.stages[index]
        params = stage.get("params", {})
        field = next((k for k in _INPUT_SIZE_PARAMS if k in params), "input_shape")
        source = f"stage {index - 1}" if index else "the pipeline input"
        fix = (f"set '{field}' to match, or change an earlier stage" if field != "input_shape"
               else "change the input shape or an earlier stage")
        shown = f", {field}={params[field]!r}" if field in params else ""
        msg = (f"stage {index} ({stage['name']}{shown}) cannot take input of shape {shape} from {source}: "
               f"{exc}; {fix}")
        return PipelineError(msg, stage=index, field=field)

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        inner = ", ".join(str(s.get("name")) for s in self.stages)
        return f"PipelineBuilder([{inner}])"


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Restore every backend's random generator afterwards (throwaway modules draw weights)."""
    from ..backends import random as _random

    saved = {}
    for name, gen in list(_random._generators.items()):
        try:
            saved[name] = copy.deepcopy(gen)
        except Exception:  # a generator that cannot be copied keeps advancing
            saved[name] = gen
    try:
        yield
    finally:
        _random._generators.clear()
        _random._generators.update(saved)


def _as_error(problem: dict[str, Any]) -> PipelineError:
    return PipelineError(problem["message"], stage=problem["stage"], field=problem["field"])


def _check_shape(shape: Any) -> tuple[int, ...]:
    if shape is None:
        raise PipelineError("infer_shapes needs an input shape, e.g. infer_shapes((32, 4)), or an 'input_shape' "
                            "in the config", field="input_shape")
    if not isinstance(shape, list | tuple) or not shape or not all(_is_int(s) and s > 0 for s in shape):
        raise PipelineError(f"an input shape is a non-empty list of positive ints such as (32, 4); got {shape!r}",
                            field="input_shape")
    return tuple(shape)
