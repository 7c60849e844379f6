"""Random number generators: ``Generator``, ``manual_seed`` and the default generator.

A generator's state is a key ``[seed, counter]``. Each random op takes the
next key as an input (an int64[2] tensor) and draws from a counter-based
Philox stream keyed by it, so the numbers depend only on (seed, call
number): the same seed gives the same numbers eagerly and compiled, and a
compiled program can take the key as a graph input.
"""

from __future__ import annotations

import contextlib
import secrets

import numpy as np

from compgrad.tensor import Tensor
from ir.ops import random as _rops
from ir.ops._util import reject_out
from ir.types import Device

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "rand", "randn", "randint", "randperm", "rand_like",
           "randn_like", "randint_like", "normal", "bernoulli", "multinomial"]

_DEFAULT_SEED = 67280421310721  # PyTorch's default CPU seed
_MASK64 = (1 << 64) - 1


class Generator:
    """A source of random numbers, as ``torch.Generator``."""

    def __init__(self, device="cpu"):
        self.device = Device(device)
        self._seed = _DEFAULT_SEED
        self._counter = 0

    def manual_seed(self, seed) -> Generator:
        """Reset the generator to ``seed``; returns the generator."""
        seed = int(seed)
        if not -(1 << 63) <= seed <= _MASK64:
            raise RuntimeError(f"Overflow when unpacking long long: {seed}")
        self._seed = seed & _MASK64
        self._counter = 0
        return self

    def seed(self) -> int:
        """Reseed from a non-deterministic source; returns the new seed."""
        new = secrets.randbits(63)
        self.manual_seed(new)
        return new

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> Tensor:
        """The state as an int64 tensor ``[seed, counter]`` (restore with ``set_state``)."""
        key = np.array([self._seed, self._counter], dtype=np.uint64).view(np.int64)
        return Tensor._from_array(key.copy())

    def set_state(self, new_state: Tensor) -> Generator:
        if not isinstance(new_state, Tensor) or new_state.numel() != 2:
            raise RuntimeError("Expected a generator state: an int64 tensor of two elements "
                               "(from Generator.get_state())")
        seed, counter = (int(v) for v in new_state._data.reshape(2).astype(np.int64)
                         .view(np.uint64))
        self._seed, self._counter = seed, counter
        return self

    def next_key(self) -> Tensor:
        """The key for the next random op, advancing the generator."""
        key = self.get_state()
        key._rng_key = True   # a compiled program binds it as RNG state
        self._counter += 1
        return key

    def __repr__(self) -> str:
        return f"<compgrad.Generator object (device={self.device}, seed={self._seed})>"


default_generator = Generator()


def manual_seed(seed) -> Generator:
    """Seed the default generator and every CUDA device's (``torch.manual_seed``)."""
    from compgrad import cuda
    out = default_generator.manual_seed(seed)
    cuda.manual_seed_all(seed)
    return out


def seed() -> int:
    """Seed every device's default generator non-deterministically; returns the seed."""
    from compgrad import cuda
    value = default_generator.seed()
    cuda.manual_seed_all(value)
    return value


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    default_generator.set_state(new_state)


# --- random factories with PyTorch's signatures ------------------------------------------

def _gen(generator, device=None) -> Generator:
    """``generator``, or the default one of the device the values are made on (each CUDA
    device has its own, ``compgrad.cuda.default_generators``, as in PyTorch)."""
    if generator is None:
        if device is not None and device.type == "cuda":
            from compgrad import cuda
            return cuda.default_generators[device.index or 0]
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"expected a compgrad.Generator for 'generator', got "
                        f"{type(generator).__name__}")
    return generator


def default_generator_for(device) -> Generator:
    """The default generator of ``device`` (for library code such as dropout)."""
    return _gen(None, device)


def _dev(device):
    from compgrad.device import check_device
    return None if device is None else check_device(device)


