"""Captured names read what a compiled function reaches afresh on every call: the
function's globals, closure cells and arguments are looked up each time (only where
to look is worked out once), so a module rebound between calls is named."""

from __future__ import annotations

import compgrad.nn as nn
from compgrad.compile.naming import NameCache, captured_names
from ir.graph import Role

net = None   # rebound by the test below


def _uses_global(x):
    return net(x)


def _names(fn, cache, args=()):
    return {name for name, role in captured_names(fn, args, {}, cache).values()
            if role is Role.PARAMETER}


def test_a_rebound_global_module_is_named_on_the_next_call():
    global net
    cache = NameCache()
    net = nn.Linear(3, 2)
    first = _names(_uses_global, cache)
    assert first == {"weight", "bias"}
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    assert _names(_uses_global, cache) == {"m.0.weight", "m.0.bias", "m.1.weight",
                                           "m.1.bias"}
    net = None
    assert _names(_uses_global, cache) == set()


def test_a_rebound_closure_cell_and_new_arguments_are_named():
    cache = NameCache()
    model = nn.Linear(3, 2)

    def step(x):
        return model(x)

    assert _names(step, cache) == {"weight", "bias"}
    model = nn.Sequential(nn.Linear(3, 2))   # noqa: F841 - read through step's cell
    assert _names(step, cache) == {"m.0.weight", "m.0.bias"}
    other = nn.Linear(2, 2)
    # the argument comes first: its parameters get the plain names
    names = captured_names(step, (other,), {}, cache)
    assert names[id(other.weight)] == ("weight", Role.PARAMETER)
    # the same cache asked about another function looks at that one
    assert _names(_uses_global, cache) == set()
