"""Module discovery (schemas, categories, search, plugins) and the pipeline builder."""

from __future__ import annotations

import json
import uuid
import warnings

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.nn.discovery import (
    CATEGORIES,
    PARAM_TYPES,
    DiscoveryError,
    ModuleDiscoveryRegistry,
    ParamSpec,
    PipelineBuilder,
    PipelineError,
    UnknownModuleError,
    default_registry,
    params_from_signature,
)
from spiraltorch_nb.plugins import Plugin, PluginMetadata, PluginRegistry


def spec(name: str, param: str) -> dict:
    return next(p for p in default_registry().get(name).schema()["params"] if p["name"] == param)


def mlp(hidden: int = 8) -> PipelineBuilder:
    return (PipelineBuilder().add("linear", in_features=4, out_features=hidden).add("relu")
            .add("linear", in_features=hidden, out_features=3))


class Swish(st.nn.Module):
    """x * sigmoid(beta * x)."""

    def __init__(self, beta: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        self.beta = beta
        self.learnable = learnable

    def forward(self, x):
        return x * (x * self.beta).sigmoid()


# ---- the registry and its schemas -----------------------------------------------------

def test_st_nn_discovery_default_registry_is_one_shared_registry():
    assert st.nn.discovery.default_registry() is default_registry()
    assert PipelineBuilder().registry is default_registry()


@pytest.mark.parametrize(("name", "params"), [
    ("linear", [("in_features", "int", None, True), ("out_features", "int", None, True),
                ("bias", "bool", True, False)]),
    ("leaky_relu", [("negative_slope", "float", 0.01, False), ("inplace", "bool", False, False)]),
    ("layer_norm", [("normalized_shape", "ints", None, True), ("eps", "float", 1e-5, False),
                    ("elementwise_affine", "bool", True, False), ("bias", "bool", True, False)]),
    ("embedding", [("num_embeddings", "int", None, True), ("embedding_dim", "int", None, True),
                   ("padding_idx", "int", None, False)]),
    ("gelu", [("approximate", "str", "none", False)]),
    ("flatten", [("start_dim", "int", 1, False), ("end_dim", "int", -1, False)]),
])
def test_builtin_schemas_come_from_the_signatures(name, params):
    info = default_registry().get(name)
    got = [(p.name, p.type, p.default, p.required) for p in info.params]
    assert got == params
    assert "device" not in [p.name for p in info.params] and "dtype" not in [p.name for p in info.params]


def test_builtin_schemas_are_json_and_use_known_types():
    reg = default_registry()
    assert len(reg) >= 25
    for info in reg:
        schema = json.loads(json.dumps(info.schema()))
        assert schema["name"] == info.name and schema["category"] in CATEGORIES
        assert schema["description"], f"{info.name} has no description"
        for p in schema["params"]:
            assert set(p) == {"name", "type", "default", "required"}
            assert p["type"] in PARAM_TYPES, (info.name, p)
            assert not (p["required"] and p["default"] is not None)


def test_shape_parameters_accept_ints_or_lists():
    assert spec("conv2d", "kernel_size")["type"] == "ints"
    assert spec("max_pool2d", "stride")["type"] == "ints"
    reg = default_registry()
    assert reg.check_params("conv2d", {"in_channels": 1, "out_channels": 2, "kernel_size": [3, 3]}) == {}
    assert set(reg.check_params("conv2d", {"in_channels": 1, "out_channels": 2, "kernel_size": [3, 2.5]})) == {
        "kernel_size"}


def test_signature_types_unions_and_defaults():
    def factory(width: int, scale: float | None = None, size: int | tuple[int, int] = 2, mode: str = "a",
                hook=None, levels=(1, 2), ratio=0.5, *args, **kwargs):
        """A factory."""

    got = {p.name: (p.type, p.required) for p in params_from_signature(factory)}
    assert got == {"width": ("int", True), "scale": ("float", False), "size": ("ints", False),
                   "mode": ("str", False), "hook": ("any", False), "levels": ("ints", False),
                   "ratio": ("float", False)}


def test_list_by_category_by_category_and_search():
    reg = default_registry()
    activations = [i.name for i in reg.list("activation")]
    assert {"relu", "gelu", "tanh", "sigmoid"} <= set(activations)
    assert activations == sorted(activations)
    assert all(i.category == "activation" for i in reg.list("activation"))
    grouped = reg.by_category()
    assert "linear" in grouped["layer"] and "layer_norm" in grouped["normalization"]
    assert list(grouped) == [c for c in CATEGORIES if c in grouped]
    assert sum(len(v) for v in grouped.values()) == len(reg)
    assert [i.name for i in reg.search("leaky")] == ["leaky_relu"]
    norm_hits = [i.name for i in reg.search("normalization")]
    assert {"layer_norm", "batch_norm1d"} <= set(norm_hits)
    assert reg.search("pool max")[0].name == "max_pool2d"
    assert "linear" in [i.name for i in reg.search("in_features")]
    assert reg.search("no such module anywhere") == []
    with pytest.raises(DiscoveryError, match="unknown category 'layers'"):
        reg.list("layers")


def test_register_get_unregister_and_errors():
    reg = ModuleDiscoveryRegistry()
    info = reg.register("swish", Swish, category="activation")
    assert info.description == "x * sigmoid(beta * x)."
    assert [p.as_dict() for p in info.params] == [
        {"name": "beta", "type": "float", "default": 1.0, "required": False},
        {"name": "learnable", "type": "bool", "default": False, "required": False}]
    assert "swish" in reg and reg.get("swish") is info and len(reg) == 1
    with pytest.raises(DiscoveryError, match="already registered; pass replace=True"):
        reg.register("swish", Swish)
    assert reg.register("swish", Swish, replace=True, category="custom").category == "custom"
    with pytest.raises(UnknownModuleError, match="did you mean 'swish'") as err:
        reg.get("swsh")
    assert isinstance(err.value, KeyError) and err.value.close == ("swish",)
    with pytest.raises(DiscoveryError, match="unknown category"):
        reg.register("x", Swish, category="layers")
    with pytest.raises(DiscoveryError, match="must be callable"):
        reg.register("x", 42)
    with pytest.raises(DiscoveryError, match="unknown metadata"):
        reg.register("x", Swish, categroy="layer")
    with pytest.raises(DiscoveryError, match="has type 'integer'"):
        reg.register("x", Swish, params=[{"name": "beta", "type": "integer"}])
    assert reg.unregister("swish").name == "swish" and "swish" not in reg


def test_explicit_param_schema_overrides_the_signature():
    reg = ModuleDiscoveryRegistry()

    def block(**kwargs):
        return st.nn.Linear(kwargs["width"], kwargs["width"])

    info = reg.register("block", block, params=[ParamSpec("width", "int", required=True)])
    assert info.schema()["params"] == [{"name": "width", "type": "int", "default": None, "required": True}]
    assert reg.check_params("block", {}) == {"width": "'width' is required (int) but missing"}


def test_check_params_reports_every_field():
    errors = default_registry().check_params("linear", {"in_features": "4", "bais": True})
    assert set(errors) == {"in_features", "out_features", "bais"}
    assert "must be an int; got str '4'" in errors["in_features"]
    assert "required" in errors["out_features"]
    assert "did you mean 'bias'" in errors["bais"]
    reg = default_registry()
    assert reg.check_params("linear", {"in_features": 4, "out_features": 2, "bias": False}) == {}
    assert "bool" in reg.check_params("linear", {"in_features": True, "out_features": 2})["in_features"]
    assert "non-negative" in reg.check_params("linear", {"in_features": -1, "out_features": 2})["in_features"]
    assert reg.check_params("softmax", {"dim": -1}) == {}  # axes may count from the end
    assert reg.check_params("dropout", {"p": 1}) == {}  # an int is a fine float


def test_subscribe_and_version_track_changes():
    reg = ModuleDiscoveryRegistry()
    seen = []
    remove = reg.subscribe(lambda action, name: seen.append((action, name)))
    v0 = reg.version
    reg.register("swish", Swish)
    reg.unregister("swish")
    assert seen == [("registered", "swish"), ("unregistered", "swish")]
    assert reg.version == v0 + 2
    remove()
    reg.register("swish", Swish)
    assert len(seen) == 2


def test_a_failing_listener_warns_but_does_not_block_registration():
    reg = ModuleDiscoveryRegistry()
    reg.subscribe(lambda action, name: 1 / 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.register("swish", Swish)
    assert "swish" in reg
    assert any("ZeroDivisionError" in str(w.message) for w in caught)


# ---- plugins with capability "modules" ---------------------------------------------------

class BlocksPlugin(Plugin):
    def __init__(self, fail: bool = False) -> None:
        self.metadata = PluginMetadata(f"blocks-{uuid.uuid4().hex[:6]}", "1.0", capabilities=["modules"])
        self.names = [f"swish_{uuid.uuid4().hex[:6]}", f"mlp_block_{uuid.uuid4().hex[:6]}"]
        self.fail = fail

    def on_load(self, ctx):
        reg = default_registry()
        reg.register(self.names[0], Swish, category="activation")

        def mlp_block(width: int, expansion: int = 2):
            """Linear, Swish, Linear back to ``width``."""
            return st.nn.Sequential(st.nn.Linear(width, width * expansion), Swish(),
                                    st.nn.Linear(width * expansion, width))

        reg.register(self.names[1], mlp_block, category="custom")
        if self.fail:
            raise RuntimeError("weights file missing")


def test_modules_plugin_registers_factories_on_load_and_removes_them_on_unload():
    reg = default_registry()
    plugin = BlocksPlugin()
    registry = PluginRegistry()
    registry.register(plugin)
    assert registry.find_by_capability("modules") == [plugin]
    changes = []
    remove = reg.subscribe(lambda action, name: changes.append((action, name)))
    try:
        registry.load(plugin.metadata.id)
        swish, block = plugin.names
        assert swish in [i.name for i in reg.list("activation")]
        assert reg.get(block).plugin == plugin.metadata.id
        assert reg.get(block).schema()["params"] == [
            {"name": "width", "type": "int", "default": None, "required": True},
            {"name": "expansion", "type": "int", "default": 2, "required": False}]
        model = PipelineBuilder().add(block, width=4).add(swish, beta=2.0).build()
        assert model(st.randn(3, 4)).shape == (3, 4)
        registry.unload(plugin.metadata.id)
        assert swish not in reg and block not in reg
        assert ("unregistered", swish) in changes and ("unregistered", block) in changes
    finally:
        remove()
        for name in plugin.names:
            if name in reg:
                reg.unregister(name)


def test_failed_modules_plugin_load_leaves_the_registry_as_it_was():
    reg = default_registry()
    before = [i.name for i in reg.list()]
    plugin = BlocksPlugin(fail=True)
    registry = PluginRegistry()
    registry.register(plugin)
    with pytest.raises(PluginError, match="weights file missing"):
        registry.load(plugin.metadata.id)
    assert [i.name for i in reg.list()] == before


def test_a_factory_unregistered_in_a_failed_load_comes_back():
    reg = ModuleDiscoveryRegistry()
    info = reg.register("swish", Swish, category="activation")
    seen = []
    reg.subscribe(lambda action, name: seen.append((action, name)))

    class Pruner(Plugin):
        metadata = PluginMetadata("pruner", "1.0", capabilities=["modules"])

        def on_load(self, ctx):
            reg.unregister("swish")
            raise RuntimeError("half done")

    registry = PluginRegistry()
    registry.register(Pruner())
    with pytest.raises(PluginError, match="half done"):
        registry.load("pruner")
    assert reg.get("swish") is info
    assert seen == [("unregistered", "swish"), ("registered", "swish")]


def test_a_factory_unregistered_in_on_load_comes_back_on_unload_unless_the_name_was_reused():
    reg = ModuleDiscoveryRegistry()
    info = reg.register("swish", Swish, category="activation")

    class Pruner(Plugin):
        metadata = PluginMetadata("pruner", "1.0", capabilities=["modules"])

        def on_load(self, ctx):
            reg.unregister("swish")

    registry = PluginRegistry()
    registry.register(Pruner())
    registry.load("pruner")
    assert "swish" not in reg
    registry.unload("pruner")
    assert reg.get("swish") is info
    registry.load("pruner")
    newer = reg.register("swish", Swish, category="custom")  # the user's, made after the load
    registry.unload("pruner")
    assert reg.get("swish") is newer


# ---- the pipeline builder ----------------------------------------------------------------

def test_add_and_build_make_a_sequential_that_runs():
    st.manual_seed(0)
    model = mlp().build()
    assert isinstance(model, st.nn.Sequential) and len(model) == 3
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    x = st.randn(5, 4)
    y = model(x)
    assert y.shape == (5, 3)
    expected = np.maximum(x.numpy() @ model[0].weight.numpy().T + model[0].bias.numpy(), 0)
    expected = expected @ model[2].weight.numpy().T + model[2].bias.numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert model[0].weight.grad is not None


def test_config_round_trips_through_json():
    b = (PipelineBuilder().add("conv2d", in_channels=1, out_channels=4, kernel_size=(3, 3), padding=1)
         .add("relu").add("max_pool2d", kernel_size=2).add("flatten")
         .add("linear", in_features=64, out_features=10).add("log_softmax", dim=-1))
    config = b.to_config()
    text = json.dumps(config)
    assert json.loads(text) == config  # tuples are already written as lists
    assert config["version"] == 1 and config["stages"][0] == {
        "name": "conv2d", "params": {"in_channels": 1, "out_channels": 4, "kernel_size": [3, 3], "padding": 1}}
    again = PipelineBuilder.from_config(json.loads(text))
    assert again.to_config() == config
    st.manual_seed(1)
    first = b.build()
    st.manual_seed(1)
    second = again.build()
    x = st.randn(2, 1, 8, 8)
    np.testing.assert_allclose(first(x).numpy(), second(x).numpy())
    assert second[0].kernel_size == (3, 3)


def test_config_keeps_an_input_shape():
    config = {"version": 1, "input_shape": [2, 4], "stages": mlp().to_config()["stages"]}
    b = PipelineBuilder.from_config(config)
    assert b.input_shape == (2, 4) and b.to_config() == config
    assert [s["output_shape"] for s in b.infer_shapes()] == [(2, 8), (2, 8), (2, 3)]


def test_infer_shapes_reports_each_stage_and_its_parameter_count():
    b = (PipelineBuilder().add("conv2d", in_channels=3, out_channels=8, kernel_size=3)
         .add("batch_norm2d", num_features=8).add("relu").add("avg_pool2d", kernel_size=2)
         .add("flatten").add("dropout", p=0.5).add("linear", in_features=8 * 3 * 3, out_features=5))
    report = b.infer_shapes((4, 3, 8, 8))
    assert [r["index"] for r in report] == list(range(7))
    assert [r["output_shape"] for r in report] == [
        (4, 8, 6, 6), (4, 8, 6, 6), (4, 8, 6, 6), (4, 8, 3, 3), (4, 72), (4, 72), (4, 5)]
    assert report[0]["input_shape"] == (4, 3, 8, 8)
    assert all(r["input_shape"] == prev["output_shape"] for prev, r in zip(report, report[1:], strict=False))
    assert [r["params"] for r in report] == [3 * 8 * 9 + 8, 16, 0, 0, 0, 0, 72 * 5 + 5]
    assert sum(r["params"] for r in report) == b.build().num_parameters()


def test_infer_shapes_leaves_the_random_stream_alone():
    st.manual_seed(3)
    st.rand(2)  # a generator already in use before shapes are inferred
    plain = mlp().build()[0].weight.numpy()
    st.manual_seed(3)
    st.rand(2)
    b = mlp()
    b.infer_shapes((2, 4))
    np.testing.assert_array_equal(b.build()[0].weight.numpy(), plain)


def test_infer_shapes_feeds_integers_to_an_embedding():
    report = PipelineBuilder().add("embedding", num_embeddings=10, embedding_dim=4).add("flatten").infer_shapes(
        [2, 3])
    assert [r["output_shape"] for r in report] == [(2, 3, 4), (2, 12)]
    assert report[0]["params"] == 40


@pytest.mark.parametrize(("config", "stage", "field", "text"), [
    ({"stages": [{"name": "relu"}, {"name": "linar", "params": {}}]}, 1, "name", "did you mean 'linear'"),
    ({"stages": [{"name": "linear", "params": {"in_features": 4}}]}, 0, "out_features", "required"),
    ({"stages": [{"name": "relu"}, {"name": "linear", "params": {"in_features": "4", "out_features": 2}}]},
     1, "in_features", "must be an int; got str '4'"),
    ({"stages": [{"name": "linear", "params": {"in_features": 4, "out_features": 2, "bais": False}}]},
     0, "bais", "unknown parameter 'bais'"),
    ({"stages": [{"name": "relu"}, {"name": "relu"}, {"name": "dropout", "params": {"p": "high"}}]},
     2, "p", "must be a float"),
    ({"stages": [{"name": "mse_loss", "params": {}}]}, 0, "name", "is a loss, not a model stage"),
    ({"stages": [{"name": "relu", "parms": {}}]}, 0, "parms", "unknown key 'parms'"),
    ({"stages": [{"name": "relu", "params": [1]}]}, 0, "params", "'params' must be an object"),
    ({"stages": ["relu"]}, 0, "name", "expected an object"),
    ({"version": 2, "stages": []}, None, "version", "version 2 is not supported"),
    ({"stage": []}, None, "stages", "'stages' list"),
    ({"stages": [], "extra": 1}, None, "extra", "unknown config key 'extra'"),
    ({"stages": [], "input_shape": [2, -1]}, None, "input_shape", "positive ints"),
])
def test_bad_configs_name_the_stage_and_field(config, stage, field, text):
    with pytest.raises(PipelineError, match=text) as err:
        PipelineBuilder.from_config(config)
    assert (err.value.stage, err.value.field) == (stage, field)
    if stage is not None:
        assert str(err.value).startswith(f"stage {stage}")


def test_add_rejects_a_bad_stage_and_keeps_the_good_ones():
    b = PipelineBuilder().add("linear", in_features=4, out_features=8)
    with pytest.raises(PipelineError, match=r"stage 1 \(relu\): unknown parameter 'slope'") as err:
        b.add("relu", slope=0.1)
    assert (err.value.stage, err.value.field) == (1, "slope")
    assert len(b) == 1


def test_incompatible_shapes_name_the_stage_and_the_size_parameter():
    b = mlp(hidden=8)
    b.stages[2]["params"]["in_features"] = 16
    with pytest.raises(PipelineError, match=r"stage 2 \(linear, in_features=16\) cannot take input of shape "
                                            r"\(5, 8\) from stage 1") as err:
        b.infer_shapes((5, 4))
    assert (err.value.stage, err.value.field) == (2, "in_features")
    with pytest.raises(PipelineError) as err:
        PipelineBuilder().add("conv2d", in_channels=3, out_channels=2, kernel_size=3).infer_shapes((1, 1, 5, 5))
    assert (err.value.stage, err.value.field) == (0, "in_channels")
    assert "the pipeline input" in str(err.value)
    with pytest.raises(PipelineError) as err:
        PipelineBuilder().add("relu").add("max_pool2d", kernel_size=2).infer_shapes((3,))
    assert (err.value.stage, err.value.field) == (1, "input_shape")
    with pytest.raises(PipelineError, match="needs an input shape"):
        mlp().infer_shapes()


def test_factory_errors_become_pipeline_errors():
    b = PipelineBuilder().add("conv2d", in_channels=3, out_channels=4, kernel_size=3, groups=2)
    with pytest.raises(PipelineError, match=r"stage 0 \(conv2d\): the factory refused") as err:
        b.build()
    assert (err.value.stage, err.value.field) == (0, "params")


def test_validate_returns_every_problem_without_raising():
    b = PipelineBuilder()
    b.stages = [
        {"name": "relu", "params": {}},
        {"name": "linear", "params": {"in_features": 4.5, "bais": True}},
        {"name": "nope", "params": {}},
        {"name": "dropout", "params": {"p": "x"}},
    ]
    problems = b.validate()
    where = sorted((p["stage"], p["field"]) for p in problems)
    assert where == [(1, "bais"), (1, "in_features"), (1, "out_features"), (2, "name"), (3, "p")]
    assert all(p["message"].startswith(f"stage {p['stage']}") for p in problems)
    json.dumps(problems)
    with pytest.raises(PipelineError) as err:
        b.build()
    assert err.value.stage == 1
    assert mlp().validate() == [] and mlp().validate((2, 4)) == []


def test_validate_with_a_shape_adds_the_first_shape_problem():
    b = mlp(hidden=8)
    b.stages[2]["params"]["in_features"] = 16
    assert b.validate() == []
    problems = b.validate((2, 4))
    assert [(p["stage"], p["field"]) for p in problems] == [(2, "in_features")]
    assert b.validate([0, 4])[0]["field"] == "input_shape"


def test_to_config_refuses_values_json_cannot_hold():
    b = PipelineBuilder().add("transformer_encoder_layer", d_model=8, nhead=2, activation=st.nn.functional.gelu)
    assert len(b.build()) == 1  # fine in Python
    with pytest.raises(PipelineError, match="'activation' holds a function") as err:
        b.to_config()
    assert (err.value.stage, err.value.field) == (0, "activation")


def test_custom_registry_pipelines_and_unknown_names():
    reg = ModuleDiscoveryRegistry()
    reg.register("swish", Swish, category="activation")
    b = PipelineBuilder(reg).add("swish", beta=0.5)
    assert b.registry is reg and "PipelineBuilder([swish])" == repr(b)
    with pytest.raises(PipelineError, match="unknown module 'linear'"):
        b.add("linear", in_features=1, out_features=1)
    again = PipelineBuilder.from_config(b.to_config(), registry=reg)
    x = st.tensor([[-1.0, 2.0]])
    np.testing.assert_allclose(again.build()(x).numpy(), Swish(0.5)(x).numpy())
    assert again.remove(0) == {"name": "swish", "params": {"beta": 0.5}} and len(again) == 0


def test_builtin_containers_are_not_stages_and_configs_naming_them_say_why():
    reg = default_registry()
    assert reg.list("container") == [] and "container" not in reg.by_category()
    for name, why in [("sequential", "a pipeline is itself a Sequential"), ("module_list", "has no forward"),
                      ("ModuleDict", "has no forward")]:
        with pytest.raises(PipelineError, match=why) as err:
            PipelineBuilder().add(name)
        assert (err.value.stage, err.value.field) == (0, "name")


def test_a_container_factory_builds_a_block_stage():
    reg = ModuleDiscoveryRegistry()
    reg.register("linear", st.nn.Linear, category="layer")

    def mlp_block(width: int, expansion: int = 2):
        """Linear, ReLU, Linear back to ``width``."""
        return st.nn.Sequential(st.nn.Linear(width, width * expansion), st.nn.ReLU(),
                                st.nn.Linear(width * expansion, width))

    reg.register("mlp_block", mlp_block, category="container")
    builder = PipelineBuilder(reg).add("linear", in_features=4, out_features=6).add("mlp_block", width=6)
    assert reg.by_category()["container"] == ["mlp_block"]
    shapes = builder.infer_shapes((3, 4))
    assert [(s["name"], s["output_shape"], s["params"]) for s in shapes] == [
        ("linear", (3, 6), 30), ("mlp_block", (3, 6), 6 * 12 + 12 + 12 * 6 + 6)]
    assert builder.build()(st.randn(3, 4)).shape == (3, 6)
