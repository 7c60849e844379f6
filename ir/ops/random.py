"""Random ops keyed by a generator key: rand, randn, randint, randperm, normal, ....

Each op takes the generator's key (an int64[2] tensor ``[seed, counter]``,
from ``generator.next_key()``) as input 0 and draws from a counter-based
Philox stream keyed by it, so the numbers depend only on the key: the same
seed gives the same numbers eagerly, traced and compiled, and a compiled
program takes the key as an input (RNG state). Shapes, dtypes and the
distribution's parameters are attributes; tensor parameters (``normal``'s
mean and std, ``bernoulli``'s probabilities) are inputs.

The values are constants for autograd. ``normal`` and ``bernoulli`` pass a
zero gradient to their tensor parameters, as PyTorch does (their outputs
require grad when a parameter does).

The functions here take a ``generator`` (anything with ``next_key()``); the
user-facing wrappers with PyTorch's signatures are in ``compgrad.random``.
"""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.dtypes import CATEGORY_FLOAT, CATEGORY_INT, DType
from ir.opdef import ErrorSample, Sample
from ir.ops._util import (
    OpDef,
    OpKind,
    apply,
    check_dtype_arg,
    common_device,
    is_scalar,
    register,
    type_of,
)
from ir.samples import arr
from ir.types import CPU, Device, TensorType, broadcast_shapes, check_shape, shape_str

__all__: list[str] = []
METHODS: tuple[str, ...] = ()
INPLACE: tuple[str, ...] = ()
FUNCTIONAL: tuple[str, ...] = ()
INTERNAL: tuple[str, ...] = (
    "rand", "randn", "randint", "randperm", "normal", "bernoulli", "exponential", "multinomial",
    "philox",
)

_NOTE = "random values"
_C_NAMES = {dtypes.uint8: "unsigned char", dtypes.int8: "signed char", dtypes.int16: "short",
            dtypes.int32: "int", dtypes.int64: "long", dtypes.bool_: "bool"}


def philox(key: np.ndarray) -> np.random.Generator:
    """The NumPy generator for a key: a Philox stream depending only on the key's values."""
    return np.random.Generator(np.random.Philox(key=np.asarray(key).reshape(2).astype(np.uint64)))


def _key(generator):
    if generator is None or not hasattr(generator, "next_key"):
        raise TypeError("random ops need a generator (an object with next_key())")
    return generator.next_key()


def _device(device) -> Device:
    if device is None:
        return CPU
    return device if isinstance(device, Device) else Device(device)


def _check_key(t: TensorType) -> None:
    if t.dtype is not dtypes.int64 or t.shape != (2,):
        raise RuntimeError(f"expected a generator key (an int64 tensor of shape [2]), got "
                           f"{t.dtype.name} {shape_str(t.shape)}")


def _float_only(dtype: DType, kernel: str) -> None:
    if dtype.category != CATEGORY_FLOAT:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{dtype.torch_name}\'')


def _keyed_rule(kernel: str | None):
    def rule(types, shape, dtype, device, **_attrs):
        _check_key(types[0])
        if kernel is not None:
            _float_only(dtype, kernel)
        return TensorType(shape, dtype, device)

    rule.__name__ = f"{kernel or 'random'}_type_rule"
    return rule


def _unit(g: np.random.Generator, shape, dtype: DType) -> np.ndarray:
    """Uniform [0, 1) values exactly representable in ``dtype`` (never rounding up to 1)."""
    u = g.random(shape)
    bits = {1: None, 2: 11, 4: 24, 8: None}[dtype.itemsize]
    if bits is not None:
        u = np.floor(u * (1 << bits)) / (1 << bits)
    return u


