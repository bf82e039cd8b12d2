"""Fixtures for the telemetry tests: no recorder outlives a test."""

from __future__ import annotations

import pytest

from spiraltorch_nb.ops import registry
from spiraltorch_nb.telemetry import Recorder


@pytest.fixture(autouse=True)
def _no_leftover_observer():
    assert registry.get_dispatch_observer() is None, "a previous test left a dispatch observer installed"
    yield
    obs = registry.get_dispatch_observer()
    if isinstance(obs, Recorder):
        obs.stop()
    registry.set_dispatch_observer(None)
