"""PluginMetadata validation, capabilities and the Plugin base class."""

from __future__ import annotations

import dataclasses

import pytest
from packaging.version import Version

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins import KNOWN_CAPABILITIES, Plugin, PluginMetadata
from spiraltorch_nb.plugins.metadata import is_known_capability


def test_defaults_and_normalisation():
    meta = PluginMetadata("fused-gelu", "1.2.0")
    assert meta.name == "fused-gelu"
    assert meta.description == "" and meta.author == ""
    assert meta.capabilities == ()
    assert dict(meta.dependencies) == {}
    assert meta.parsed_version == Version("1.2.0")


def test_is_frozen_and_hashable():
    meta = PluginMetadata("a", "1.0", capabilities=["operators"], dependencies={"b": ">=1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        meta.dependencies["c"] = ">=2"  # type: ignore[index]
    same = PluginMetadata("a", "1.0", capabilities=["operators"], dependencies={"b": ">=1"})
    assert meta == same and hash(meta) == hash(same)
    assert meta != PluginMetadata("a", "1.0", capabilities=["operators"], dependencies={"b": ">=2"})


def test_dependencies_are_copied_not_aliased():
    deps = {"b": ">=1"}
    meta = PluginMetadata("a", "1.0", dependencies=deps)
    deps["c"] = ">=2"
    assert dict(meta.dependencies) == {"b": ">=1"}


def test_accepts_version_object():
    meta = PluginMetadata("a", Version("2.0rc1"))  # type: ignore[arg-type]
    assert meta.version == "2.0rc1"
    assert meta.parsed_version.is_prerelease


@pytest.mark.parametrize("version", ["one", "1.0.0.0-beta-x", "", "v1..2"])
def test_invalid_version_names_plugin(version):
    with pytest.raises(PluginError) as info:
        PluginMetadata("my-plugin", version)
    assert "'my-plugin'" in str(info.value)
    assert repr(version) in str(info.value)
    assert "PEP 440" in str(info.value)
    assert info.value.plugin_id == "my-plugin"


def test_non_string_version_is_refused():
    with pytest.raises(PluginError, match="Quote it"):
        PluginMetadata("a", 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_id", ["", " a", "a b", "-lead", "a/b", None, 3])
def test_invalid_ids(bad_id):
    with pytest.raises(PluginError, match="plugin id"):
        PluginMetadata(bad_id, "1.0")  # type: ignore[arg-type]


def test_invalid_specifier_names_plugin_dependency_and_suggests_fix():
    with pytest.raises(PluginError) as info:
        PluginMetadata("a", "1.0", dependencies={"core": "1.0"})
    message = str(info.value)
    assert "'a'" in message and "'core'" in message and "'1.0'" in message
    assert "'==1.0'" in message and "'>=1.0'" in message


def test_specifier_text_is_kept_as_written_and_usable():
    meta = PluginMetadata("a", "1.0", dependencies={"core": ">=2.0,<3", "util": ""})
    assert meta.dependencies == {"core": ">=2.0,<3", "util": ""}
    assert meta.accepts("core", "2.5")
    assert not meta.accepts("core", "3.0")
    assert meta.accepts("core", "2.1rc1")  # pre-releases in range are accepted
    assert meta.accepts("util", "0.0.1")
    with pytest.raises(PluginError, match="does not depend on 'zzz'"):
        meta.dependency_specifier("zzz")


def test_self_dependency_is_refused():
    with pytest.raises(PluginError, match="lists itself"):
        PluginMetadata("a", "1.0", dependencies={"a": ""})


def test_dependencies_must_be_a_mapping():
    with pytest.raises(PluginError, match="must map plugin ids"):
        PluginMetadata("a", "1.0", dependencies=["b>=1"])  # type: ignore[arg-type]


def test_capabilities_deduplicated_in_order():
    meta = PluginMetadata("a", "1.0", capabilities=["operators", "backend:cuda", "operators", "x"])
    assert meta.capabilities == ("operators", "backend:cuda", "x")


@pytest.mark.parametrize("caps", ["operators", [""], ["  "], [3], ["backend:"]])
def test_invalid_capabilities(caps):
    with pytest.raises(PluginError) as info:
        PluginMetadata("a", "1.0", capabilities=caps)
    assert "'a'" in str(info.value)


def test_known_capabilities_documented():
    expected = {"operators", "modules", "losses", "optimizers", "telemetry", "sequencer", "widgets"}
    assert expected <= set(KNOWN_CAPABILITIES)
    assert "backend:<name>" in KNOWN_CAPABILITIES
    assert all(isinstance(text, str) and text for text in KNOWN_CAPABILITIES.values())
    assert is_known_capability("backend:wgpu")
    assert not is_known_capability("backend:")
    assert not is_known_capability("custom-thing")


def test_has_capability_supports_wildcards():
    meta = PluginMetadata("a", "1.0", capabilities=["backend:wgpu", "operators"])
    assert meta.has_capability("backend:*")
    assert meta.has_capability("operators")
    assert not meta.has_capability("losses")


def test_to_dict_roundtrips_through_constructor():
    meta = PluginMetadata(
        "a",
        "1.0",
        name="A",
        description="d",
        author="me",
        capabilities=["x"],
        dependencies={"b": ">=1"},
    )
    data = meta.to_dict()
    assert data["dependencies"] == {"b": ">=1"} and data["capabilities"] == ["x"]
    data = dict(data)
    assert PluginMetadata(data.pop("id"), data.pop("version"), **data) == meta


def test_repr_is_compact():
    meta = PluginMetadata("a", "1.0", dependencies={"b": ">=1"})
    assert repr(meta) == "PluginMetadata('a', '1.0', dependencies={'b': '>=1'})"


def test_plugin_base_hooks_are_noops_and_repr():
    class P(Plugin):
        metadata = PluginMetadata("p", "0.1")

    plugin = P()
    assert plugin.on_load(None) is None  # type: ignore[arg-type]
    assert plugin.on_unload(None) is None  # type: ignore[arg-type]
    assert plugin.on_event(None, None) is None  # type: ignore[arg-type]
    assert repr(plugin) == "<P 'p' 0.1>"

    class NoMeta(Plugin):
        pass

    assert "no metadata" in repr(NoMeta())
