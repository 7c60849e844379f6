"""How :mod:`codegen.mathfns` was made: its coefficients re-derived, and the speed table in its
docstring measured (``python -m codegen.mathfns_derive``). Not used at run time; the tests
check that the derivations reproduce the constants in use.

Speed: ``python -m codegen.mathfns_derive`` times a ``prange`` loop
(``parallel=True``) over 2^22 float32 that applies the inline function, and
the same loop calling ``np.<fn>`` (libm inside Numba; sigmoid as
``1 / (1 + np.exp(-x))``, erf as ``math.erf``), plus ``x * 2``, the
memory-bound floor. ms per call, the best of 30 alternating calls, 2 threads
(numba 0.68.1, llvmlite 0.50.0, an AVX-512 machine), load average ~1.7 on its 2
cores: read the ratios as rough. exp_f32 runs in float32 arithmetic (it was 2.8
against 14.8 ms, 5.3x, when it computed in float64 under a load of ~2.5).

==========  ======  =======  =====
loop        inline  np.<fn>  ratio
==========  ======  =======  =====
x * 2       0.6     0.6      1
exp         1.4     7.4      5.3
log         2.4     9.2      3.8
expm1       1.6     27.7     17
log1p       3.2     26.5     8.3
tanh        1.8     37.2     21
sigmoid     2.1     7.6      3.6
erf         7.5     40.3     5.4
==========  ======  =======  =====

erf costs more than the others because both of its polynomials (|x| < 1 and
the tail) and an exp are computed for every lane.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from codegen import mathfns
from codegen.mathfns import _TAIL_LO, _TANH_ONE, _TANH_P, _TANH_Q, MODULE_ALIAS

__all__ = ["derive_tanh_coefficients", "derive_erf_coefficients"]


def derive_tanh_coefficients(points: int = 6000, rounds: int = 8
                             ) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """Re-derive ``_TANH_P`` and ``_TANH_Q`` (how they were made): the rational a P(a^2) /
    Q(a^2), q0 = 1, minimising the largest relative error against float64 tanh on a dense
    grid of [1e-4, 9.1], by linear programming on the linearised error weighted by 1 / Q
    of the previous round (Loeb's iteration). Returns (P, Q, the largest relative error).
    Not used at run time."""
    from scipy.optimize import linprog

    x = np.unique(np.concatenate([
        np.linspace(1e-4, _TANH_ONE, points),
        _TANH_ONE * (1.0 - np.cos(np.linspace(0.0, np.pi / 2, points // 2)))[1:]]))
    t, y = np.tanh(x), x * x
    m, n = len(_TANH_P), len(_TANH_Q) - 1
    powers = y[:, None] ** np.arange(max(m, n + 1))
    weight = np.ones_like(x)
    for _ in range(rounds):
        # |a P(y) - t Q(y)| / (t Q_prev(y)) <= E, linear in the coefficients and E
        scale = (weight / t)[:, None]
        a = np.hstack([x[:, None] * powers[:, :m], -t[:, None] * powers[:, 1:n + 1]]) * scale
        b = t * scale[:, 0]
        ones = np.ones((len(x), 1))
        res = linprog(np.r_[np.zeros(m + n), 1.0],
                      A_ub=np.vstack([np.hstack([a, -ones]), np.hstack([-a, -ones])]),
                      b_ub=np.r_[b, -b], bounds=[(None, None)] * (m + n) + [(0, None)],
                      method="highs")
        p, q = res.x[:m], np.r_[1.0, res.x[m:m + n]]
        den = powers[:, :n + 1] @ q
        weight = 1.0 / den
    err = float(np.max(np.abs(x * (powers[:, :m] @ p) / den / t - 1.0)))
    return tuple(float(c) for c in p), tuple(float(c) for c in q), err


def derive_erf_coefficients(points: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Re-derive ``_ERF_SMALL`` and ``_ERFCX_TAIL`` (how they were made): least-squares
    Chebyshev fits on Chebyshev nodes against SciPy's float64 erf/erfcx, converted to
    power series in the scaled variable. Not used at run time."""
    from numpy.polynomial import chebyshev
    from scipy import special

    def fit(fn, lo, hi, degree):
        c, h = (lo + hi) / 2, (hi - lo) / 2
        u = np.cos(np.pi * (np.arange(points) + 0.5) / points)
        coef = chebyshev.cheb2poly(chebyshev.chebfit(u, fn(c + h * u), degree))
        return tuple(float(x) for x in coef)

    def erf_over_a(t):
        a = np.sqrt(t)
        return np.where(t > 0, special.erf(a) / np.where(a > 0, a, 1), 2 / np.sqrt(np.pi))

    def erfcx_of_inverse(v):
        return special.erfcx(1 / v)

    return fit(erf_over_a, 0.0, 1.0, 8), fit(erfcx_of_inverse, _TAIL_LO, 1.0, 14)


# --- the benchmark in the module docstring ------------------------------------------------------

def _benchmark(n: int = 1 << 22, repeat: int = 30) -> dict[str, tuple[float, float]]:
    """ms per call of a prange loop over n float32, inline function vs np.<fn>: the best of
    ``repeat`` calls each, alternating the two so that both see the same machine load."""
    import time

    from numba import prange

    def make(body: str):
        src = (f"def kernel(x, out):\n    for i in prange(x.shape[0]):\n"
               f"        v = x[i]\n        out[i] = {body}\n")
        scope = {"np": np, "math": math, "prange": prange, MODULE_ALIAS: mathfns}
        exec(src, scope)
        return njit(parallel=True, error_model="numpy")(scope["kernel"])

    rng = np.random.default_rng(0)
    x = rng.uniform(-5.0, 5.0, n).astype(np.float32)
    xpos = np.abs(x) + np.float32(0.01)
    cases = {
        "x * 2": ("v * np.float32(2.0)", "v * np.float32(2.0)", x),
        "exp": ("_mf.exp_f32(v)", "np.exp(v)", x),
        "log": ("_mf.log_f32(v)", "np.log(v)", xpos),
        "expm1": ("_mf.expm1_f32(v)", "np.expm1(v)", x),
        "log1p": ("_mf.log1p_f32(v)", "np.log1p(v)", xpos),
        "tanh": ("_mf.tanh_f32(v)", "np.tanh(v)", x),
        "sigmoid": ("_mf.sigmoid_f32(v)", "np.float32(1.0) / (np.float32(1.0) + np.exp(-v))",
                    x),
        "erf": ("_mf.erf_f32(v)", "math.erf(v)", x),
    }

    def once(kernel, data, out) -> float:
        t0 = time.perf_counter()
        kernel(data, out)
        return time.perf_counter() - t0

    results = {}
    for name, (fast_body, slow_body, data) in cases.items():
        fast, slow = make(fast_body), make(slow_body)
        out = np.empty_like(data)
        once(fast, data, out), once(slow, data, out)   # compile, touch the pages
        best_fast = best_slow = math.inf
        for _ in range(repeat):
            best_fast = min(best_fast, once(fast, data, out))
            best_slow = min(best_slow, once(slow, data, out))
        results[name] = (best_fast * 1e3, best_slow * 1e3)
    return results


if __name__ == "__main__":
    import numba

    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads, "
          f"2^22 float32, ms per call (best of 30)")
    print(f"{'function':10s} {'inline':>8s} {'np.<fn>':>8s}")
    for fn, (fast_ms, slow_ms) in _benchmark().items():
        print(f"{fn:10s} {fast_ms:8.1f} {slow_ms:8.1f}")
