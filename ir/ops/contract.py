"""Tensor contractions: ``einsum`` (a MATMUL-kind primitive) and ``tensordot`` (an einsum).

The public ``einsum`` normalises PyTorch's equation (spaces, ``...``, implicit
output) into an explicit one with a letter per dim, so the type rule, the
reference and the VJP only see plain subscripts. The VJP of operand ``i`` is
another einsum: the output cotangent and the other operands contracted to
operand ``i``'s subscripts (dims only operand ``i`` has are broadcast back,
repeated subscripts (diagonals) are scattered back with identity matrices).
"""

from __future__ import annotations

import string

import numpy as np

from ir import dtypes
from ir.opdef import ErrorSample, Sample
from ir.ops._util import OpDef, OpKind, apply, common_device, is_scalar, register, type_of
from ir.samples import arr, bools, ints, noncontig
from ir.types import TensorType

__all__ = ["einsum", "tensordot"]
METHODS: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = ()

_LETTERS = string.ascii_uppercase + string.ascii_lowercase


def _parse(equation: str, shapes: list[tuple[int, ...]]) -> str:
    """PyTorch's einsum equation -> explicit ``"ab,bc->ac"`` without ellipses or spaces."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) > len(shapes):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
    if len(terms) < len(shapes):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    parsed = []
    for i, term in enumerate(terms):
        labels: list[str] = []
        ell = False
        j = 0
        while j < len(term):
            c = term[j]
            if c == ".":
                if term[j:j + 3] != "..." or ell:
                    raise RuntimeError(f"einsum(): found '.' for operand {i} that is not part "
                                       "of any ellipsis")
                labels.append("...")
                ell = True
                j += 3
                continue
            if c not in _LETTERS:
                raise RuntimeError(f"einsum(): invalid subscript given at index {j} in the "
                                   "equation string, subscripts must be in [a-zA-Z]")
            labels.append(c)
            j += 1
        nlab = len(labels) - ell
        ndim = len(shapes[i])
        if (not ell and nlab != ndim) or (ell and nlab > ndim):
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({nlab}) does not match "
                f"the number of dimensions ({ndim}) for operand {i}"
                + ("" if ell else " and no ellipsis was given"))
        parsed.append(labels)
    used = {c for labels in parsed for c in labels if c != "..."} | set(
        c for c in rhs if c in _LETTERS)
    n_ell = max((len(shapes[i]) - (len(lab) - 1) for i, lab in enumerate(parsed)
                 if "..." in lab), default=0)
    fresh = [c for c in _LETTERS if c not in used]
    if n_ell > len(fresh):
        raise RuntimeError("einsum(): too many dimensions for the available subscripts")
    ell_letters = "".join(fresh[:n_ell])
    out_terms = []
    for i, labels in enumerate(parsed):
        k = len(shapes[i]) - (len(labels) - 1)
        out_terms.append("".join((ell_letters[n_ell - k:] if c == "..." else c) for c in labels))
    if arrow:
        out = rhs.replace("...", ell_letters)
        if "." in out:
            raise RuntimeError("einsum(): found '.' for output but an ellipsis (...) was "
                               "already found")
        for c in out:
            if c not in _LETTERS:
                raise RuntimeError("einsum(): invalid subscript given in the output, "
                                   "subscripts must be in [a-zA-Z]")
            if out.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in "
                                   "the output")
            if not any(c in t for t in out_terms):
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                                   "equation for any input operand")
    else:
        counts: dict[str, int] = {}
        for labels in parsed:
            for c in labels:
                if c != "...":
                    counts[c] = counts.get(c, 0) + 1
        out = ell_letters + "".join(sorted(c for c, n in counts.items() if n == 1))
    return ",".join(out_terms) + "->" + out


def _sizes(terms: list[str], shapes) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        own: dict[str, int] = {}
        for c, s in zip(term, shape):
            if c in own and own[c] != s:
                raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {i} but "
                                   f"the sizes don't match, {s} != {own[c]}")
            own[c] = s
        for c, s in own.items():
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = s
            elif s != 1 and s != prev:
                raise RuntimeError(f"einsum(): subscript {c} has size {s} for operand {i} which "
                                   f"does not broadcast with previously seen size {prev}")
    return sizes


def _einsum_rule(types, equation):
    device = common_device(types)
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    dtype = types[0].dtype
    for t in types[1:]:
        if t.dtype is not dtype:
            raise RuntimeError(f"expected scalar type {dtype.torch_name} but found "
                               f"{t.dtype.torch_name}")
    if dtype is dtypes.bool_ and len(types) > 1:
        raise NotImplementedError("\"bmm\" not implemented for 'Bool'")
    sizes = _sizes(terms, [t.shape for t in types])
    return TensorType(tuple(sizes[c] for c in out), dtype, device)


def _einsum_impl(*operands, equation):
    dt = operands[0].dtype
    if dt == np.float16:
        operands = tuple(o.astype(np.float32) for o in operands)
    elif dt == np.bool_:  # a single bool operand: sums count as in PyTorch (any)
        return np.einsum(equation, *operands).astype(np.bool_)
    if len(operands) > 1:
        try:
            return np.einsum(equation, *operands, optimize=True)
        except ValueError:  # NumPy's optimised path rejects some size-1 broadcasts
            pass
    return np.einsum(equation, *operands)


def _eye(n: int, like):
    from ir import ops
    t = type_of(like)
    return ops.eye(n, dtype=t.dtype, device=t.device)


def _einsum_vjp(ctx, g):
    from ir.ops.movement import expand, reshape
    equation = ctx.attrs["equation"]
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    inputs = ctx.inputs   # read lazily: an operand's value only for the others' gradients
    used = set(equation)
    fresh = [c for c in _LETTERS if c not in used]
    grads = []
    for i, (xt, term) in enumerate(zip(ctx.input_types, terms)):
        if xt.dtype.category != dtypes.CATEGORY_FLOAT or not ctx.needs_input_grad[i]:
            grads.append(None)
            continue
        others = [(t, inputs[j]) for j, t in enumerate(terms) if j != i]
        present = set(out).union(*(set(t) for t, _ in others))
        unique = "".join(dict.fromkeys(term))
        kept = "".join(c for c in unique if c in present)
        eq = ",".join([out] + [t for t, _ in others]) + "->" + kept
        h = apply(EINSUM, g, *(v for _, v in others), equation=eq)
        own = dict(zip(term, xt.shape))
        hs = dict(zip(kept, type_of(h).shape))
        if kept != unique:  # dims only this operand has: the gradient broadcasts along them
            h = reshape(h, tuple(hs.get(c, 1) for c in unique))
        target = tuple(own[c] if hs.get(c, 1) == 1 else hs[c] for c in unique)
        if type_of(h).shape != target:
            h = expand(h, target)
        if unique != term:  # repeated subscripts: put the gradient on the diagonal
            renamed, eyes, eye_terms = [], [], []
            seen = set()
            for c in term:
                if c in seen:
                    f = fresh.pop(0)
                    renamed.append(f)
                    eye_terms.append(c + f)
                    eyes.append(_eye(own[c], h))
                else:
                    seen.add(c)
                    renamed.append(c)
            eq = ",".join([unique] + eye_terms) + "->" + "".join(renamed)
            h = apply(EINSUM, h, *eyes, equation=eq)
        grads.append(h)
    return tuple(grads)


def _einsum_samples():
    yield Sample(("ij,jk->ik", arr(2, 3), arr(3, 4, seed=1)))
    yield Sample(("ij,jk", arr(2, 3), noncontig(3, 4, seed=1)), note="implicit output")
    yield Sample(("ba,Ab", arr(2, 3), arr(5, 2, seed=1)), note="implicit: upper case first")
    yield Sample(("bij,bjk->bik", arr(2, 2, 3), arr(2, 3, 4, seed=1)))
    yield Sample(("...ij,...jk", arr(2, 1, 2, 3), arr(5, 3, 4, seed=1)), note="ellipsis")
    yield Sample(("i...j,j...->...i", arr(2, 5, 3), arr(3, 1, seed=1)))
    yield Sample(("ij->ji", arr(2, 3)))
    yield Sample(("ij->", arr(2, 3)))
    yield Sample(("ij->j", arr(2, 3)), note="sum over a dim only one operand has")
    yield Sample(("ij,j->i", arr(2, 1), arr(3, seed=1)), note="size-1 broadcast of a subscript")
    yield Sample(("i,j->ij", arr(3), arr(4, seed=1)))
    yield Sample(("i j , j k -> i k", [arr(2, 3), arr(3, 2, seed=1)]), note="list, spaces")
    yield Sample(("ij,jk,kl->il", arr(2, 3), arr(3, 4, seed=1), arr(4, 2, seed=2)))
    yield Sample(("bi,bi->b", arr(0, 3), arr(0, 3, seed=1)), note="empty")
    yield Sample(("ii->i", arr(3, 3)), note="diagonal")
    yield Sample(("ii", arr(3, 3)), note="trace")
    yield Sample(("ij,jk", ints(2, 3), ints(3, 4, seed=1)), grad=False)
    yield Sample(("ij->ji", bools(2, 3)), grad=False)
    yield ErrorSample(("ij,jk", arr(2, 3), arr(4, 4)), {}, RuntimeError,
                      "einsum(): subscript j has size 4 for operand 1 which does not broadcast "
                      "with previously seen size 3")
    yield ErrorSample(("ij,jk", arr(2, 3)), {}, RuntimeError, "fewer operands")
    yield ErrorSample(("ij", arr(2, 3), arr(2, 3)), {}, RuntimeError, "more operands")
    yield ErrorSample(("ijk,jk", arr(2, 3), arr(3, 3)), {}, RuntimeError,
                      "the number of subscripts in the equation (3) does not match the number "
                      "of dimensions (2) for operand 0")
    yield ErrorSample(("ij->k", arr(2, 3)), {}, RuntimeError, "output subscript k does not appear")
    yield ErrorSample(("ij->ii", arr(2, 3)), {}, RuntimeError, "appears more than once")
    yield ErrorSample(("ii->i", arr(3, 4)), {}, RuntimeError, "is repeated for operand 0")
    yield ErrorSample(("i.j", arr(2, 3, 4)), {}, RuntimeError, "not part of any ellipsis")
    yield ErrorSample(("i1", arr(2, 3)), {}, RuntimeError, "subscripts must be in [a-zA-Z]")
    yield ErrorSample(("ij,jk", arr(2, 3), arr(3, 4, dtype=np.float64)), {}, RuntimeError,
                      "expected scalar type Float but found Double")


EINSUM = register(OpDef("einsum", OpKind.MATMUL, _einsum_rule, _einsum_impl, _einsum_vjp,
                        _einsum_samples))


def einsum(equation, *operands):
    """Einstein summation, with PyTorch's ``...``, implicit output and size-1 broadcasting."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): argument 'equation' must be str, not "
                        f"{type(equation).__name__}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    for i, x in enumerate(operands):
        if is_scalar(x) or x is None:
            raise TypeError(f"expected Tensor as element {i} in argument 1, but got "
                            f"{type(x).__name__}")
    eq = _parse(equation, [type_of(x).shape for x in operands])
    return apply(EINSUM, *operands, equation=eq)