def _shape_samples(**kw):
    yield Sample(((2, 3),), dict(kw), grad=False, torch=False, note=_NOTE)
    yield Sample(((),), dict(kw), grad=False, torch=False, note=_NOTE + "; 0-d")
    yield Sample(((0, 4),), dict(kw), grad=False, torch=False, note=_NOTE + "; empty")
    yield Sample(((5,),), {"dtype": dtypes.float64, **kw}, grad=False, torch=False, note=_NOTE)
    yield Sample(((4,),), {"dtype": dtypes.float16, **kw}, grad=False, torch=False, note=_NOTE)


# --- rand (uniform) ----------------------------------------------------------------------

def _uniform_impl(key, *, shape, dtype, device, low, high):
    u = _unit(philox(key), shape, dtype)
    return low + (high - low) * u


def _rand_samples():
    yield from _shape_samples()
    yield ErrorSample(((3,),), {"dtype": dtypes.int64}, NotImplementedError,
                      "not implemented for 'Long'")
    yield ErrorSample(((-1,),), {}, RuntimeError, "negative dimension")


UNIFORM = register(OpDef("uniform", OpKind.RANDOM, _keyed_rule("check_uniform_bounds"),
                         _uniform_impl, None, _rand_samples, public="rand",
                         differentiable=False))


def rand(size, generator, dtype=None, device=None, low=0.0, high=1.0):
    """Uniform values in ``[low, high)`` of ``size`` (the default float dtype unless given)."""
    low, high = float(low), float(high)
    if low > high:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                           f"from={_fmt(low)} > to={_fmt(high)}")
    d = check_dtype_arg(dtype) or dtypes.default_float_dtype()
    return apply(UNIFORM, _key(generator), shape=check_shape(size), dtype=d,
                 device=_device(device), low=low, high=high)


