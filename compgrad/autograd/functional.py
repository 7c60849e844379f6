"""``compgrad.autograd.functional``: vjp, jvp, jacobian, hessian, hvp, vhp.

All are built from reverse mode: a JVP is the gradient of a VJP with respect
to its (linear) cotangent, so it needs only double backward.
"""

from __future__ import annotations

from compgrad.autograd.api import grad as _grad
from compgrad.autograd.grad_mode import enable_grad
from compgrad.tensor import Tensor
from ir import ops

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]


def _as_tuple(x, name: str) -> tuple[tuple, bool]:
    if isinstance(x, Tensor):
        return (x,), False
    if isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x):
        return tuple(x), True
    raise TypeError(f"The {name} given to the function must be either a Tensor or a tuple of "
                    f"Tensors but the given value is {type(x).__name__}.")


def _prepare(inputs: tuple, create_graph: bool) -> tuple:
    out = []
    for t in inputs:
        t = t if create_graph and t.requires_grad else t.detach()
        out.append(t.requires_grad_(True) if not t.requires_grad else t)
    return tuple(out)


def _input_directions(v, ins: tuple) -> tuple:
    """``v`` as a tuple; None means 1 for a single one-element input, as in PyTorch."""
    if v is not None:
        return _as_tuple(v, "v")[0]
    if len(ins) != 1 or ins[0].numel() != 1:
        raise RuntimeError("The vector v can only be None if the input to the user-provided "
                           "function is a single Tensor with a single element.")
    return (ops.full(ins[0].shape, 1.0, dtype=ins[0].dtype),)


def _zeros_like(t: Tensor) -> Tensor:
    return ops.full(t.shape, 0.0, dtype=t.dtype, device=t.device)


def _grads(outputs, inputs, grad_outputs, create_graph: bool, strict: bool, what: str):
    outs = tuple(o for o in outputs if o.requires_grad)
    gos = tuple(g for o, g in zip(outputs, grad_outputs) if o.requires_grad)
    if not outs:
        if strict:
            raise RuntimeError(f"The output of the user-provided function is independent of "
                               f"input 0. This is not allowed in strict mode ({what}).")
        return tuple(_zeros_like(t) for t in inputs)
    result = _grad(outs, inputs, gos, create_graph=create_graph, retain_graph=True,
                   allow_unused=True)
    final = []
    for i, (g, t) in enumerate(zip(result, inputs)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode.")
            g = _zeros_like(t)
        final.append(g)
    return tuple(final)


def _finish(value, create_graph: bool):
    if isinstance(value, tuple):
        return tuple(_finish(v, create_graph) for v in value)
    return value if create_graph else value.detach()


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``."""
    with enable_grad():
        ins, ins_tuple = _as_tuple(inputs, "inputs")
        ins = _prepare(ins, create_graph)
        out = func(*ins)
        outs, outs_tuple = _as_tuple(out, "outputs of the user-provided function")
        if v is None:
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the user-provided function "
                                   "returns a single Tensor with a single element.")
            vs = (ops.full(outs[0].shape, 1.0, dtype=outs[0].dtype),)
        else:
            vs, _ = _as_tuple(v, "v")
        grads = _grads(outs, ins, vs, create_graph, strict, "vjp")
    out = _finish(outs if outs_tuple else outs[0], create_graph)
    return out, _finish(grads if ins_tuple else grads[0], create_graph)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)`` by the double-VJP trick."""
    with enable_grad():
        ins, ins_tuple = _as_tuple(inputs, "inputs")
        ins = _prepare(ins, True)
        vs = _input_directions(v, ins)
        out = func(*ins)
        outs, outs_tuple = _as_tuple(out, "outputs of the user-provided function")
        us = tuple(_zeros_like(o).requires_grad_(True) for o in outs)
        g = _grads(outs, ins, us, True, strict, "jvp")
        g_used = [(gi, vi) for gi, vi in zip(g, vs) if gi.requires_grad]
        if not g_used:
            jv = tuple(_zeros_like(o) for o in outs)
        else:
            jv = _grads(tuple(gi for gi, _ in g_used), us, tuple(vi for _, vi in g_used),
                        create_graph, strict, "jvp")
    out = _finish(outs if outs_tuple else outs[0], create_graph)
    return out, _finish(jv if outs_tuple else jv[0], create_graph)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs`` (shape ``out.shape + in.shape`` per pair)."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    with enable_grad():
        ins, ins_tuple = _as_tuple(inputs, "inputs")
        ins = _prepare(ins, create_graph)
        out = func(*ins)
        outs, outs_tuple = _as_tuple(out, "outputs of the user-provided function")
        rows = []
        for o in outs:
            flat = ops.reshape(o, (-1,))
            per_input: list[list] = [[] for _ in ins]
            for k in range(flat.numel()):
                if o.requires_grad:
                    gs = _grad((flat[k],), ins, None, create_graph=create_graph,
                               retain_graph=True, allow_unused=True)
                else:
                    gs = (None,) * len(ins)
                for j, (g, t) in enumerate(zip(gs, ins)):
                    if g is None:
                        if strict:
                            raise RuntimeError(f"Output {k} of the user-provided function is "
                                               f"independent of input {j}. This is not allowed "
                                               "in strict mode.")
                        g = _zeros_like(t)
                    per_input[j].append(g)
            blocks = []
            for j, t in enumerate(ins):
                stacked = ops.stack(per_input[j]) if per_input[j] else \
                    ops.full((0,) + tuple(t.shape), 0.0, dtype=t.dtype)
                blocks.append(ops.reshape(stacked, tuple(o.shape) + tuple(t.shape)))
            rows.append(tuple(blocks))
    rows = _finish(tuple(rows), create_graph)
    if not outs_tuple and not ins_tuple:
        return rows[0][0]
    if not outs_tuple:
        return rows[0]
    if not ins_tuple:
        return tuple(r[0] for r in rows)
    return rows


def hessian(func, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of scalar ``func`` at ``inputs``."""
    ins, ins_tuple = _as_tuple(inputs, "inputs")

    def gradient(*xs):
        out = func(*xs)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise RuntimeError("The function given to hessian should return a single Tensor "
                               "with a single element.")
        gs = _grads((out,), xs, (None,), True, strict, "hessian")
        return gs if ins_tuple else gs[0]

    return jacobian(gradient, inputs, create_graph=create_graph, strict=strict)


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), H v)`` for scalar ``func`` (H is symmetric, so this is vhp)."""
    return vhp(func, inputs, v, create_graph, strict)


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T H)`` for scalar ``func``."""
    with enable_grad():
        ins, ins_tuple = _as_tuple(inputs, "inputs")
        ins = _prepare(ins, create_graph)
        out = func(*ins)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise RuntimeError("The function given to hvp/vhp should return a single Tensor "
                               "with a single element.")
        vs = _input_directions(v, ins)
        gs = _grads((out,), ins, (None,), True, strict, "vhp")
        used = [(g, vi) for g, vi in zip(gs, vs) if g.requires_grad]
        if used:
            res = _grads(tuple(g for g, _ in used), ins, tuple(vi for _, vi in used),
                         create_graph, strict, "vhp")
        else:
            res = tuple(_zeros_like(t) for t in ins)
    return _finish(out, create_graph), _finish(res if ins_tuple else res[0], create_graph)
