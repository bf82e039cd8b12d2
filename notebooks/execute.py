"""Execute walkthrough notebooks in place, store their outputs and stamp the package version.

Run after editing a walkthrough:  ``python notebooks/execute.py notebooks/01_quickstart.ipynb``
(no argument: every ``notebooks/*.ipynb``). nbval then re-runs them in the test suite and
compares against the stored outputs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the kernels inherit it: one BLAS thread, steady timings

# Imported after the thread pins so that nothing they load can start a BLAS pool unpinned.
import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

HERE = Path(__file__).resolve().parent


def execute(path: Path) -> None:
    import spiraltorch_nb

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nb.metadata.pop("widgets", None)  # no widget state: keeps notebooks small and diffable
    nb.metadata["spiraltorch_nb"] = {"validated_with": spiraltorch_nb.__version__}
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nbformat.write(nb, path)
    print(f"executed {path.name} (validated_with {spiraltorch_nb.__version__})")


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(HERE.glob("[0-9]*.ipynb"))
    for p in paths:
        execute(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