def _fmt(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


# --- randn -------------------------------------------------------------------------------

def _randn_impl(key, *, shape, dtype, device):
    return philox(key).standard_normal(shape)


def _randn_samples():
    yield from _shape_samples()
    yield ErrorSample(((3,),), {"dtype": dtypes.int64}, NotImplementedError,
                      "not implemented for 'Long'")


RANDN = register(OpDef("randn", OpKind.RANDOM, _keyed_rule("normal_kernel_cpu"), _randn_impl,
                       None, _randn_samples, differentiable=False))


def randn(size, generator, dtype=None, device=None):
    """Standard normal values of ``size``."""
    d = check_dtype_arg(dtype) or dtypes.default_float_dtype()
    return apply(RANDN, _key(generator), shape=check_shape(size), dtype=d,
                 device=_device(device))


# --- normal (tensor or scalar mean/std) --------------------------------------------------

def _normal_rule(types, shape, dtype, device):
    key, mean, std = types
    _check_key(key)
    _float_only(dtype, "normal_kernel_cpu")
    for t in (mean, std):
        if not t.weak:
            _float_only(t.dtype, "normal_kernel_cpu")
    if broadcast_shapes(mean.shape, std.shape, shape) != shape:
        raise RuntimeError(f"normal: mean {shape_str(mean.shape)} and std "
                           f"{shape_str(std.shape)} do not broadcast to {shape_str(shape)}")
    return TensorType(shape, dtype, device)


def _normal_impl(key, mean, std, *, shape, dtype, device):
    if np.any(np.asarray(std) < 0):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    z = philox(key).standard_normal(shape)
    return np.asarray(mean, dtype=np.float64) + np.asarray(std, dtype=np.float64) * z


def _zero_param_grads(ctx, g):
    from ir.ops.elementwise import mul
    return (None,) + tuple(None if t is None else mul(g, 0.0) for t in ctx.input_types[1:])


def _normal_samples():
    s = dict(grad=False, torch=False, note=_NOTE)
    yield Sample((arr(3, 4), arr(3, 4, low=0.5, high=2.0, seed=1)), **s)
    yield Sample((arr(2, 1), arr(3, low=0.5, high=2.0, seed=1)), **s)
    yield Sample((arr(3, dtype=np.float64), 2.0), **s)
    yield Sample((1.0, arr(2, 2, low=0.1, high=1.0)), **s)
    yield Sample((0.0, 1.0, (2, 3)), **s)
    yield Sample((0.0, 1.0, (4,)), {"dtype": dtypes.float64}, **s)
    yield ErrorSample((arr(3), -1.0), {}, RuntimeError, "normal expects std >= 0.0")
    yield ErrorSample((arr(3), arr(3, low=-2.0, high=-1.0)), {}, RuntimeError,
                      "normal expects all elements of std >= 0.0")
    yield ErrorSample((arr(2), arr(3)), {}, RuntimeError, "must match the size")


NORMAL = register(OpDef("normal", OpKind.RANDOM, _normal_rule, _normal_impl, _zero_param_grads,
                        _normal_samples))


def normal(mean, std, generator, size=None, dtype=None, device=None):
    """Normal values with ``mean`` and ``std`` (numbers or tensors, broadcast together).

    With two numbers, ``size`` gives the shape; otherwise the dtype and device
    come from the tensor parameters (``mean``'s first), as in PyTorch.
    """
    mt, st = type_of(mean), type_of(std)
    if is_scalar(std) and std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {_fmt(float(std))}")
    tensors = [t for t in (mt, st) if not t.weak]
    if tensors:
        shape = broadcast_shapes(mt.shape, st.shape)
        d = check_dtype_arg(dtype) or tensors[0].dtype
        dev = common_device(tensors) if device is None else _device(device)
    else:
        if size is None:
            raise TypeError("normal() with a float mean and a float std needs a size")
        shape = check_shape(size)
        d = check_dtype_arg(dtype) or dtypes.default_float_dtype()
        dev = _device(device)
    return apply(NORMAL, _key(generator), mean, std, shape=shape, dtype=d, device=dev)


# --- randint -----------------------------------------------------------------------------

def _int_bounds(dtype: DType):
    if dtype is dtypes.bool_:
        return 0, 1
    if dtype.category == CATEGORY_INT:
        info = np.iinfo(dtype.np_dtype)
        return int(info.min), int(info.max)
    return None


def _randint_rule(types, low, high, shape, dtype, device):
    _check_key(types[0])
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}")
    bounds = _int_bounds(dtype)
    if bounds is not None:
        name = _C_NAMES.get(dtype, dtype.name)
        if not bounds[0] <= low <= bounds[1]:
            raise RuntimeError(f"from is out of bounds for {name}")
        if not bounds[0] <= high - 1 <= bounds[1]:
            raise RuntimeError(f"to - 1 is out of bounds for {name}")
    return TensorType(shape, dtype, device)


def _randint_impl(key, *, low, high, shape, dtype, device):
    g = philox(key)
    if high - 1 < 2 ** 63:
        return g.integers(low, high - 1, size=shape, dtype=np.int64, endpoint=True)
    return g.integers(low, high - 1, size=shape, dtype=np.uint64, endpoint=True)


def _randint_samples():
    s = dict(grad=False, torch=False, note=_NOTE)
    yield Sample((10, (3, 4)), **s)
    yield Sample((-5, 5, (6,)), **s)
    yield Sample((0, 2, ()), **s)
    yield Sample((3, 10, (2, 2)), {"dtype": dtypes.float32}, **s)
    yield Sample((0, 2, (5,)), {"dtype": dtypes.bool_}, **s)
    yield Sample((0, 200, (5,)), {"dtype": dtypes.uint8}, **s)
    yield ErrorSample((5, 5, (2,)), {}, RuntimeError, "expects 'from' to be less than 'to'")
    yield ErrorSample((0, 300, (2,)), {"dtype": dtypes.uint8}, RuntimeError,
                      "to - 1 is out of bounds for unsigned char")


RANDINT = register(OpDef("randint", OpKind.RANDOM, _randint_rule, _randint_impl, None,
                         _randint_samples, differentiable=False))


