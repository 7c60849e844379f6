"""Random number generators: ``Generator``, ``manual_seed`` and the default generator.

A generator's state is a key ``[seed, counter]``. Each random op takes the
next key as an input (an int64[2] tensor) and draws from a counter-based
Philox stream keyed by it, so the numbers depend only on (seed, call
number): the same seed gives the same numbers eagerly and compiled, and a
compiled program can take the key as a graph input.
"""

from __future__ import annotations

import secrets

import numpy as np

from compgrad.tensor import Tensor
from ir.types import Device

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state"]

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
        self._counter += 1
        return key

    def __repr__(self) -> str:
        return f"<compgrad.Generator object (device={self.device}, seed={self._seed})>"


default_generator = Generator()


def manual_seed(seed) -> Generator:
    """Seed the default generator (``torch.manual_seed``)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    default_generator.set_state(new_state)
