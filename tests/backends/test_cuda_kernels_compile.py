"""The CUDA kernel sources compile, and every kernel the cuda backend launches exists.

These run without a GPU: ``nvcc --ptx`` only needs the CUDA toolkit, so a kernel that
does not compile fails CI on any machine that has nvcc. They skip only where nvcc is
truly absent (not on PATH and not under /usr/local/cuda*/bin).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from spiraltorch_nb._assets import asset_dir
from spiraltorch_nb.backends.cuda import fused

CUDA_DIR = asset_dir("kernels") / "cuda"
CU_FILES = sorted(CUDA_DIR.glob("*.cu"))


def find_nvcc() -> str | None:
    """nvcc from PATH, else the newest /usr/local/cuda*/bin/nvcc."""
    found = shutil.which("nvcc")
    if found:
        return found
    for path in sorted(glob.glob("/usr/local/cuda*/bin/nvcc"), reverse=True):
        if os.access(path, os.X_OK):
            return path
    return None


NVCC = find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH or under /usr/local/cuda*/bin")


def _ptx_entries(ptx: str) -> set[str]:
    return set(re.findall(r"\.entry\s+(\w+)\(", ptx))


def _nvcc_ptx(source: Path, out_dir: Path) -> str:
    out = out_dir / (source.stem + ".ptx")
    proc = subprocess.run([NVCC, "--ptx", "-o", str(out), str(source)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"nvcc --ptx {source.name} failed (exit {proc.returncode}):\n{proc.stderr}")
    return out.read_text()


def test_kernel_files_are_present() -> None:
    names = {p.name for p in CU_FILES}
    assert set(fused.KERNEL_FILES) <= names, f"fused.KERNELS names files missing from {CUDA_DIR}"
    assert names <= set(fused.KERNEL_FILES), f"{CUDA_DIR} holds kernels the backend never loads: {names}"
    assert (CUDA_DIR / "common.cuh").is_file()


def test_kernel_source_pastes_the_shared_header() -> None:
    for name in fused.KERNEL_FILES:
        text = fused.kernel_source(name)
        includes = [ln for ln in text.splitlines() if ln.lstrip().startswith("#include")]
        assert not includes, f"{name}: {includes} left in the source handed to NVRTC"
        assert "st_block_sum" in text, f"{name}: common.cuh was not pasted in"


@needs_nvcc
@pytest.mark.parametrize("path", CU_FILES, ids=[p.name for p in CU_FILES])
def test_cu_file_compiles_with_nvcc(path: Path, tmp_path: Path) -> None:
    entries = _ptx_entries(_nvcc_ptx(path, tmp_path))
    declared = set(re.findall(r'extern "C" __global__ void (\w+)\(', path.read_text()))
    assert declared, f"{path.name} declares no extern \"C\" kernels"
    assert declared <= entries, f"{path.name}: kernels missing from the PTX: {sorted(declared - entries)}"
    for base in fused.KERNELS.get(path.name, ()):
        for suffix in ("f32", "f64"):
            assert f"{base}_{suffix}" in entries, \
                f"the backend launches {base}_{suffix}, which {path.name} does not define"