def randint(low, high, size, generator, dtype=None, device=None):
    """Integers uniform in ``[low, high)`` (int64 unless ``dtype`` says otherwise)."""
    d = check_dtype_arg(dtype) or dtypes.int64
    return apply(RANDINT, _key(generator), low=_as_int(low, "low"), high=_as_int(high, "high"),
                 shape=check_shape(size), dtype=d, device=_device(device))


def _as_int(x, name: str) -> int:
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        if isinstance(x, float) and x.is_integer():
            return int(x)
        raise TypeError(f"randint(): argument '{name}' must be int, not {type(x).__name__}")
    return x.__index__()


# --- randperm ----------------------------------------------------------------------------

def _randperm_rule(types, n, dtype, device):
    _check_key(types[0])
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    if dtype is dtypes.bool_:
        raise NotImplementedError("\"randperm\" not implemented for 'Bool'")
    return TensorType((n,), dtype, device)


def _randperm_impl(key, *, n, dtype, device):
    return philox(key).permutation(n)


def _randperm_samples():
    s = dict(grad=False, torch=False, note=_NOTE)
    yield Sample((10,), **s)
    yield Sample((0,), **s)
    yield Sample((5,), {"dtype": dtypes.float32}, **s)
    yield Sample((7,), {"dtype": dtypes.int32}, **s)
    yield ErrorSample((-1,), {}, RuntimeError, "negative dimension -1")


RANDPERM = register(OpDef("randperm", OpKind.RANDOM, _randperm_rule, _randperm_impl, None,
                          _randperm_samples, differentiable=False))


def randperm(n, generator, dtype=None, device=None):
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype`` says otherwise)."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"randperm(): argument 'n' (position 1) must be int, not "
                        f"{type(n).__name__}")
    d = check_dtype_arg(dtype) or dtypes.int64
    return apply(RANDPERM, _key(generator), n=n.__index__(), dtype=d, device=_device(device))


# --- bernoulli ---------------------------------------------------------------------------

def _bernoulli_rule(types, shape, dtype, device):
    key, p = types
    _check_key(key)
    if not p.weak:
        _float_only(p.dtype, "bernoulli_tensor_cpu_p_")
        if broadcast_shapes(p.shape, shape) != shape:
            raise RuntimeError(f"bernoulli: p of shape {shape_str(p.shape)} does not broadcast "
                               f"to {shape_str(shape)}")
    return TensorType(shape, dtype, device)


