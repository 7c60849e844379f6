"""Test support code shared by test modules: fake GPU machines (CuPy and numba.cuda)."""
