"""``python -m spiraltorch_nb demo`` trains a model headless and says what it did.

The command is run as a user runs it, in a fresh interpreter; the checks read its
output: one line per epoch with the losses going down, a test accuracy well above
chance, and the telemetry summary of where the time went.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import spiraltorch_nb

EPOCH = re.compile(r"^epoch +(\d+)/(\d+): train loss ([\d.]+) +val loss ([\d.]+) +val accuracy ([\d.]+)$", re.M)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "spiraltorch_nb", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    proc = run_cli("demo", cwd=tmp_path_factory.mktemp("demo"))
    assert proc.returncode == 0, f"demo exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_demo_names_the_version_the_data_and_the_model(demo_output: str) -> None:
    lines = demo_output.splitlines()
    assert lines[0] == f"spiraltorch_nb {spiraltorch_nb.__version__} demo"
    assert re.match(r"^data: .+; train \d+, test \d+$", lines[1]), lines[1]
    model = re.match(r"^model: MLP (\d+)-128-64-(\d+) \((\d+) parameters\) on cpu$", lines[2])
    assert model, lines[2]
    n_in, n_cls, n_params = (int(g) for g in model.groups())
    assert n_params == n_in * 128 + 128 + 128 * 64 + 64 + 64 * n_cls + n_cls


def test_demo_prints_every_epoch_and_the_loss_goes_down(demo_output: str) -> None:
    epochs = [(int(e), int(total), float(tr), float(va), float(acc))
              for e, total, tr, va, acc in EPOCH.findall(demo_output)]
    assert [e for e, *_ in epochs] == list(range(1, 9)), demo_output
    assert all(total == 8 for _, total, *_ in epochs)
    first, last = epochs[0], epochs[-1]
    assert last[2] < first[2] / 2, f"train loss should fall by half or more: {first[2]} -> {last[2]}"
    assert last[3] < first[3], f"validation loss should fall: {first[3]} -> {last[3]}"
    assert last[4] > first[4], f"validation accuracy should rise: {first[4]} -> {last[4]}"


def test_demo_reports_test_accuracy_well_above_chance(demo_output: str) -> None:
    match = re.search(r"^trained 8 epochs in [\d.]+ s; test accuracy ([\d.]+)$", demo_output, re.M)
    assert match, demo_output
    accuracy = float(match.group(1))
    # digits (scikit-learn, a dev dependency) has 10 classes; the spiral fallback has 3
    floor = 0.9 if "digits" in demo_output else 0.6
    assert accuracy >= floor, f"test accuracy {accuracy} is below {floor}"


def test_demo_shows_where_the_time_went(demo_output: str) -> None:
    summary = demo_output.split("where the time went (top ops):\n", 1)
    assert len(summary) == 2, demo_output
    rows = [line.split() for line in summary[1].splitlines() if line.strip()]
    assert len(rows) == 5
    assert "linear" in [row[0] for row in rows]
    assert all(row[1] == "cpu" and row[3] == "calls" and row[4].endswith("%") for row in rows), rows


def test_info_lists_every_device_and_no_command_prints_help(tmp_path: Path) -> None:
    info = run_cli("info", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines()[0] == f"spiraltorch_nb {spiraltorch_nb.__version__}"
    assert re.search(r"^  cpu +available: ", info.stdout, re.M), info.stdout
    for name in ("wgpu", "cuda"):
        assert re.search(rf"^  {name} +(available|unavailable): \S", info.stdout, re.M), info.stdout
    usage = run_cli(cwd=tmp_path)
    assert usage.returncode == 2
    assert "demo" in usage.stdout and "info" in usage.stdout
