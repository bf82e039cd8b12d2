"""find_recorder: the telemetry Recorder a widget reads, found from what it watches."""

from __future__ import annotations

from typing import Any

import spiraltorch_nb as st
from spiraltorch_nb.widgets._telemetry_source import find_recorder


def test_find_recorder_in_a_trainer_its_run_and_its_callbacks() -> None:
    rec = st.telemetry.record()
    model = st.nn.Linear(2, 2)
    trainer = st.train.Trainer(model, "mse", st.optim.SGD(model.parameters(), lr=0.1), callbacks=[rec],
                               progress=False, metrics=())

    class Run:
        def __init__(self, trainer: Any) -> None:
            self.trainer = trainer

    assert find_recorder(trainer) is rec and find_recorder(Run(trainer)) is rec and find_recorder(rec) is rec
    bare = st.train.Trainer(model, "mse", st.optim.SGD(model.parameters(), lr=0.1), progress=False)
    assert find_recorder(bare) is None and find_recorder(None) is None
