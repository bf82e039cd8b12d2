"""PipelineEditor driven from Python: palette, editing, inline errors, shapes, configs and models."""

from __future__ import annotations

import json

import pytest

import spiraltorch_nb as st
from spiraltorch_nb.nn.discovery import (
    ModuleDiscoveryRegistry,
    PipelineBuilder,
    PipelineError,
    default_registry,
)
from spiraltorch_nb.widgets import PipelineEditor, WidgetError


def test_palette_groups_stage_modules_by_category() -> None:
    ed = PipelineEditor()
    assert {"layer", "activation", "normalization", "pooling"} <= set(ed.palette)
    assert "loss" not in ed.palette and "optimizer" not in ed.palette  # not pipeline stages
    linear = next(m for m in ed.palette["layer"] if m["name"] == "linear")
    params = {p["name"]: p for p in linear["params"]}
    assert params["in_features"]["required"] and params["in_features"]["type"] == "int"
    assert params["bias"]["default"] is True
    json.dumps(ed.palette)  # what crosses the comm is plain JSON


def test_add_configure_and_infer_shapes() -> None:
    ed = PipelineEditor(input_shape=(4, 8))
    assert ed.add_stage("linear") == 0
    assert ed.stages[0]["params"] == {"in_features": 8}  # taken from the input shape
    assert "required" in ed.errors[0]["out_features"]
    assert ed.shapes == [None] and "1 problem" in ed.summary
    ed.set_param(0, "out_features", "16")  # as typed into the form
    assert ed.errors == {} and ed.stages[0]["params"] == {"in_features": 8, "out_features": 16}
    ed.add_stage("relu")
    ed.add_stage("linear", out_features=3)
    assert ed.stages[2]["params"]["in_features"] == 16  # from stage 1's output
    assert [s["output_shape"] for s in ed.shapes] == [[4, 16], [4, 16], [4, 3]]
    assert [s["params"] for s in ed.shapes] == [8 * 16 + 16, 0, 16 * 3 + 3]
    assert ed.summary == "3 stages · 195 parameters · (4, 8) → (4, 3)"
    assert repr(ed) == "PipelineEditor(stages=['linear', 'relu', 'linear'])"


def test_bad_values_are_kept_and_reported_at_their_field() -> None:
    ed = PipelineEditor(input_shape=(2, 4))
    ed.add_stage("linear", out_features=8)
    ed.set_param(0, "out_features", "eight")
    assert ed.stages[0]["params"]["out_features"] == "eight"
    assert set(ed.errors) == {0} and set(ed.errors[0]) == {"out_features"}
    assert "'eight'" in ed.errors[0]["out_features"]
    ed.set_param(0, "out_features", "")  # clearing a field restores the default (here: required)
    assert "out_features" not in ed.stages[0]["params"] and "required" in ed.errors[0]["out_features"]
    ed.set_param(0, "out_features", 8)
    ed.set_param(0, "bias", "false")
    ed.set_param(0, "bias", "maybe")
    assert ed.errors[0]["bias"] and ed.stages[0]["params"]["bias"] == "maybe"
    ed.set_param(0, "bias", False)
    ed.add_stage("lineer")
    assert "did you mean 'linear'" in ed.errors[1]["name"]
    ed.remove_stage(1)
    assert ed.errors == {}
    with pytest.raises(PipelineError):
        PipelineEditor.from_config({"stages": [{"name": "linear", "params": {"in_features": "x"}}]}).build()


def test_incompatible_shapes_are_shown_at_the_stage() -> None:
    ed = PipelineEditor(input_shape=(2, 4))
    ed.add_stage("linear", in_features=4, out_features=8)
    ed.add_stage("linear", in_features=5, out_features=2)  # expects 5 features, gets 8
    ed.add_stage("relu")
    assert set(ed.errors) == {1}
    (field, message), = ed.errors[1].items()
    assert field in ("in_features", "input_shape") and "(2, 8)" in message
    assert ed.shapes[0]["output_shape"] == [2, 8] and ed.shapes[1] is None and ed.shapes[2] is None
    ed.set_param(1, "in_features", 8)
    assert ed.errors == {} and ed.shapes[2]["output_shape"] == [2, 2]


def test_reorder_and_remove() -> None:
    ed = PipelineEditor()
    for name in ("flatten", "relu", "tanh"):
        ed.add_stage(name)
    ed.move_stage(2, 0)
    assert [s["name"] for s in ed.stages] == ["tanh", "flatten", "relu"]
    ed.move_stage(0, -1)
    assert [s["name"] for s in ed.stages] == ["flatten", "relu", "tanh"]
    ed.remove_stage(1)
    assert [s["name"] for s in ed.stages] == ["flatten", "tanh"]
    ed.add_stage("gelu", 1)
    assert [s["name"] for s in ed.stages] == ["flatten", "gelu", "tanh"]
    with pytest.raises(WidgetError, match="from 0 to 2"):
        ed.remove_stage(7)


def test_front_end_actions_never_raise() -> None:
    ed = PipelineEditor(input_shape=(2, 4))
    ed._on_front_message(ed, {"action": "add_stage", "name": "linear"}, [])
    ed._on_front_message(ed, {"action": "set_param", "i": 0, "key": "out_features", "value": "3"}, [])
    assert ed.config["stages"] == [{"name": "linear", "params": {"in_features": 4, "out_features": 3}}]
    ed._on_front_message(ed, {"action": "remove_stage", "i": 9}, [])
    assert "stage index" in ed.error
    ed._on_front_message(ed, {"action": "move_stage", "i": 0}, [])
    assert "missing" in ed.error and "j" in ed.error
    ed._on_front_message(ed, {"action": "set_input_shape", "shape": "2 x four"}, [])
    assert "positive integers" in ed.input_error and ed.input_shape == [2, 4]
    ed._on_front_message(ed, {"action": "set_input_shape", "shape": "3, 4"}, [])
    assert ed.input_error == "" and ed.shapes[0]["output_shape"] == [3, 3]


