"""Indexing: ``x[index]`` and ``x[index] = value``, index_put, slice/select_scatter.

``x[index]`` follows PyTorch's two steps: the basic part of the index (ints,
slices, None, Ellipsis) is one view op (``getitem``, its normalised spec an
attribute), then the advanced part (integer tensors, masks, lists, bools) is
one copying op (``index``) whose index tensors are op inputs. Masks become
integer indices through ``nonzero``; ops whose output size depends on values
(``nonzero``, ``masked_select``) read that size once in the public function
and carry it as an attribute, so type rules stay pure.

``index_put_value`` is ``x[index] = value`` written functionally: it returns
the whole new tensor, and ``Tensor.__setitem__`` writes it into storage.
Gather/scatter and the ``index_*`` ops live in ``ir.ops.indexing_scatter``; nonzero and
the masked ops in ``ir.ops.indexing_masked``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ir import dtypes
from ir.dispatch import is_scalar
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    asarray_like,
    common_device,
    is_array,
    register,
    type_of,
    ufunc_at,
)
from ir.samples import arr, bools, noncontig
from ir.types import CPU, TensorType, broadcast_shapes, shape_str

__all__ = ["index_put", "slice_scatter", "select_scatter"]
METHODS = ("index_put", "slice_scatter", "select_scatter")
INPLACE = ("index_put",)
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL = ("getitem", "index_put_value", "index_constant", "zeros_of", "index_tensor",
            "index_put_tensor", "index_put_basic", "read_count")

_INDEX_DTYPES = (dtypes.int64, dtypes.int32)
_BAD_INDEX = "tensors used as indices must be long, int, byte or bool tensors"


# --- constants (list indices, zeros for VJPs) -------------------------------------------

def _const_rule(types, values, shape, dtype, device):
    return TensorType(shape, dtype, device)


def _const_impl(values, shape, dtype, device):
    if len(values) == 1:
        return np.full(shape, values[0], dtype=dtype.np_dtype)
    return np.array(values, dtype=dtype.np_dtype).reshape(shape)


def _const_samples():
    yield Sample((arr(4, 3), [0, 2, -1]), grad=False, note="a list index becomes a constant")
    yield Sample((arr(4, 3), (slice(None), [True, False, True])), grad=False)


INDEX_CONST = register(OpDef("index_constant", OpKind.CREATION, _const_rule, _const_impl, None,
                             _const_samples, public="Tensor.__getitem__", differentiable=False))


def index_constant(values, shape, dtype, device=CPU):
    """A constant tensor of ``shape`` holding ``values`` (one value fills it)."""
    return apply(INDEX_CONST, values=tuple(values), shape=tuple(shape), dtype=dtype,
                 device=device)


def zeros_of(shape, like):
    """Zeros of ``shape`` with the dtype and device of ``like`` (for VJP rules)."""
    t = type_of(like)
    return apply(INDEX_CONST, values=(0,), shape=tuple(shape), dtype=t.dtype, device=t.device)


def read_count(mask):
    """The number of nonzero elements of ``mask``, read as a Python int (forces a graph)."""
    from ir.ops.elementwise import to_dtype
    from ir.ops.reduce import sum as sum_
    total = sum_(to_dtype(mask, dtypes.bool_))
    return int(total.item())


# --- the basic (view) part: getitem and index_put_basic ---------------------------------

def _np_index(spec):
    return tuple(slice(s[1], s[2], s[3]) if isinstance(s, tuple) else s for s in spec)


def _basic_shape(shape, spec):
    out = []
    d = 0
    for s in spec:
        if s is None:
            out.append(1)
        elif isinstance(s, tuple):
            out.append(len(range(s[1], s[2], s[3])))
            d += 1
        else:
            d += 1
    return tuple(out) + tuple(shape[d:])


def _getitem_rule(types, spec):
    (t,) = types
    return TensorType(_basic_shape(t.shape, spec), t.dtype, t.device)


def _getitem_impl(a, spec):
    # a NumPy view, as PyTorch's basic indexing gives a view (a[()] of a 0-d array would not)
    if not spec:
        return a.view()
    index = _np_index(spec)
    # a trailing Ellipsis makes NumPy return a 0-d view instead of a scalar copy
    return a[index if any(i is Ellipsis for i in index) else index + (Ellipsis,)]


def _getitem_vjp(ctx, g):
    shape = ctx.input_types[0].shape
    return (index_put_basic(zeros_of(shape, g), g, ctx.attrs["spec"]),)


def _getitem_samples():
    yield Sample((arr(4, 5), 1))
    yield Sample((arr(4, 5), -1))
    yield Sample((arr(4, 5), (slice(1, None, 2), slice(None, -1))))
    yield Sample((arr(2, 3, 4), (Ellipsis, 1)))
    yield Sample((arr(2, 3, 4), (None, 0, Ellipsis, None, slice(1, 3))))
    yield Sample((noncontig(4, 5), (slice(None, None, 3), 2)))
    yield Sample((arr(4), slice(10, 20)), note="empty slice")
    yield Sample((arr(0, 3), (slice(None), 1)), note="empty input")
    yield Sample((arr(), None), note="0-d")
    yield Sample((arr(), Ellipsis))
    yield Sample((arr(3, 4, dtype=np.int64), (1, slice(0, 2))), grad=False)
    yield ErrorSample((arr(3, 4), 5), {}, IndexError, "index 5 is out of bounds for dimension 0 "
                      "with size 3")
    yield ErrorSample((arr(3, 4), (0, -5)), {}, IndexError, "out of bounds for dimension 1")
    yield ErrorSample((arr(3, 4), (0, 0, 0)), {}, IndexError,
                      "too many indices for tensor of dimension 2")
    yield ErrorSample((arr(3, 4), slice(None, None, -1)), {}, ValueError,
                      "step must be greater than zero")
    yield Sample((arr(3, 4), (Ellipsis, 1, Ellipsis)), note="PyTorch accepts two ellipses")
    yield ErrorSample((arr(3, 4), 1.5), {}, IndexError, "are valid indices")


GETITEM = register(OpDef("getitem", OpKind.MOVEMENT, _getitem_rule, _getitem_impl, _getitem_vjp,
                         _getitem_samples, public="Tensor.__getitem__", is_view=True))


def _strip_leading_ones(value, ndim):
    """PyTorch drops leading size-1 dims of a value written into a smaller view."""
    if is_scalar(value):
        return value
    shape = type_of(value).shape
    k = 0
    while len(shape) - k > ndim and shape[k] == 1:
        k += 1
    if k:
        from ir.ops.movement import reshape
        value = reshape(value, shape[k:])
    return value


def _expand_error(target, have):
    if len(have) > len(target):
        return RuntimeError(
            f"expand(Type{{{shape_str(have)}}}, size={shape_str(target)}): the number of sizes "
            f"provided ({len(target)}) must be greater or equal to the number of dimensions in "
            f"the tensor ({len(have)})")
    lead = len(target) - len(have)
    for i, s in enumerate(have):
        if s != 1 and s != target[lead + i]:
            return RuntimeError(
                f"The expanded size of the tensor ({target[lead + i]}) must match the existing "
                f"size ({s}) at non-singleton dimension {lead + i}.  Target sizes: "
                f"{shape_str(target)}.  Tensor sizes: {shape_str(have)}")
    return None


def _check_same_dtype(t, v, what):
    if not v.weak and v.dtype is not t.dtype:
        raise RuntimeError(f"{what} requires the source and destination dtypes match, got "
                           f"{t.dtype.torch_name} for the destination and {v.dtype.torch_name} "
                           "for the source.")


def _put_basic_rule(types, spec):
    device = common_device(types)
    t, v = types
    view = _basic_shape(t.shape, spec)
    err = _expand_error(view, v.shape)
    if err is not None:
        raise err
    _check_same_dtype(t, v, "Index put")
    return TensorType(t.shape, t.dtype, device)


def _put_basic_impl(a, v, spec):
    out = a.copy(order="K")
    out[_np_index(spec)] = v
    return out


def _put_basic_vjp(ctx, g):
    spec = ctx.attrs["spec"]
    return index_put_basic(g, 0, spec), apply(GETITEM, g, spec=spec)


def _put_basic_samples():
    # slice_scatter(input, src, dim, start, end, step) / select_scatter(input, src, dim, index)
    yield Sample((arr(4, 5), arr(4, 2, seed=1), 1, 1, 5, 2))
    yield Sample((arr(4, 5), arr(2, 5, seed=1)), {"start": 2})
    yield Sample((noncontig(4, 5), arr(4, 1, seed=1), -1, None, 1))
    yield Sample((arr(4, 5), arr(4, 0, seed=1), 1, 7))
    yield Sample((arr(3, 4, dtype=np.int64), arr(1, 4, dtype=np.int64, seed=1)), {"end": 1},
                 grad=False)
    yield ErrorSample((arr(4, 5), arr(4, 2, seed=1)), {"dim": 1}, RuntimeError,
                      "expected src to have a size equal to the slice of self")


INDEX_PUT_BASIC = register(OpDef("index_put_basic", OpKind.INDEXING, _put_basic_rule,
                                 _put_basic_impl, _put_basic_vjp, _put_basic_samples,
                                 public="slice_scatter"))


def index_put_basic(input, value, spec):
    """``input`` with its basic-indexed view (``spec``) set to ``value``, as a new tensor."""
    return apply(INDEX_PUT_BASIC, input, value, spec=spec)


def _norm_slice(sl, n):
    for v in (sl.start, sl.stop, sl.step):
        if v is not None and not hasattr(v, "__index__"):
            raise TypeError("slice indices must be integers or None or have an __index__ method")
    step = 1 if sl.step is None else sl.step.__index__()
    if step <= 0:
        raise ValueError("step must be greater than zero")
    start, stop, step = slice(sl.start, sl.stop, step).indices(n)
    stop = max(stop, start)
    return ("s", start, stop, step)


def _check_scatter_src(input, src, spec):
    view = _basic_shape(type_of(input).shape, spec)
    have = type_of(src).shape
    if have != view:
        raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = "
                           f"{shape_str(have)}, slice size = {shape_str(view)}")


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    """``input`` with ``input[..., start:end:step, ...]`` (at ``dim``) replaced by ``src``."""
    from ir.types import normalize_dim
    t = type_of(input)
    d = normalize_dim(dim, t.ndim)
    spec = tuple(("s", 0, n, 1) for n in t.shape[:d]) + (
        _norm_slice(slice(start, end, step), t.shape[d]),)
    _check_scatter_src(input, src, spec)
    return index_put_basic(input, src, spec)


def select_scatter(input, src, dim, index):
    """``input`` with ``input.select(dim, index)`` replaced by ``src``."""
    from ir.types import normalize_dim
    t = type_of(input)
    d = normalize_dim(dim, t.ndim)
    n = t.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{shape_str(t.shape)} at dimension {dim}")
    spec = tuple(("s", 0, s, 1) for s in t.shape[:d]) + (index % n,)
    _check_scatter_src(input, src, spec)
    return index_put_basic(input, src, spec)


# --- the advanced part: index and index_put ----------------------------------------------

def _adv_shape(shape, idx_types, dims):
    for it in idx_types:
        if it.dtype not in _INDEX_DTYPES:
            raise IndexError(_BAD_INDEX)
    try:
        b = broadcast_shapes(*(it.shape for it in idx_types))
    except RuntimeError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together "
                         "with shapes " + ", ".join(shape_str(it.shape) for it in idx_types)) \
            from None
    rest = [s for i, s in enumerate(shape) if i not in dims]
    if dims == tuple(range(dims[0], dims[0] + len(dims))):
        return tuple(shape[:dims[0]]) + b + tuple(shape[dims[-1] + 1:])
    return b + tuple(rest)


def _np_adv_index(a, idx, dims):
    full = [slice(None)] * a.ndim
    for d, i in zip(dims, idx):
        n = a.shape[d]
        i = i.astype(np.int64, copy=False) if is_array(i) else np.asarray(i, dtype=np.int64)
        bad = (i >= n) | (i < -n)
        if bad.any():
            raise IndexError(f"index {int(i[bad].ravel()[0])} is out of bounds for dimension "
                             f"{d} with size {n}")
        full[d] = i
    return tuple(full)


def _index_devices(t, its) -> None:
    """PyTorch's rule for index tensors: on the CPU or on the indexed tensor's device."""
    for it in its:
        if it.device != t.device and it.device.type != "cpu":
            raise RuntimeError("indices should be either on cpu or on the same device as the "
                               f"indexed tensor ({t.device})")


def _index_rule(types, dims):
    t, *its = types
    _index_devices(t, its)
    return TensorType(_adv_shape(t.shape, its, dims), t.dtype, t.device)


def _index_impl(a, *idx, dims):
    # copied: NumPy indexes with a 0-d index array as with an int, giving a view
    return a[_np_adv_index(a, idx, dims)].copy(order="K")


def _index_vjp(ctx, g):
    idx = ctx.inputs[1:]
    dims = ctx.attrs["dims"]
    gx = index_put_tensor(zeros_of(ctx.input_types[0].shape, g), g, idx, dims, accumulate=True)
    return (gx,) + (None,) * len(idx)


def _index_samples():
    i = np.array([2, 0, 2, -1])
    yield Sample((arr(4, 3), i), note="duplicates accumulate")
    yield Sample((arr(4, 3), (slice(None), np.array([[0, 2], [1, 1]]))))
    yield Sample((arr(2, 3, 4), (np.array([0, 1]), slice(None), np.array([1, 3]))),
                 note="separated: advanced dims first")
    yield Sample((arr(2, 3, 4), (slice(None), np.array([0, 2]), np.array([[1], [3]]))))
    yield Sample((arr(2, 3, 4), (0, slice(None), np.array([1, 2]))), note="int is basic")
    yield Sample((arr(2, 3, 4), (None, np.array([0, 1]), slice(None), np.array([1, 2]))))
    yield Sample((arr(3, 4), bools(3, 4)), note="mask")
    yield Sample((arr(3, 4), (bools(3, seed=2), slice(1, None))))
    yield Sample((arr(3, 4), np.array([1, 2], dtype=np.int32)))
    yield Sample((arr(3, 4), np.array(1)), note="0-d index tensor")
    yield Sample((arr(3, 4), True))
    yield Sample((arr(3, 4), (0, False)))
    yield Sample((arr(3, 4), np.zeros(0, dtype=np.int64)), note="empty index")
    yield Sample((arr(3, 4, dtype=np.int64), [[0, 1], [1, 2]]), grad=False)
    yield ErrorSample((arr(3, 4), np.array([0.0])), {}, IndexError, _BAD_INDEX)
    yield ErrorSample((arr(3, 4), np.array([0, 5])), {}, IndexError,
                      "index 5 is out of bounds for dimension 0 with size 3")
    yield ErrorSample((arr(3, 4), (np.array([0, 1]), np.array([0, 1, 2]))), {}, IndexError,
                      "shape mismatch")
    yield ErrorSample((arr(3, 4), bools(2)), {}, IndexError, "The shape of the mask [2] at "
                      "index 0 does not match the shape of the indexed tensor [3, 4] at index 0")


INDEX = register(OpDef("index", OpKind.INDEXING, _index_rule, _index_impl, _index_vjp,
                       _index_samples, public="Tensor.__getitem__"))


def index_tensor(input, indices, dims):
    """``input`` advanced-indexed by integer ``indices`` at ``dims`` (the other dims whole)."""
    return apply(INDEX, input, *indices, dims=tuple(dims))


def _index_put_rule(types, dims, accumulate):
    t, v, *its = types
    device = common_device((t, v))   # the values on the tensor's device (or a CPU scalar)
    _index_devices(t, its)
    res = _adv_shape(t.shape, its, dims)
    if _expand_error(res, v.shape) is not None:
        raise RuntimeError(f"shape mismatch: value tensor of shape {shape_str(v.shape)} cannot "
                           f"be broadcast to indexing result of shape {shape_str(res)}")
    _check_same_dtype(t, v, "Index put")
    return TensorType(t.shape, t.dtype, device)


def _index_put_impl(a, v, *idx, dims, accumulate):
    out = a.copy(order="K")
    where = _np_adv_index(out, idx, dims)
    v = v.astype(out.dtype, copy=False) if is_array(v) else asarray_like(v, out, out.dtype)
    if not accumulate:
        out[where] = v
    elif type(out) is np.ndarray:
        np.add.at(out, where, np.broadcast_to(v, out[where].shape))
    else:
        ufunc_at(np.add, out, where, v)   # a device array: through flat positions
    return out


def _index_put_vjp(ctx, g):
    need = ctx.needs_input_grad
    idx = ctx.inputs[2:]
    dims, acc = ctx.attrs["dims"], ctx.attrs["accumulate"]
    gx = g if acc else (index_put_tensor(g, 0, idx, dims) if need[0] else None)
    gv = index_tensor(g, idx, dims) if need[1] else None
    return (gx, gv) + (None,) * len(idx)


def _index_put_samples():
    i = np.array([2, 0])
    yield Sample((arr(4, 3), (i,), arr(2, 3, seed=1)))
    yield Sample((arr(4, 3), (i,), arr(3, seed=1)), note="values broadcast")
    yield Sample((arr(4, 3), (np.array([1, 1, 2]),), arr(3, 1, seed=1)), {"accumulate": True})
    yield Sample((arr(4, 3), (np.array([0, 3]), np.array([2, -1])), arr(seed=1)))
    yield Sample((arr(3, 4), (bools(3, 4),), arr(seed=1)), note="mask")
    yield Sample((noncontig(4, 3), (i,), arr(1, seed=1)), {"accumulate": True})
    yield Sample((arr(3, 4, dtype=np.int64), (i,), arr(4, dtype=np.int64, seed=1)), grad=False)
    yield ErrorSample((arr(3, 4), (i,), arr(4, dtype=np.float64)), {}, RuntimeError,
                      "dtypes match")
    yield ErrorSample((arr(3, 4), (i,), arr(3, 4)), {}, RuntimeError, "shape mismatch")
    yield ErrorSample((arr(3, 4), (np.array([5]),), arr(4)), {}, IndexError, "out of bounds")
    yield ErrorSample((arr(3, 4), (i, i, i), arr(4)), {}, IndexError, "too many indices")


INDEX_PUT = register(OpDef("index_put", OpKind.INDEXING, _index_put_rule, _index_put_impl,
                           _index_put_vjp, _index_put_samples))


def index_put_tensor(input, values, indices, dims, accumulate=False):
    """``input`` with ``input[indices at dims] = values`` (or ``+=``), as a new tensor."""
    return apply(INDEX_PUT, input, values, *indices, dims=tuple(dims),
                 accumulate=bool(accumulate))


def index_put(input, indices, values, accumulate=False):
    """``torch.index_put``: a copy of ``input`` with ``input[indices] = values``."""
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put(): argument 'indices' must be tuple of Tensors, not "
                        f"{type(indices).__name__}")
    if is_scalar(values):
        raise TypeError("index_put(): argument 'values' (position 2) must be Tensor, not "
                        f"{type(values).__name__}")
    for k, i in enumerate(indices):
        if i is None or is_scalar(i) or isinstance(i, (list, tuple, slice)):
            raise TypeError(f"expected Tensor as element {k} in argument 1, but got "
                            f"{type(i).__name__}")
    spec, adv = _parse_index(input, tuple(indices))
    return _put(input, spec, adv, values, accumulate)


def _put(input, spec, adv, value, accumulate):
    if adv is None:
        return index_put_basic(input, value, spec)
    idx, dims = adv
    if not spec:
        return index_put_tensor(input, value, idx, dims, accumulate)
    view = apply(GETITEM, input, spec=spec)
    return index_put_basic(input, index_put_tensor(view, value, idx, dims, accumulate), spec)


# --- parsing an index as PyTorch does ---------------------------------------------------

def _is_tensor_value(v) -> bool:
    if v is None or v is Ellipsis or isinstance(v, (slice, list, tuple, str, bool)) or \
            is_scalar(v):
        return False
    try:
        type_of(v)
    except TypeError:
        return False
    return True


def _as_tuple(index):
    if isinstance(index, tuple):
        return index
    if isinstance(index, list) and len(index) < 32 and any(
            v is None or v is Ellipsis or isinstance(v, (slice, list, tuple))
            or _is_tensor_value(v) for v in index):
        warnings.warn("Using a non-tuple sequence for multidimensional indexing is deprecated; "
                      "use x[tuple(seq)] instead of x[seq]", UserWarning, stacklevel=4)
        return tuple(index)
    return (index,)


def _list_to_index(v, device):
    if isinstance(v, np.ndarray):
        a = v
    else:
        try:
            a = np.array(v)
        except ValueError:
            raise IndexError("could not build an index tensor from a ragged list") from None
    if a.size == 0 and a.dtype.kind == "f":
        a = a.astype(np.int64)
    if a.dtype.kind == "b":
        dt = dtypes.bool_
    elif a.dtype.kind in "iu":
        dt = dtypes.int64 if not isinstance(v, np.ndarray) else dtypes.from_numpy_dtype(a.dtype)
    else:
        raise IndexError(_BAD_INDEX)
    values = tuple(a.ravel().tolist()) if a.size else (0,)
    return index_constant(values, a.shape, dt, device)


def _parse_index(x, index):
    """(basic spec, advanced part or None) for ``x[index]`` following PyTorch."""
    t = type_of(x)
    items = []
    for v in _as_tuple(index):
        if isinstance(v, (list, np.ndarray)):
            v = _list_to_index(v, CPU)
        items.append(v)
    count = 0
    for v in items:
        if v is None or isinstance(v, (bool, np.bool_)):
            continue
        if v is Ellipsis:
            continue
        if _is_tensor_value(v) and type_of(v).dtype in (dtypes.bool_, dtypes.uint8):
            count += type_of(v).ndim
        else:
            count += 1
    if count > t.ndim:
        raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
    spec = []
    idx, dims = [], []
    dim = 0   # position in the basic view being built
    orig = 0  # position in the input
    for v in items:
        if v is None:
            spec.append(None)
            dim += 1
        elif v is Ellipsis:
            n = min(t.ndim - count, t.ndim - orig)  # PyTorch lets a second one skip nothing
            spec.extend(("s", 0, s, 1) for s in t.shape[orig:orig + n])
            dim += n
            orig += n
        elif isinstance(v, (bool, np.bool_)):
            spec.append(None)
            idx.append(index_constant((0,), (1 if v else 0,), dtypes.int64))
            dims.append(dim)
            dim += 1
        elif _is_tensor_value(v):
            it = type_of(v)
            if it.dtype in (dtypes.bool_, dtypes.uint8):
                if it.ndim == 0:
                    from ir.ops.movement import reshape
                    spec.append(None)
                    v = reshape(v, (1,))
                    k = 1
                else:
                    k = it.ndim
                    for j in range(k):
                        if it.shape[j] != t.shape[orig + j]:
                            raise IndexError(
                                f"The shape of the mask {shape_str(it.shape)} at index {j} does "
                                f"not match the shape of the indexed tensor {shape_str(t.shape)} "
                                f"at index {orig + j}")
                    spec.extend(("s", 0, s, 1) for s in t.shape[orig:orig + k])
                    orig += k
                from ir.ops.indexing_masked import nonzero
                cols = nonzero(v, as_tuple=True)
                idx.extend(cols)
                dims.extend(range(dim, dim + len(cols)))
                dim += len(cols)
            elif it.dtype in _INDEX_DTYPES:
                spec.append(("s", 0, t.shape[orig], 1))
                idx.append(v)
                dims.append(dim)
                dim += 1
                orig += 1
            else:
                raise IndexError(_BAD_INDEX)
        elif isinstance(v, slice):
            spec.append(_norm_slice(v, t.shape[orig]))
            dim += 1
            orig += 1
        elif isinstance(v, (int, np.integer)):
            n = t.shape[orig]
            k = int(v)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for dimension {orig} with size {n}")
            spec.append(k % n)
            orig += 1
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(v).__name__})")
    while spec and isinstance(spec[-1], tuple):
        d = sum(1 for s in spec if s is not None) - 1
        if spec[-1] != ("s", 0, t.shape[d], 1):
            break
        spec.pop()  # trailing whole slices change nothing
    return tuple(spec), ((tuple(idx), tuple(dims)) if idx else None)


def getitem(input, index):
    """``input[index]``: a view for basic indices, a copy when the index has tensors."""
    spec, adv = _parse_index(input, index)
    if adv is None:
        return apply(GETITEM, input, spec=spec)
    base = apply(GETITEM, input, spec=spec) if spec else input
    idx, dims = adv
    return index_tensor(base, idx, dims)


def index_put_value(input, index, value):
    """``input[index] = value`` as a new tensor, ``value`` broadcast over the indexed
    positions. As in PyTorch, scalars and values written through basic indices are cast to
    the dtype of ``input``; tensors written through advanced indices must match it."""
    from ir.ops.elementwise import to_dtype
    t = type_of(input)
    spec, adv = _parse_index(input, index)
    if adv is None and not is_scalar(value) and type_of(value).dtype is not t.dtype:
        value = to_dtype(value, t.dtype)
    if adv is None:
        value = _strip_leading_ones(value, len(_basic_shape(t.shape, spec)))
        return index_put_basic(input, value, spec)
    idx, dims = adv
    view_shape = _basic_shape(t.shape, spec)
    res = _adv_shape(view_shape, tuple(type_of(i) for i in idx), dims)
    value = _strip_leading_ones(value, len(res))
    return _put(input, spec, adv, value, False)
