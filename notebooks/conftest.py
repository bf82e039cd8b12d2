"""nbval runs the walkthroughs: pin BLAS/OpenMP threads for the kernels it starts.

Kernels inherit this process's environment. On small shared machines a multi-threaded
BLAS spinning in the background slowed walkthrough training forty-fold.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# these are tools, not tests: keep --doctest-modules from importing them as test modules
collect_ignore = ["conftest.py", "execute.py"]