def test_config_round_trips_with_the_pipeline_builder() -> None:
    ed = PipelineEditor(input_shape=(2, 1, 8, 8))
    ed.add_stage("conv2d", out_channels=4, kernel_size=3, padding=1)
    ed.add_stage("relu")
    ed.add_stage("max_pool2d", kernel_size=2)
    ed.add_stage("flatten")
    ed.add_stage("linear", out_features=10)
    assert ed.errors == {}
    assert ed.shapes[-1]["output_shape"] == [2, 10] and ed.stages[4]["params"]["in_features"] == 64
    config = ed.config
    assert PipelineBuilder.from_config(json.loads(json.dumps(config))).to_config() == config
    again = PipelineEditor.from_config(config, input_shape=(2, 1, 8, 8))
    assert again.config == config and again.shapes == ed.shapes
    model = ed.build()
    assert isinstance(model, st.nn.Sequential) and len(list(model.children())) == 5
    assert tuple(model(st.zeros(2, 1, 8, 8)).shape) == (2, 10)
    assert model.num_parameters() == sum(s["params"] for s in ed.shapes)


@pytest.mark.parametrize("input_shape", [None, [2, 4]])
def test_builder_config_loads_back_unchanged(input_shape: list[int] | None) -> None:
    stages = [{"name": "linear", "params": {"in_features": 4, "out_features": 8}}, {"name": "relu", "params": {}}]
    raw: dict = {"version": 1, "stages": stages}
    if input_shape is not None:
        raw["input_shape"] = input_shape
    builder = PipelineBuilder.from_config(raw)
    config = builder.to_config()
    ed = PipelineEditor.from_config(config)
    assert ed.config == config
    assert ed.input_shape == input_shape and ("input_shape" in ed.config) == (input_shape is not None)
    if input_shape is not None:
        assert [s["output_shape"] for s in ed.shapes] == [[2, 8], [2, 8]]
        # an input shape given to from_config wins over the config's
        assert PipelineEditor.from_config(config, input_shape=(5, 4)).config["input_shape"] == [5, 4]
    ed.set_input_shape("3, 4")
    assert ed.config["input_shape"] == [3, 4]
    assert PipelineBuilder.from_config(ed.config).input_shape == (3, 4)


def test_module_parameters_named_index_or_name_are_parameters() -> None:
    """add_stage's own arguments are positional-only: every keyword belongs to the module."""

    class Pick(st.nn.Module):
        def __init__(self, index: int = 0, name: str = "pick") -> None:
            super().__init__()
            self.index, self.name = index, name

        def forward(self, x):
            return x

    reg = ModuleDiscoveryRegistry()
    reg.register("relu", st.nn.ReLU, category="activation")
    reg.register("pick", Pick, category="custom")
    ed = PipelineEditor(registry=reg)
    ed.add_stage("relu")
    assert ed.add_stage("pick", index=3, name="third") == 1  # appended; index and name are Pick's
    assert ed.stages[1] == {"name": "pick", "params": {"index": 3, "name": "third"}}
    assert ed.add_stage("pick", 0, index=1) == 0  # the position is the second positional argument
    assert [s["name"] for s in ed.stages] == ["pick", "relu", "pick"] and ed.errors == {}
    built = list(ed.build().children())
    assert (built[0].index, built[2].index, built[2].name) == (1, 3, "third")


def test_from_model_reads_constructor_arguments_back() -> None:
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Dropout(0.2), st.nn.Linear(8, 2, bias=False))
    ed = PipelineEditor.from_model(model, input_shape=(3, 4))
    assert ed.config["stages"] == [
        {"name": "linear", "params": {"in_features": 4, "out_features": 8}},
        {"name": "relu", "params": {}},
        {"name": "dropout", "params": {"p": 0.2}},
        {"name": "linear", "params": {"in_features": 8, "out_features": 2, "bias": False}},
    ]
    assert ed.build().num_parameters() == model.num_parameters()

    class Mystery(st.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(WidgetError, match="Mystery is not in the module registry"):
        PipelineEditor.from_model(st.nn.Sequential(Mystery()))


def test_modules_registered_later_appear_without_a_refresh() -> None:
    reg = ModuleDiscoveryRegistry()
    for name, cls, cat in (("linear", st.nn.Linear, "layer"), ("relu", st.nn.ReLU, "activation")):
        reg.register(name, cls, category=cat)
    ed = PipelineEditor(registry=reg, input_shape=(2, 4))
    ed.add_stage("scale")
    assert "unknown module" in ed.errors[0]["name"]

    class Scale(st.nn.Module):
        """Multiply by a constant."""

        def __init__(self, factor: float = 2.0) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    reg.register("scale", Scale, category="custom")
    assert [m["name"] for m in ed.palette["custom"]] == ["scale"]
    assert ed.errors == {} and ed.shapes[0]["output_shape"] == [2, 4]  # the stage became valid
    reg.unregister("scale")
    assert "custom" not in ed.palette and "name" in ed.errors[0]
    ed.close()
    reg.register("scale", Scale, category="custom")  # a closed editor no longer follows
    assert "custom" not in ed.palette


def test_default_registry_is_the_default() -> None:
    assert PipelineEditor()._registry_obj is default_registry()