# --- tensordot ---------------------------------------------------------------------------

def _dim_list(d) -> list[int]:
    if isinstance(d, int):
        return [d]
    if hasattr(d, "tolist"):
        d = d.tolist()
        return [d] if isinstance(d, int) else list(d)
    return [int(v) for v in d]


def tensordot(a, b, dims=2, out=None):
    """Contract the dims ``dims`` of ``a`` and ``b`` (an int: the last/first ``dims`` dims)."""
    from ir.types import normalize_dim
    if out is not None:
        raise TypeError("compgrad ops do not support out=; assign the result instead")
    ta, tb = type_of(a), type_of(b)
    if isinstance(dims, int) or (hasattr(dims, "ndim") and dims.ndim == 0):
        n = int(dims)
        if n < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={n}")
        if n > min(ta.ndim, tb.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={n}")
        da, db = list(range(ta.ndim - n, ta.ndim)), list(range(n))
    else:
        try:
            first, second = dims
        except (TypeError, ValueError):
            raise RuntimeError("tensordot expects dims to be a pair of dimension lists or an "
                               "int") from None
        da, db = _dim_list(first), _dim_list(second)
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    if ta.dtype is not tb.dtype:
        raise RuntimeError("both inputs should have same dtype")
    da = [normalize_dim(d, ta.ndim) for d in da]
    db = [normalize_dim(d, tb.ndim) for d in db]
    letters = iter(_LETTERS)
    sa = [next(letters) for _ in range(ta.ndim)]
    sb = [next(letters) for _ in range(tb.ndim)]
    for i, j in zip(da, db):
        if ta.shape[i] != tb.shape[j]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{ta.shape[i]} in dim {i} and second has size {tb.shape[j]} in "
                               f"dim {j}")
        sb[j] = sa[i]
    out_s = [c for k, c in enumerate(sa) if k not in da] + \
        [c for k, c in enumerate(sb) if k not in db]
    eq = "".join(sa) + "," + "".join(sb) + "->" + "".join(out_s)
    return apply(EINSUM, a, b, equation=eq)
