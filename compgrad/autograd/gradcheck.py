"""``gradcheck`` / ``gradgradcheck``: analytical gradients against finite differences."""

from __future__ import annotations

import numpy as np

from compgrad.autograd.api import grad as _grad
from compgrad.tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by gradcheck when analytical and numerical gradients differ."""


def _outputs(fn, inputs) -> tuple:
    out = fn(*inputs)
    return (out,) if isinstance(out, Tensor) else tuple(o for o in out if isinstance(o, Tensor))


def _numerical_jacobian(fn, inputs, index: int, eps: float) -> list[np.ndarray]:
    x = inputs[index]
    data = x.detach()._data  # perturbed in place, restored after
    flat = data.reshape(-1) if data.flags.c_contiguous else None
    if flat is None:
        raise GradcheckError("gradcheck needs contiguous inputs")
    outs0 = _outputs(fn, inputs)
    cols = [np.zeros((o.numel(), x.numel())) for o in outs0]
    for k in range(x.numel()):
        orig = flat[k].item()
        flat[k] = orig + eps
        plus = [o.detach()._data.astype(np.float64).reshape(-1) for o in _outputs(fn, inputs)]
        flat[k] = orig - eps
        minus = [o.detach()._data.astype(np.float64).reshape(-1) for o in _outputs(fn, inputs)]
        flat[k] = orig
        for c, p, m in zip(cols, plus, minus):
            c[:, k] = (p - m) / (2 * eps)
    return cols


def _analytical_jacobian(fn, inputs, index: int) -> list[np.ndarray]:
    outs = _outputs(fn, inputs)
    x = inputs[index]
    result = []
    for o in outs:
        jac = np.zeros((o.numel(), x.numel()))
        if o.requires_grad:
            flat = o.reshape(-1)
            for r in range(o.numel()):
                (g,) = _grad((flat[r],), (x,), retain_graph=True, allow_unused=True)
                if g is not None:
                    jac[r] = g.detach()._data.astype(np.float64).reshape(-1)
        result.append(jac)
    return result


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0,
              check_undefined_grad: bool = True, fast_mode: bool = False, **_ignored) -> bool:
    """Check the gradients of ``func`` at ``inputs`` (use float64 inputs that require grad)."""
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    checked = False
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        checked = True
        if x.dtype.name != "float64":
            import warnings
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating "
                          "point. This check will likely fail if all the inputs are not of "
                          "double precision floating point.", UserWarning, stacklevel=2)
        numerical = _numerical_jacobian(func, inputs, i, eps)
        analytical = _analytical_jacobian(func, inputs, i)
        for j, (n, a) in enumerate(zip(numerical, analytical)):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if raise_exception:
                    raise GradcheckError(
                        f"Jacobian mismatch for output {j} with respect to input {i},\n"
                        f"numerical:{n}\nanalytical:{a}\n")
                return False
    if not checked:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, gen_non_contig_grad_outputs: bool = False,
                  raise_exception: bool = True, **_ignored) -> bool:
    """Check second derivatives: gradcheck of the function's VJP."""
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    outs = _outputs(func, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(
            Tensor._from_array(rng.standard_normal(o.shape).astype(o._data.dtype))
            .requires_grad_(True) for o in outs)
    else:
        grad_outputs = tuple(grad_outputs)
    diff_inputs = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    n = len(inputs)

    def vjp_fn(*args):
        xs, gos = args[:n], args[n:]
        outs_ = _outputs(func, xs)
        pairs = [(o, g) for o, g in zip(outs_, gos) if o.requires_grad]
        grads = _grad(tuple(o for o, _ in pairs), tuple(xs[i] for i in diff_inputs),
                      tuple(g for _, g in pairs), create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(vjp_fn, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
