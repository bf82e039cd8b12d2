"""What a plugin declares: its :class:`PluginMetadata` and the :class:`Plugin` hooks.

Versions follow PEP 440 and dependencies are PEP 440 version specifiers, both
checked when the metadata is built, so a typo fails at the line that made it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from spiraltorch_nb.errors import PluginError

if TYPE_CHECKING:
    from spiraltorch_nb.plugins.context import PluginContext
    from spiraltorch_nb.plugins.events import Event

__all__ = ["KNOWN_CAPABILITIES", "Plugin", "PluginMetadata", "is_known_capability"]

#: The documented capabilities, each with what a plugin declaring it provides.
#: ``backend:<name>`` stands for any ``backend:`` followed by a backend name.
#: Plugins may declare other (custom) capabilities: any non-empty string.
KNOWN_CAPABILITIES: Mapping[str, str] = MappingProxyType(
    {
        "backend:<name>": "a compute backend named <name>, e.g. 'backend:cpu'",
        "operators": "operators registered in the operator registry",
        "modules": "nn modules registered for discovery and the pipeline builder",
        "losses": "loss functions",
        "optimizers": "optimizers or learning-rate schedulers",
        "telemetry": "telemetry recorders, exporters or views",
        "sequencer": "training-stage callbacks for the Trainer",
        "widgets": "notebook widgets",
    }
)

_BACKEND_PREFIX = "backend:"
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def is_known_capability(capability: str) -> bool:
    """Whether ``capability`` is one of :data:`KNOWN_CAPABILITIES` (not a custom one).

    Examples
    --------
    >>> is_known_capability("backend:wgpu"), is_known_capability("operators")
    (True, True)
    >>> is_known_capability("my-own-thing")
    False
    """
    if capability.startswith(_BACKEND_PREFIX):
        return len(capability) > len(_BACKEND_PREFIX)
    return capability in KNOWN_CAPABILITIES


def _check_id(plugin_id: object, what: str, owner: str | None) -> str:
    if not isinstance(plugin_id, str) or not _ID_PATTERN.fullmatch(plugin_id):
        message = (
            f"{what} must be a non-empty string of letters, digits, '_', '.' or '-' "
            f"starting with a letter or digit (e.g. 'my-plugin'), got {plugin_id!r}."
        )
        raise PluginError(message, plugin_id=owner)
    return plugin_id


def _parse_version(plugin_id: str, version: object) -> Version:
    if isinstance(version, Version):
        return version
    if not isinstance(version, str):
        message = (
            f"plugin {plugin_id!r}: version must be a PEP 440 string such as '1.0' or "
            f"'0.3.2', got {type(version).__name__} {version!r}. Quote it: version='1.0'."
        )
        raise PluginError(message, plugin_id=plugin_id)
    try:
        return Version(version)
    except InvalidVersion:
        message = (
            f"plugin {plugin_id!r}: version {version!r} is not a valid PEP 440 version. "
            f"Expected something like '1.0', '0.3.2' or '2.0rc1'."
        )
        raise PluginError(message, plugin_id=plugin_id) from None


def _parse_specifier(plugin_id: str, dep_id: str, spec: object) -> SpecifierSet:
    if spec is None:
        return SpecifierSet("")
    if isinstance(spec, SpecifierSet):
        return spec
    if not isinstance(spec, str):
        message = (
            f"plugin {plugin_id!r}: the version specifier for dependency {dep_id!r} must be "
            f"a string such as '>=1.0,<2', got {type(spec).__name__} {spec!r}."
        )
        raise PluginError(message, plugin_id=plugin_id)
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        hint = ""
        if spec.strip() and spec.strip()[0].isdigit():
            hint = f" Did you mean '=={spec.strip()}' or '>={spec.strip()}'?"
        message = (
            f"plugin {plugin_id!r}: dependency {dep_id!r} has version specifier {spec!r}, "
            f"which is not a valid PEP 440 specifier. Expected something like '>=1.0', "
            f"'~=2.1' or '>=1,<2' ('' for any version).{hint}"
        )
        raise PluginError(message, plugin_id=plugin_id) from None


@dataclass(frozen=True)
class PluginMetadata:
    """The identity, version, capabilities and dependencies of a plugin.

    Parameters
    ----------
    id : str
        Unique id, e.g. ``"fused-gelu"``: letters, digits, ``_``, ``.``, ``-``.
    version : str
        A PEP 440 version such as ``"1.2.0"``.
    name : str, optional
        Human-readable name; defaults to ``id``.
    description, author : str, optional
        Free text shown in listings.
    capabilities : iterable of str, optional
        What the plugin provides: see :data:`KNOWN_CAPABILITIES`; custom strings
        are allowed. Duplicates are dropped, order kept.
    dependencies : mapping of str to str, optional
        Plugin id to PEP 440 specifier (``{"core": ">=1.0,<2"}``; ``""`` for any
        version). Pre-release versions satisfy a specifier when in range.

    Raises
    ------
    PluginError
        On an invalid id, version, capability or specifier; the message names the plugin.

    Examples
    --------
    >>> meta = PluginMetadata("fused-gelu", "1.2.0", capabilities=["operators", "backend:cuda"],
    ...                       dependencies={"core": ">=1.0,<2"})
    >>> meta.name, meta.parsed_version.major
    ('fused-gelu', 1)
    >>> meta.dependency_specifier("core").contains("1.4")
    True
    >>> PluginMetadata("broken", "one point oh")
    Traceback (most recent call last):
        ...
    spiraltorch_nb.errors.PluginError: plugin 'broken': version 'one point oh' is not a valid PEP 440 version. Expected something like '1.0', '0.3.2' or '2.0rc1'.
    """

    id: str
    version: str
    _: KW_ONLY
    name: str | None = None
    description: str = ""
    author: str = ""
    capabilities: tuple[str, ...] = ()
    dependencies: Mapping[str, str] = field(default_factory=dict, hash=False)
    _parsed_version: Version = field(init=False, repr=False, compare=False, hash=False)
    _specifiers: Mapping[str, SpecifierSet] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        plugin_id = _check_id(self.id, "a plugin id", owner=None)
        parsed = _parse_version(plugin_id, self.version)
        set_field = object.__setattr__  # the dataclass is frozen
        set_field(self, "version", str(self.version))
        set_field(self, "_parsed_version", parsed)
        if self.name is None:
            set_field(self, "name", plugin_id)
        for attr in ("name", "description", "author"):
            if not isinstance(getattr(self, attr), str):
                message = (
                    f"plugin {plugin_id!r}: {attr} must be a string, got "
                    f"{type(getattr(self, attr)).__name__}."
                )
                raise PluginError(message, plugin_id=plugin_id)
        set_field(self, "capabilities", self._check_capabilities(plugin_id, self.capabilities))
        dependencies, specifiers = self._check_dependencies(plugin_id, self.dependencies)
        set_field(self, "dependencies", dependencies)
        set_field(self, "_specifiers", specifiers)

    @staticmethod
    def _check_capabilities(plugin_id: str, capabilities: Any) -> tuple[str, ...]:
        if isinstance(capabilities, str) or not isinstance(capabilities, Iterable):
            message = (
                f"plugin {plugin_id!r}: capabilities must be a list of strings such as "
                f"['operators', 'backend:cuda'], got {capabilities!r}."
            )
            raise PluginError(message, plugin_id=plugin_id)
        checked: dict[str, None] = {}
        for capability in capabilities:
            if not isinstance(capability, str) or not capability.strip():
                message = (
                    f"plugin {plugin_id!r}: each capability must be a non-empty string, got "
                    f"{capability!r}. Known ones: {', '.join(KNOWN_CAPABILITIES)}."
                )
                raise PluginError(message, plugin_id=plugin_id)
            if capability == _BACKEND_PREFIX:
                message = (
                    f"plugin {plugin_id!r}: capability 'backend:' needs a backend name "
                    f"after the colon, e.g. 'backend:cuda'."
                )
                raise PluginError(message, plugin_id=plugin_id)
            checked[capability] = None
        return tuple(checked)

    @staticmethod
    def _check_dependencies(
        plugin_id: str, dependencies: Any
    ) -> tuple[Mapping[str, str], Mapping[str, SpecifierSet]]:
        if not isinstance(dependencies, Mapping):
            message = (
                f"plugin {plugin_id!r}: dependencies must map plugin ids to version "
                f"specifiers, e.g. {{'core': '>=1.0'}}, got {type(dependencies).__name__} "
                f"{dependencies!r}."
            )
            raise PluginError(message, plugin_id=plugin_id)
        texts: dict[str, str] = {}
        specifiers: dict[str, SpecifierSet] = {}
        for dep_id, spec in dependencies.items():
            _check_id(dep_id, f"plugin {plugin_id!r}: a dependency id", owner=plugin_id)
            if dep_id == plugin_id:
                message = (
                    f"plugin {plugin_id!r} lists itself as a dependency; remove "
                    f"{plugin_id!r} from its dependencies."
                )
                raise PluginError(message, plugin_id=plugin_id)
            specifier = _parse_specifier(plugin_id, dep_id, spec)
            # Keep the text as written: messages then quote what the author typed.
            texts[dep_id] = spec.strip() if isinstance(spec, str) else str(specifier)
            specifiers[dep_id] = specifier
        return MappingProxyType(texts), MappingProxyType(specifiers)

    def __repr__(self) -> str:
        shown = [f"{self.id!r}", f"{self.version!r}"]
        if self.name != self.id:
            shown.append(f"name={self.name!r}")
        for attr in ("description", "author"):
            if getattr(self, attr):
                shown.append(f"{attr}={getattr(self, attr)!r}")
        if self.capabilities:
            shown.append(f"capabilities={list(self.capabilities)!r}")
        if self.dependencies:
            shown.append(f"dependencies={dict(self.dependencies)!r}")
        return f"PluginMetadata({', '.join(shown)})"

    @property
    def parsed_version(self) -> Version:
        """The version as a :class:`packaging.version.Version`."""
        return self._parsed_version

    def dependency_specifier(self, dependency_id: str) -> SpecifierSet:
        """The :class:`~packaging.specifiers.SpecifierSet` required of ``dependency_id``."""
        try:
            return self._specifiers[dependency_id]
        except KeyError:
            message = (
                f"plugin {self.id!r} does not depend on {dependency_id!r}; its dependencies "
                f"are: {', '.join(self.dependencies) or 'none'}."
            )
            raise PluginError(message, plugin_id=self.id) from None

    def accepts(self, dependency_id: str, version: str | Version) -> bool:
        """Whether ``version`` of ``dependency_id`` satisfies this plugin's requirement."""
        return self.dependency_specifier(dependency_id).contains(version, prereleases=True)

    def has_capability(self, pattern: str) -> bool:
        """Whether any capability matches ``pattern`` (fnmatch wildcards allowed).

        Examples
        --------
        >>> meta = PluginMetadata("wgpu-extra", "0.1", capabilities=["backend:wgpu"])
        >>> meta.has_capability("backend:*"), meta.has_capability("operators")
        (True, False)
        """
        return any(fnmatch.fnmatchcase(c, pattern) for c in self.capabilities)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable description (for listings and widgets)."""
        return {
            "id": self.id,
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "author": self.author,
            "capabilities": list(self.capabilities),
            "dependencies": dict(self.dependencies),
        }


class Plugin:
    """Base class of plugins: declare ``metadata`` and override the hooks you need.

    ``metadata`` is a class attribute (or a property) holding a
    :class:`PluginMetadata`. The hooks receive the registry's
    :class:`~spiraltorch_nb.plugins.PluginContext`; each does nothing by default.

    Examples
    --------
    >>> class Hello(Plugin):
    ...     metadata = PluginMetadata("hello", "1.0", capabilities=["telemetry"])
    ...
    ...     def on_load(self, ctx):
    ...         ctx.set_config("hello.greeting", "hi")
    >>> Hello().metadata.id
    'hello'
    """

    metadata: PluginMetadata

    def on_load(self, ctx: PluginContext) -> None:
        """Called when the plugin loads, after its dependencies; register things here.

        What it registers through ``ctx``, ``ctx.events`` or the operator registry is
        removed again if it raises, and when the plugin unloads.
        """

    def on_unload(self, ctx: PluginContext) -> None:
        """Called when the plugin unloads, before its undo log is replayed."""

    def on_event(self, event: Event, ctx: PluginContext) -> None:
        """Called with every event published on the registry's bus while loaded."""

    def __repr__(self) -> str:
        metadata = getattr(self, "metadata", None)
        if isinstance(metadata, PluginMetadata):
            return f"<{type(self).__name__} {metadata.id!r} {metadata.version}>"
        return f"<{type(self).__name__} (no metadata)>"
