"""Code generation: fused groups -> Numba CPU / CUDA kernels, and the runtime."""

import os

# One thread-pool policy per process (../shared/NUMBA_NOTES.md): after a parallel region
# Numba's OpenMP workers spin, starving OpenBLAS's threads, and a program alternating
# kernels with BLAS calls slows down ~40x (8,666 vs 204 us an iteration measured with
# passive waiting). libgomp reads this when it loads, i.e. at the first parallel kernel:
# set it before that, unless the user chose a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
