"""Code generation: fused groups -> Numba CPU / CUDA kernels, and the runtime."""
