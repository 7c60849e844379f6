"""Counters of changes to compgrad's Python-level state, for compiled replay.

``compile(mode="reduce-overhead")`` replays a stable step without running its
Python (DESIGN.md, "A compiled call"). The library code a step runs (Module
calls, optimizer steps, the autograd engine) reads Python state of compgrad's
own objects: module attributes and submodules, hooks, optimizer groups and
state, ``requires_grad``. Rather than guard each read, every change to that
state bumps the counter here, and a replay runs only while the counter is where its
last call left it: nothing it could have read has changed since.

``STRUCTURE[0]`` counts changes to module attributes and submodules, hooks,
optimizer ``state``, LR schedulers and ``Tensor.data``. A replay checks the rest
itself: ``param_groups`` values (plain dicts, as in PyTorch), and each captured
tensor's ``requires_grad`` and ``.grad`` (a step makes new tensors and leaves,
which must not stop a replay). The counter is a one-element list so that hot
paths bump it with a plain ``STRUCTURE[0] += 1`` and no call.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["STRUCTURE", "changed", "WatchedDict", "WatchedStateDict"]

STRUCTURE = [0]


def changed() -> None:
    """Note a change to Python state compiled code may have read."""
    STRUCTURE[0] += 1


class WatchedDict(dict):
    """A dict (a parameter's optimizer state) whose changes bump
    :data:`STRUCTURE`. It is a ``dict`` in every other respect."""

    __slots__ = ()

    def __setitem__(self, key, value):
        STRUCTURE[0] += 1
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        STRUCTURE[0] += 1
        dict.__delitem__(self, key)

    def __ior__(self, other):
        STRUCTURE[0] += 1
        return dict.__ior__(self, other)

    def update(self, *args, **kwargs):
        STRUCTURE[0] += 1
        dict.update(self, *args, **kwargs)

    def pop(self, *args):
        STRUCTURE[0] += 1
        return dict.pop(self, *args)

    def popitem(self):
        STRUCTURE[0] += 1
        return dict.popitem(self)

    def setdefault(self, key, default=None):
        STRUCTURE[0] += 1
        return dict.setdefault(self, key, default)

    def clear(self):
        STRUCTURE[0] += 1
        dict.clear(self)

    def __reduce__(self):
        return dict, (dict(self),)   # pickles and deep-copies as a plain dict


class WatchedStateDict(defaultdict):
    """An optimizer's ``state``: ``defaultdict(dict)`` whose per-parameter dicts
    are :class:`WatchedDict` and whose own changes bump :data:`STRUCTURE`."""

    def __init__(self, *args):
        super().__init__(WatchedDict)
        if args:
            self.update(*args)

    def __missing__(self, key):
        STRUCTURE[0] += 1
        return defaultdict.__missing__(self, key)

    def __setitem__(self, key, value):
        STRUCTURE[0] += 1
        if type(value) is dict:
            value = WatchedDict(value)
        defaultdict.__setitem__(self, key, value)

    def __delitem__(self, key):
        STRUCTURE[0] += 1
        defaultdict.__delitem__(self, key)

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def pop(self, *args):
        STRUCTURE[0] += 1
        return defaultdict.pop(self, *args)

    def clear(self):
        STRUCTURE[0] += 1
        defaultdict.clear(self)

    def __reduce__(self):
        return defaultdict, (dict, ), None, None, iter(self.items())

