"""Turning plugin specs into :class:`Plugin` instances, and discovering entry points.

A spec is a :class:`Plugin` instance, a :class:`Plugin` subclass (instantiated
with no arguments) or a ``"package.module:attr"`` string whose ``attr`` is one of
those or a zero-argument factory returning an instance. Installed distributions
offer plugins through the ``spiraltorch_nb.plugins`` entry-point group::

    [project.entry-points."spiraltorch_nb.plugins"]
    fused-gelu = "my_package.plugin:FusedGelu"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass, field
from typing import Any

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins.metadata import Plugin, PluginMetadata

__all__ = [
    "ENTRY_POINT_GROUP",
    "EntryPointFailure",
    "EntryPointReport",
    "LoadedEntryPoint",
    "discover_entry_points",
    "load_plugin",
]

#: The entry-point group that installed distributions list their plugins under.
ENTRY_POINT_GROUP = "spiraltorch_nb.plugins"

PluginSpec = Plugin | type[Plugin] | str

_SPEC_FORMS = "a Plugin instance, a Plugin subclass, or a 'package.module:attr' string"


def load_plugin(spec: PluginSpec) -> Plugin:
    """Resolve ``spec`` to a :class:`Plugin` instance with valid metadata.

    Parameters
    ----------
    spec : Plugin, type[Plugin] or str
        An instance (returned as is), a subclass (instantiated with no arguments),
        or ``"package.module:attr"`` where ``attr`` (dotted for nested names) is a
        subclass, an instance, or a zero-argument factory returning an instance.

    Returns
    -------
    Plugin

    Raises
    ------
    PluginError
        On a malformed string, a module that does not import, a missing attribute,
        or an object of the wrong type; the message says which and how to fix it.

    Examples
    --------
    >>> plugin = load_plugin("spiraltorch_nb.plugins.loader:_ExamplePlugin")
    >>> plugin.metadata.id
    'example'
    >>> load_plugin("no colon here")
    Traceback (most recent call last):
        ...
    spiraltorch_nb.errors.PluginError: plugin spec 'no colon here' is not of the form 'package.module:attr' (e.g. 'my_package.plugins:MyPlugin').
    """
    if isinstance(spec, str):
        return _from_object(_import_spec(spec), where=f"plugin spec {spec!r}", factory_ok=True)
    return _from_object(spec, where="load_plugin", factory_ok=False)


def _import_spec(spec: str) -> Any:
    module_name, sep, attr_path = spec.strip().partition(":")
    valid = (
        sep
        and ":" not in attr_path
        and all(part.isidentifier() for part in module_name.split("."))
        and all(part.isidentifier() for part in attr_path.split("."))
    )
    if not valid:
        message = (
            f"plugin spec {spec!r} is not of the form 'package.module:attr' "
            f"(e.g. 'my_package.plugins:MyPlugin')."
        )
        raise PluginError(message)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        message = (
            f"plugin spec {spec!r}: cannot import module {module_name!r} ({exc}). Check the "
            f"spelling, and that its package is installed in this kernel's environment "
            f"or on sys.path."
        )
        raise PluginError(message) from exc
    except Exception as exc:
        message = (
            f"plugin spec {spec!r}: importing module {module_name!r} raised "
            f"{type(exc).__name__}: {exc}. Fix the error in that module."
        )
        raise PluginError(message) from exc
    target: Any = module
    for depth, part in enumerate(attr_path.split(".")):
        try:
            target = getattr(target, part)
        except AttributeError:
            where = (
                module_name
                if depth == 0
                else f"{module_name}:{'.'.join(attr_path.split('.')[:depth])}"
            )
            candidates = _plugin_names(module) if depth == 0 else []
            hint = f" Plugins it defines: {', '.join(candidates)}." if candidates else ""
            message = f"plugin spec {spec!r}: {where!r} has no attribute {part!r}.{hint}"
            raise PluginError(message) from None
    return target


def _plugin_names(module: Any) -> list[str]:
    names = []
    for name, value in vars(module).items():
        is_class = inspect.isclass(value) and issubclass(value, Plugin) and value is not Plugin
        if is_class or isinstance(value, Plugin):
            names.append(name)
    return names


def _from_object(obj: Any, where: str, factory_ok: bool) -> Plugin:
    """Turn what a spec named into a checked Plugin; ``where`` starts every message."""
    if isinstance(obj, Plugin):
        plugin = obj
    elif inspect.isclass(obj):
        if not issubclass(obj, Plugin):
            message = (
                f"{where}: expected a subclass of spiraltorch_nb.plugins.Plugin, got class "
                f"{obj.__module__}.{obj.__qualname__}. Make it subclass Plugin and set "
                f"its `metadata`."
            )
            raise PluginError(message)
        plugin = _call(obj, where, "instantiating")
    elif factory_ok and callable(obj):
        plugin = _call(obj, where, "calling factory")
        if not isinstance(plugin, Plugin):
            message = (
                f"{where}: the factory returned {type(plugin).__name__} {plugin!r}; "
                f"expected a Plugin instance."
            )
            raise PluginError(message)
    else:
        message = f"{where}: expected {_SPEC_FORMS}, got {type(obj).__name__} {obj!r}."
        raise PluginError(message)
    check_metadata(plugin, where)
    return plugin


def _call(factory: Any, where: str, action: str) -> Any:
    name = getattr(factory, "__qualname__", repr(factory))
    try:
        return factory()
    except Exception as exc:
        message = (
            f"{where}: {action} {name}() raised {type(exc).__name__}: {exc}. Plugins are "
            f"created with no arguments; give its constructor defaults, or pass an instance."
        )
        raise PluginError(message) from exc


def check_metadata(plugin: Plugin, where: str = "") -> PluginMetadata:
    """Return ``plugin.metadata`` after checking it is a :class:`PluginMetadata`."""
    cls = f"plugin class {type(plugin).__qualname__}"
    if where:
        cls = f"{where}: {cls}"
    try:
        metadata = plugin.metadata
    except AttributeError:
        message = (
            f"{cls} has no `metadata`. Set a class attribute such as "
            f"`metadata = PluginMetadata('my-plugin', '1.0')`."
        )
        raise PluginError(message) from None
    except Exception as exc:
        message = f"{cls}: reading its `metadata` raised {type(exc).__name__}: {exc}."
        raise PluginError(message) from exc
    if not isinstance(metadata, PluginMetadata):
        message = (
            f"{cls}: `metadata` must be a PluginMetadata, got "
            f"{type(metadata).__name__} {metadata!r}. Use "
            f"`metadata = PluginMetadata('my-plugin', '1.0')`."
        )
        raise PluginError(message)
    return metadata


# -- entry points ----------------------------------------------------------------


@dataclass(frozen=True)
class LoadedEntryPoint:
    """An entry point that produced a plugin."""

    name: str
    value: str
    distribution: str | None
    plugin: Plugin


@dataclass(frozen=True)
class EntryPointFailure:
    """An entry point that could not produce (or register) a plugin, and why."""

    name: str
    value: str
    distribution: str | None
    error: PluginError

    def __str__(self) -> str:
        return f"entry point {self.name!r} ({self.value}): {self.error}"


@dataclass
class EntryPointReport:
    """What :func:`discover_entry_points` found: plugins loaded, entry points that failed.

    Attributes
    ----------
    group : str
        The entry-point group searched.
    loaded : list of LoadedEntryPoint
        Entry points that produced a plugin.
    errors : list of EntryPointFailure
        Entry points that failed, each with a :class:`PluginError` naming it.
    skipped : list of LoadedEntryPoint
        Plugins already registered by an earlier call (filled by
        ``PluginRegistry.load_entry_points``).
    """

    group: str
    loaded: list[LoadedEntryPoint] = field(default_factory=list)
    errors: list[EntryPointFailure] = field(default_factory=list)
    skipped: list[LoadedEntryPoint] = field(default_factory=list)

    @property
    def plugins(self) -> list[Plugin]:
        """The loaded plugins, in discovery order."""
        return [entry.plugin for entry in self.loaded]

    @property
    def ok(self) -> bool:
        """Whether every entry point loaded."""
        return not self.errors

    def __str__(self) -> str:
        lines = [
            f"entry points in group {self.group!r}: {len(self.loaded)} loaded, "
            f"{len(self.errors)} failed, {len(self.skipped)} already registered"
        ]
        lines += [f"  loaded  {e.name!r} -> {e.plugin!r}" for e in self.loaded]
        lines += [f"  skipped {e.name!r} -> {e.plugin!r}" for e in self.skipped]
        lines += [f"  FAILED  {failure}" for failure in self.errors]
        return "\n".join(lines)


def _failure(entry_point: Any, distribution: str | None, error: PluginError) -> EntryPointFailure:
    return EntryPointFailure(entry_point.name, entry_point.value, distribution, error)


def discover_entry_points(group: str = ENTRY_POINT_GROUP) -> EntryPointReport:
    """Load every plugin that installed distributions list under ``group``.

    Nothing is registered: pass the plugins to a registry, or call
    :meth:`PluginRegistry.load_entry_points`, which does both. One broken entry
    point does not stop the others; it is listed in the report's ``errors``.

    Parameters
    ----------
    group : str, default "spiraltorch_nb.plugins"

    Returns
    -------
    EntryPointReport

    Examples
    --------
    >>> report = discover_entry_points("spiraltorch_nb.no_such_group")
    >>> report.loaded, report.errors
    ([], [])
    """
    report = EntryPointReport(group)
    for entry_point in importlib.metadata.entry_points(group=group):
        dist = getattr(entry_point, "dist", None)
        distribution = getattr(dist, "name", None)
        label = f"entry point {entry_point.name!r} ({entry_point.value})"
        if distribution:
            label += f" of distribution {distribution!r}"
        try:
            obj = entry_point.load()
        except Exception as exc:
            message = (
                f"{label}: loading it raised {type(exc).__name__}: {exc}. Fix or reinstall "
                f"that distribution, or uninstall it to silence this."
            )
            report.errors.append(_failure(entry_point, distribution, PluginError(message)))
            continue
        try:
            plugin = _from_object(obj, where=label, factory_ok=True)
        except PluginError as exc:
            report.errors.append(_failure(entry_point, distribution, exc))
            continue
        report.loaded.append(
            LoadedEntryPoint(entry_point.name, entry_point.value, distribution, plugin)
        )
    return report


class _ExamplePlugin(Plugin):
    """A do-nothing plugin for this module's doctests."""

    metadata = PluginMetadata("example", "1.0", description="used in doctests")