def _bernoulli_impl(key, p, *, shape, dtype, device):
    p = np.asarray(p, dtype=np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    return philox(key).random(shape) < p


def _bernoulli_samples():
    s = dict(grad=False, torch=False, note=_NOTE)
    yield Sample((arr(3, 4, low=0.0, high=1.0),), **s)
    yield Sample((arr(5, low=0.0, high=1.0, dtype=np.float64),), **s)
    yield Sample((arr(low=0.0, high=1.0),), **s)
    yield Sample((arr(2, 3),), {"p": 0.3}, **s)
    yield ErrorSample((arr(3, low=1.5, high=2.0),), {}, RuntimeError, "p_in <= 1")
    yield ErrorSample((np.ones(3, dtype=np.int64),), {}, NotImplementedError,
                      "not implemented for 'Long'")


BERNOULLI = register(OpDef("bernoulli", OpKind.RANDOM, _bernoulli_rule, _bernoulli_impl,
                           _zero_param_grads, _bernoulli_samples))


def bernoulli(input, generator, p=None, dtype=None, shape=None):
    """0/1 values drawn with probabilities ``p`` (default: ``input`` itself), in the
    shape and dtype of ``input`` unless given."""
    t = type_of(input)
    if p is None:
        p = input
    elif is_scalar(p) and not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    d = check_dtype_arg(dtype) or t.dtype
    return apply(BERNOULLI, _key(generator), p, shape=t.shape if shape is None else shape,
                 dtype=d, device=t.device)


# --- exponential -------------------------------------------------------------------------

def _exponential_rule(types, shape, dtype, device, lambd):
    _check_key(types[0])
    if dtype.category != CATEGORY_FLOAT:
        raise RuntimeError("Exponential distribution is a continuous probability distribution. "
                           f"dtype must be a floating point but you specified "
                           f"{dtype.torch_name}")
    return TensorType(shape, dtype, device)


def _exponential_impl(key, *, shape, dtype, device, lambd):
    return philox(key).standard_exponential(shape) / lambd


def _exponential_samples():
    s = dict(grad=False, torch=False, note=_NOTE)
    yield Sample((arr(3, 4),), **s)
    yield Sample((arr(5, dtype=np.float64),), {"lambd": 2.5}, **s)
    yield ErrorSample((arr(3),), {"lambd": -1.0}, RuntimeError, "expects lambda > 0.0")
    yield ErrorSample((np.ones(3, dtype=np.int64),), {}, RuntimeError,
                      "dtype must be a floating point")


EXPONENTIAL = register(OpDef("exponential", OpKind.RANDOM, _exponential_rule,
                             _exponential_impl, None, _exponential_samples,
                             public="Tensor.exponential_", differentiable=False))


def exponential(size, generator, lambd=1.0, dtype=None, device=None):
    """Exponentially distributed values with rate ``lambd``."""
    lambd = float(lambd)
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={_fmt(lambd)}")
    d = check_dtype_arg(dtype) or dtypes.default_float_dtype()
    return apply(EXPONENTIAL, _key(generator), shape=check_shape(size), dtype=d,
                 device=_device(device), lambd=lambd)


# --- multinomial -------------------------------------------------------------------------

def _multinomial_rule(types, num_samples, replacement):
    key, p = types
    _check_key(key)
    if p.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if p.dtype.category != CATEGORY_FLOAT:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{p.dtype.torch_name}")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > p.shape[-1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    return TensorType(p.shape[:-1] + (num_samples,), dtypes.int64, p.device)


def _multinomial_impl(key, p, *, num_samples, replacement):
    g = philox(key)
    rows = np.asarray(p, dtype=np.float64).reshape(-1, p.shape[-1])
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    totals = rows.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if replacement:
        cdf = np.cumsum(rows / totals, axis=1)
        u = g.random((rows.shape[0], num_samples))
        out = np.stack([np.searchsorted(c, x, side="right") for c, x in zip(cdf, u)])
        out = np.minimum(out, rows.shape[1] - 1)
    else:
        # PyTorch's method: the top num_samples of p / Exp(1) (zero-probability classes last)
        keys = rows / g.standard_exponential(rows.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    return out.reshape(p.shape[:-1] + (num_samples,))


def _multinomial_samples():
    s = dict(grad=False, torch=False, note=_NOTE)
    yield Sample((arr(5, low=0.1, high=1.0), 3), **s)
    yield Sample((arr(5, low=0.1, high=1.0), 8, True), **s)
    yield Sample((arr(2, 4, low=0.0, high=1.0, dtype=np.float64), 2), **s)
    yield ErrorSample((arr(2, low=0.1, high=1.0), 3), {}, RuntimeError, "without replacement")
    yield ErrorSample((np.ones(3, dtype=np.int64), 2), {}, RuntimeError,
                      "only supports floating-point dtypes")
    yield ErrorSample((np.array([-1.0, 2.0], dtype=np.float32), 1), {}, RuntimeError,
                      "element < 0")


MULTINOMIAL = register(OpDef("multinomial", OpKind.RANDOM, _multinomial_rule,
                             _multinomial_impl, None, _multinomial_samples,
                             differentiable=False))


def multinomial(input, num_samples, generator, replacement=False):
    """Indices drawn from the rows of ``input`` (unnormalised probabilities)."""
    if isinstance(num_samples, bool) or not hasattr(num_samples, "__index__"):
        raise TypeError(f"multinomial(): argument 'num_samples' must be int, not "
                        f"{type(num_samples).__name__}")
    return apply(MULTINOMIAL, _key(generator), input, num_samples=num_samples.__index__(),
                 replacement=bool(replacement))
