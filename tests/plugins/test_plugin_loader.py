"""load_plugin spec forms and errors; entry-point discovery from a real dist-info."""

from __future__ import annotations

import importlib
import textwrap
import uuid
from pathlib import Path

import pytest

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins import (
    ENTRY_POINT_GROUP,
    Plugin,
    PluginMetadata,
    PluginRegistry,
    discover_entry_points,
    load_plugin,
)

PLUGIN_MODULE = """
from spiraltorch_nb.plugins import Plugin, PluginMetadata


class Demo(Plugin):
    metadata = PluginMetadata("{pid}", "1.0", capabilities=["operators"])

    def on_load(self, ctx):
        ctx.set_config("{pid}.loaded", True)


class Needy(Plugin):
    metadata = PluginMetadata("needy", "1.0")

    def __init__(self, required):
        self.required = required


class NotAPlugin:
    pass


class NoMeta(Plugin):
    pass


class Outer:
    class Inner(Plugin):
        metadata = PluginMetadata("inner", "1.0")


INSTANCE = Demo()
NUMBER = 42


def make_demo():
    return Demo()


def make_nothing():
    return None


def make_broken():
    raise RuntimeError("factory exploded")
"""


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def write_module(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


@pytest.fixture
def demo_module(tmp_path, monkeypatch):
    """A real importable module with plugins in it; returns its (unique) name."""
    name = unique("st_demo_plugins")
    write_module(tmp_path, name, PLUGIN_MODULE.format(pid="demo"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    import sys

    sys.modules.pop(name, None)


# -- load_plugin ---------------------------------------------------------------------


def test_instance_is_returned_as_is():
    class P(Plugin):
        metadata = PluginMetadata("p", "1.0")

    plugin = P()
    assert load_plugin(plugin) is plugin


def test_subclass_is_instantiated():
    class P(Plugin):
        metadata = PluginMetadata("p", "1.0")

    assert type(load_plugin(P)) is P


@pytest.mark.parametrize(
    ("attr", "expected_id"),
    [("Demo", "demo"), ("INSTANCE", "demo"), ("make_demo", "demo"), ("Outer.Inner", "inner")],
)
def test_string_forms(demo_module, attr, expected_id):
    plugin = load_plugin(f"{demo_module}:{attr}")
    assert isinstance(plugin, Plugin)
    assert plugin.metadata.id == expected_id


def test_string_instance_is_the_module_object(demo_module):
    module = importlib.import_module(demo_module)
    assert load_plugin(f"{demo_module}:INSTANCE") is module.INSTANCE
    assert load_plugin(f" {demo_module}:INSTANCE ") is module.INSTANCE


@pytest.mark.parametrize(
    "spec",
    ["no_colon", "a:b:c", ":Attr", "module:", "bad-name:Attr", "mod:1abc", "mod:a..b", "", " : "],
)
def test_malformed_strings(spec):
    with pytest.raises(PluginError) as info:
        load_plugin(spec)
    assert "is not of the form 'package.module:attr'" in str(info.value)
    assert repr(spec) in str(info.value)


def test_missing_module():
    name = unique("st_no_such_module")
    with pytest.raises(PluginError) as info:
        load_plugin(f"{name}:Thing")
    assert f"cannot import module '{name}'" in str(info.value)
    assert "sys.path" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_module_that_fails_to_import(tmp_path, monkeypatch):
    name = unique("st_broken_module")
    write_module(tmp_path, name, "raise RuntimeError('import-time bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        load_plugin(f"{name}:Anything")
    assert "raised RuntimeError: import-time bug" in str(info.value)


def test_missing_attribute_lists_plugins(demo_module):
    with pytest.raises(PluginError) as info:
        load_plugin(f"{demo_module}:Nope")
    message = str(info.value)
    assert "has no attribute 'Nope'" in message
    assert "Demo" in message and "INSTANCE" in message and "NotAPlugin" not in message
    with pytest.raises(PluginError, match="has no attribute 'Missing'"):
        load_plugin(f"{demo_module}:Outer.Missing")


@pytest.mark.parametrize(
    ("attr", "fragment"),
    [
        ("NUMBER", "got int 42"),
        ("NotAPlugin", "expected a subclass of spiraltorch_nb.plugins.Plugin"),
        ("make_nothing", "the factory returned NoneType"),
        ("make_broken", "raised RuntimeError: factory exploded"),
        ("Needy", "created with no arguments"),
        ("NoMeta", "has no `metadata`"),
    ],
)
def test_wrong_types(demo_module, attr, fragment):
    with pytest.raises(PluginError) as info:
        load_plugin(f"{demo_module}:{attr}")
    assert fragment in str(info.value)
    assert f"{demo_module}:{attr}" in str(info.value)


@pytest.mark.parametrize("spec", [42, None, object(), PluginMetadata("m", "1.0")])
def test_wrong_spec_types(spec):
    with pytest.raises(PluginError, match="expected a Plugin instance, a Plugin subclass"):
        load_plugin(spec)  # type: ignore[arg-type]


def test_plain_callable_is_not_a_spec_outside_strings():
    with pytest.raises(PluginError, match="got function"):
        load_plugin(lambda: None)  # type: ignore[arg-type]


def test_metadata_must_be_plugin_metadata():
    class Wrong(Plugin):
        metadata = {"id": "x"}  # type: ignore[assignment]

    with pytest.raises(PluginError, match="must be a PluginMetadata, got dict"):
        load_plugin(Wrong)


# -- entry points (a real distribution on sys.path) ----------------------------------


def make_distribution(
    root: Path,
    dist_name: str,
    package: str,
    entry_points: dict[str, str],
    group: str = ENTRY_POINT_GROUP,
    plugin_id: str = "demo",
) -> None:
    """Write an importable package plus its *.dist-info, as pip would install it."""
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN_MODULE.format(pid=plugin_id)))
    info = root / f"{dist_name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n")
    lines = [f"[{group}]"] + [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text("")
    importlib.invalidate_caches()


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install (on sys.path) a distribution with good and broken entry points."""
    package = unique("st_ep_pkg")
    dist_name = package.replace("_", "-")
    make_distribution(
        tmp_path,
        dist_name,
        package,
        {
            "demo": f"{package}:Demo",
            "factory": f"{package}:make_demo",
            "missing-module": f"{unique('st_gone')}:Demo",
            "wrong-type": f"{package}:NUMBER",
            "no-meta": f"{package}:NoMeta",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package, dist_name
    import sys

    sys.modules.pop(package, None)


def test_discover_entry_points_from_real_dist_info(installed):
    package, dist_name = installed
    report = discover_entry_points()
    ours = [e for e in report.loaded if e.distribution == dist_name]
    assert [e.name for e in ours] == ["demo", "factory"]
    assert all(e.plugin.metadata.id == "demo" for e in ours)
    assert ours[0].value == f"{package}:Demo"
    failures = {f.name: f for f in report.errors if f.distribution == dist_name}
    assert set(failures) == {"missing-module", "wrong-type", "no-meta"}
    for name, failure in failures.items():
        assert isinstance(failure.error, PluginError)
        assert f"entry point {name!r}" in str(failure.error)
        assert dist_name in str(failure.error)
    assert "raised ModuleNotFoundError" in str(failures["missing-module"].error)
    assert "got int 42" in str(failures["wrong-type"].error)
    assert "has no `metadata`" in str(failures["no-meta"].error)
    assert not report.ok
    text = str(report)
    assert "FAILED" in text and "'wrong-type'" in text and "'demo'" in text


def test_discover_other_group_and_empty_group(tmp_path, monkeypatch):
    package = unique("st_ep_custom")
    make_distribution(
        tmp_path,
        package.replace("_", "-"),
        package,
        {"only": f"{package}:Demo"},
        group="my.custom.group",
        plugin_id="custom",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    report = discover_entry_points("my.custom.group")
    assert [(e.name, e.plugin.metadata.id) for e in report.loaded] == [("only", "custom")]
    assert report.ok and report.plugins[0].metadata.id == "custom"
    assert discover_entry_points(unique("nobody.uses.this")).loaded == []


def test_registry_load_entry_points_registers_and_is_rerunnable(installed):
    package, dist_name = installed
    registry = PluginRegistry()
    report = registry.load_entry_points()
    loaded = [e for e in report.loaded if e.distribution == dist_name]
    # 'demo' registers; 'factory' makes another Demo with the same id: a re-run, skipped.
    assert [e.name for e in loaded] == ["demo"]
    assert [e.name for e in report.skipped] == ["factory"]
    assert "demo" in registry and not registry.is_loaded("demo")
    assert registry.initialize_all() == ["demo"]
    assert registry.context.get_config("demo.loaded") is True
    again = registry.load_entry_points()
    assert [e.name for e in again.loaded if e.distribution == dist_name] == []
    assert {e.name for e in again.skipped} == {"demo", "factory"}


def test_registry_load_entry_points_reports_id_clash(installed):
    registry = PluginRegistry()

    class Squatter(Plugin):
        metadata = PluginMetadata("demo", "9.9")

    registry.register(Squatter())
    report = registry.load_entry_points()
    clashes = [f for f in report.errors if f.name in {"demo", "factory"}]
    assert [f.name for f in clashes] == ["demo", "factory"]
    assert "entry point 'demo'" in str(clashes[0].error)
    assert "another plugin with this id" in str(clashes[0].error)
    assert isinstance(registry.get("demo"), Squatter)
