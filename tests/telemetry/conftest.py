"""Fixtures for the telemetry tests: each test starts and ends with no dispatch observer."""

from __future__ import annotations

import pytest

from spiraltorch_nb.ops import registry
from spiraltorch_nb.telemetry import Recorder


def _remove_observer() -> None:
    obs = registry.get_dispatch_observer()
    if isinstance(obs, Recorder):
        obs.stop()
    registry.set_dispatch_observer(None)


@pytest.fixture(autouse=True)
def _no_leftover_observer():
    _remove_observer()  # a recorder left running elsewhere would make start() refuse
    yield
    _remove_observer()