def _finish(out: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        out.requires_grad_(True)
    return out


def _sized(fname: str, size: tuple, kwargs: dict, layout) -> tuple[int, ...]:
    from compgrad.factories import check_layout, parse_size
    check_layout(layout)
    shape = parse_size(fname, size, kwargs.pop("size", None))
    if kwargs:
        raise TypeError(f"{fname}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    return shape


def _like_input(fname: str, input) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fname}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")


def rand(*size, generator=None, out=None, dtype=None, layout=None, device=None,
         requires_grad=False, pin_memory=False, **kwargs) -> Tensor:
    """Uniform random values in ``[0, 1)`` (``rand(2, 3)`` or ``rand((2, 3))``)."""
    reject_out(out)
    shape = _sized("rand", size, kwargs, layout)
    dev = _dev(device)
    return _finish(_rops.rand(shape, _gen(generator, dev), dtype, dev), requires_grad)


def randn(*size, generator=None, out=None, dtype=None, layout=None, device=None,
          requires_grad=False, pin_memory=False, **kwargs) -> Tensor:
    """Standard normal random values."""
    reject_out(out)
    shape = _sized("randn", size, kwargs, layout)
    dev = _dev(device)
    return _finish(_rops.randn(shape, _gen(generator, dev), dtype, dev), requires_grad)


def randint(low=0, high=None, size=None, *, generator=None, out=None, dtype=None, layout=None,
            device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """Random integers in ``[low, high)``: ``randint(high, size)`` or
    ``randint(low, high, size)``."""
    reject_out(out)
    from compgrad.factories import check_layout, parse_size
    check_layout(layout)
    if size is None and high is not None and not isinstance(high, (int, Tensor)):
        low, high, size = 0, low, high  # randint(high, size)
    elif high is None:
        low, high = 0, low  # randint(high, size=...)
    if size is None:
        raise TypeError('randint() missing 1 required positional arguments: "size"')
    shape = parse_size("randint", (size,))
    dev = _dev(device)
    out_t = _rops.randint(_scalar_int(low), _scalar_int(high), shape, _gen(generator, dev),
                          dtype, dev)
    return _finish(out_t, requires_grad)


def _scalar_int(x):
    return x.item() if isinstance(x, Tensor) else x


def randperm(n, *, generator=None, out=None, dtype=None, layout=None, device=None,
             requires_grad=False, pin_memory=False) -> Tensor:
    """A random permutation of ``0 .. n-1``."""
    reject_out(out)
    from compgrad.factories import check_layout
    check_layout(layout)
    dev = _dev(device)
    return _finish(_rops.randperm(n, _gen(generator, dev), dtype, dev), requires_grad)


def rand_like(input, *, generator=None, dtype=None, layout=None, device=None,
              requires_grad=False, memory_format=None) -> Tensor:
    """Uniform ``[0, 1)`` values in the shape (and dtype, device) of ``input``."""
    _like_input("rand_like", input)
    dev = input.device if device is None else _dev(device)
    out_t = _rops.rand(input.shape, _gen(generator, dev), dtype or input.dtype, dev)
    return _finish(out_t, requires_grad)


def randn_like(input, *, generator=None, dtype=None, layout=None, device=None,
               requires_grad=False, memory_format=None) -> Tensor:
    """Standard normal values in the shape (and dtype, device) of ``input``."""
    _like_input("randn_like", input)
    dev = input.device if device is None else _dev(device)
    out_t = _rops.randn(input.shape, _gen(generator, dev), dtype or input.dtype, dev)
    return _finish(out_t, requires_grad)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None, layout=None,
                 device=None, requires_grad=False, memory_format=None) -> Tensor:
    """Random integers in ``[low, high)`` in the shape (and dtype, device) of ``input``;
    ``randint_like(input, high)`` starts at 0."""
    _like_input("randint_like", input)
    if high is None:
        low, high = 0, low
    dev = input.device if device is None else _dev(device)
    gen = _gen(generator, dev)
    out_t = _rops.randint(_scalar_int(low), _scalar_int(high), input.shape, gen,
                          dtype or input.dtype, dev)
    return _finish(out_t, requires_grad)


def normal(mean, std=1.0, size=None, *, generator=None, out=None, dtype=None, layout=None,
           device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """Normal values: ``normal(mean, std)`` with tensor/number parameters broadcast
    together, or ``normal(mean: float, std: float, size)``."""
    reject_out(out)
    from compgrad.factories import check_layout
    check_layout(layout)
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        if size is not None:
            raise TypeError("normal(): size is only accepted with a float mean and a float std")
    elif size is not None:
        from compgrad.factories import parse_size
        size = parse_size("normal", (size,))
    dev = _dev(device)
    if dev is None:   # normal's values go where its tensor arguments are
        dev = next((a.device for a in (mean, std) if isinstance(a, Tensor)), None)
    out_t = _rops.normal(mean, std, _gen(generator, dev), size, dtype, _dev(device))
    return _finish(out_t, requires_grad)


def bernoulli(input, p=None, *, generator=None, out=None) -> Tensor:
    """0/1 values drawn with probabilities ``input`` (or the number ``p``), in the shape and
    dtype of ``input``."""
    reject_out(out)
    _like_input("bernoulli", input)
    return _rops.bernoulli(input, _gen(generator, input.device), p)


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None) -> Tensor:
    """``num_samples`` indices drawn from each row of ``input`` (unnormalised probabilities),
    with or without replacement."""
    reject_out(out)
    _like_input("multinomial", input)
    return _rops.multinomial(input, num_samples, _gen(generator, input.device), replacement)


# --- in-place Tensor methods -------------------------------------------------------------

def _from_to(args: tuple, kwargs: dict, names: tuple[str, str], defaults: tuple, fname: str):
    if len(args) > 2:
        raise TypeError(f"{fname}() takes at most 2 positional arguments ({len(args)} given)")
    values = list(args) + [None] * (2 - len(args))
    for i, name in enumerate(names):
        if name in kwargs:
            if i < len(args):
                raise TypeError(f"{fname}() got multiple values for argument '{name}'")
            values[i] = kwargs.pop(name)
    if kwargs:
        raise TypeError(f"{fname}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    return tuple(defaults[i] if values[i] is None else values[i] for i in range(2))


def uniform_(self, *args, generator=None, **kwargs) -> Tensor:
    """Fill with uniform values in ``[from, to)`` (``uniform_(from=0, to=1)``)."""
    low, high = _from_to(args, kwargs, ("from", "to"), (0.0, 1.0), "uniform_")
    return self._write(_rops.rand(self.shape, _gen(generator, self.device), self.dtype, self.device,
                                  low=low, high=high))


def normal_(self, mean=0.0, std=1.0, *, generator=None) -> Tensor:
    """Fill with normal values of ``mean`` and ``std``."""
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    gen = _gen(generator, self.device)
    return self._write(_rops.normal(float(mean), float(std), gen, self.shape, self.dtype,
                                    self.device))


def _random_high(dtype) -> int:
    from ir import dtypes as _dt
    if dtype.is_floating_point:
        return 2 ** {2: 11, 4: 24, 8: 53}[dtype.itemsize] + 1
    if dtype is _dt.bool_:
        return 2
    return int(np.iinfo(dtype.np_dtype).max) + 1


def random_(self, *args, generator=None, **kwargs) -> Tensor:
    """Fill with integers: ``random_()`` over the dtype's range, ``random_(to)`` in
    ``[0, to)``, ``random_(from, to)`` in ``[from, to)``."""
    if len(args) == 1 and not kwargs:
        low, high = 0, args[0]
    else:
        low, high = _from_to(args, kwargs, ("from", "to"), (0, None), "random_")
        low = 0 if low is None else low
    if high is None:
        high = _random_high(self.dtype)
    gen = _gen(generator, self.device)
    return self._write(_rops.randint(low, high, self.shape, gen, self.dtype, self.device))


def exponential_(self, lambd=1.0, *, generator=None) -> Tensor:
    """Fill with exponentially distributed values of rate ``lambd``."""
    if not self.dtype.is_floating_point:
        raise RuntimeError("Exponential distribution is a continuous probability distribution. "
                           f"dtype must be a floating point but you specified "
                           f"{self.dtype.torch_name}")
    gen = _gen(generator, self.device)
    return self._write(_rops.exponential(self.shape, gen, lambd, self.dtype, self.device))


def bernoulli_(self, p=0.5, *, generator=None) -> Tensor:
    """Fill with 0/1 values drawn with probability ``p`` (a number or a tensor)."""
    return self._write(_rops.bernoulli(self, _gen(generator, self.device), p))


def _bernoulli_method(self, p=None, *, generator=None) -> Tensor:
    return bernoulli(self, p, generator=generator)


def _multinomial_method(self, num_samples, replacement=False, *, generator=None) -> Tensor:
    return multinomial(self, num_samples, replacement, generator=generator)


def _bind_methods() -> None:
    methods = {"uniform_": uniform_, "normal_": normal_, "random_": random_,
               "exponential_": exponential_, "bernoulli_": bernoulli_,
               "bernoulli": _bernoulli_method, "multinomial": _multinomial_method}
    for name, fn in methods.items():
        fn.__name__ = name
        fn.__qualname__ = f"Tensor.{name}"
        setattr(Tensor, name, fn)


_bind_methods()


@contextlib.contextmanager
def fork_rng(devices=None, enabled: bool = True, _caller: str = "fork_rng",
             _devices_kw: str = "devices", device_type: str = "cuda"):
    """Restore the default generator's state when the ``with`` block ends."""
    if not enabled:
        yield
        return
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
