"""In CI a test that skips because wgpu is unavailable fails instead (tests/conftest.py), wherever the skip is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_needs_wgpu():
    pytest.skip("a second device is needed: wgpu unavailable (no adapter)")

def test_needs_cuda():
    pytest.skip("cuda unavailable: no NVIDIA GPU")
'''


def run(tmp_path: Path, ci: str) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "conftest",
                           "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    return proc.stdout + proc.stderr


def test_a_wgpu_skip_fails_in_ci_and_a_cuda_skip_stays_a_skip(tmp_path: Path) -> None:
    out = run(tmp_path, "true")
    assert "1 failed, 1 skipped" in out, out
    assert "wgpu must be available here (CI=true)" in out


def test_outside_ci_both_skip(tmp_path: Path) -> None:
    assert "2 skipped" in run(tmp_path, ""), run(tmp_path, "")
