"""``compile(mode="reduce-overhead")``: replaying a stable step without its Python.

DESIGN.md ("A compiled call", opt-in replay): a call whose trace is stable skips
the user's Python. It checks guards and runs the step's one compiled program
directly, then makes the step's effects as the traced call made them.

What a replay depends on, and how each is guarded:

- the arguments: tensors by type (shape, dtype, device), ``requires_grad`` and
  being leaves; other objects by identity, Python scalars by type and value;
- the Python values the user's code read (globals, closure cells, attributes of
  plain objects): :mod:`compgrad.compile.pyreads` watched the traced calls and
  refuses what it cannot guard (``print``, ``random``, stores, ...);
- compgrad's own Python state the library read (module attributes and
  submodules, hooks, optimizer state, ``.grad``): the counters of
  :mod:`compgrad.state_epoch` must be where the last call left them;
- optimizer hyperparameters (``param_groups``, written by schedulers as plain
  dicts): compared value by value;
- the tensors the program reads: the same objects (parameters, momentum
  buffers), with the same type and ``requires_grad``; grad mode and anomaly mode.

A plan is made from a traced call (:func:`make_plan`) and installed only when
the next traced call makes an equal one, so first-step effects (an optimizer
creating its state) are never replayed. Its effects: writes into the tensors the
step updates in place (computed straight into their storage where
:mod:`codegen.inplace` allows it, else landed as the trace lands them), ``.grad`` set
to new tensors holding the program's outputs, and the returned value rebuilt.
"""

from __future__ import annotations

import sys
from operator import is_

import numpy as np

from codegen.whole import items_getter
from compgrad.autograd.anomaly import _STATE as _ANOMALY
from compgrad.autograd.grad_mode import _STATE as _GRAD_MODE
from compgrad.state_epoch import STRUCTURE
from compgrad.tensor import Tensor

__all__ = ["Recorder", "Plan", "make_plan"]

_ARG, _KWARG, _OBJ, _CONST = range(4)
_PLAIN = (int, float, bool, str, bytes, type(None), complex)
_MISSING = object()
_UNSET = object()


class Recorder:
    """Attached to a traced call (``trace.replay``): what its segments ran."""

    def __init__(self):
        self.segments: list[tuple] = []   # (program, sources, outputs, writes, outs, muts)
        self.refusal: str | None = None

    def segment(self, trace, program, external, outputs, writes, outs, muts) -> None:
        """Note one flushed segment: the program and where each of its inputs came
        from (a tensor object, or a Python scalar lifted to an input)."""
        self.segments.append((program, external, list(outputs), list(writes), outs, muts))
        if len(self.segments) > 1:
            return
        # tensors by the value they were read as (a tensor written in the call is bound
        # to its newest value; ``written`` keeps the one read)
        by_value = {v: t for t, v in trace.bound.values()}
        by_value.update((v, t) for t, v in trace.written.values())
        sources = []
        for v in external:
            t = by_value.get(v)
            if t is not None:
                if t.__dict__.get("_rng_key"):
                    self.refusal = ("the step draws random numbers (its generator state is "
                                    "Python-side)")
                sources.append(t)
                continue
            value = trace.env.get(v, _MISSING)
            if type(value) in _PLAIN:
                sources.append((_CONST, value))
            else:
                self.refusal = f"an input of the program is not a tensor or a scalar: %{v.name}"
                sources.append(None)
        self.sources = sources
        # each bound tensor's version when first read (a replay bumps it as the call did)
        self.versions = {id(t): trace.versions[v][1] for v, t in by_value.items()
                         if v in trace.versions and v.node is None}


class Plan:
    """How to replay one stable step (see the module docstring)."""

    def __init__(self, program, sources, args_spec, kwargs_spec, bound, writes, grads, result,
                 optimizers, observation):
        self.program = program
        self.sources = sources          # per program input: (kind, payload)
        self.args_spec = args_spec      # per positional argument: a guard tuple
        self.kwargs_spec = kwargs_spec  # name -> guard tuple
        self.bound = bound              # (tensor, type, requires_grad) of captured tensors
        self.writes = writes            # (root, mutation index, version delta)
        self.grads = grads              # ((kind, payload) of a tensor, output index, copy?)
        self.result = result            # the returned structure
        self.optimizers = optimizers    # (group dict, hyperparameters, params) snapshots
        self.observation = observation  # guards on the user's Python reads
        self.structure = STRUCTURE[0]
        # every tensor whose .grad the library may have read (captured tensors, the
        # optimizers' parameters) with its .grad as the last call left it
        watched = {id(t): t for t, _, _ in bound}
        for _, _, params in optimizers:
            watched.update((id(p), p) for p in params)
        self.watched = tuple(watched.values())
        self.watched_grads = [t._grad for t in self.watched]
        slot = {id(t): i for i, t in enumerate(self.watched)}
        # per grad: where its tensor comes from, its output index, whether it is copied,
        # and the watch slot a replay refreshes (captured tensors; an argument is new
        # each call)
        self.grad_plan = [(kind, payload, index, copy,
                           slot.get(id(payload)) if kind == _OBJ else None)
                          for (kind, payload), index, copy in grads]
        # the program outputs a replay reads (grads, the result); the others (the traced
        # call's exports of written values, mostly) are dropped before the writes land, so
        # a written value the program also returns can still be handed over, not copied
        used = {index for _, index, _ in grads} | _output_indices(result)
        self.unused_outputs = [i for i in range(len(program.graph.outputs)) if i not in used]
        # the written tensors whose update the program may compute into their own storage
        # (codegen.inplace): those whose new value the replay hands out nowhere else
        g = program.graph
        position = {v: i for i, v in enumerate(g.inputs)}
        handed_out = {g.outputs[i] for i in used}
        self.inplace = frozenset(position[g.mutations[i].target] for _, i, _ in writes
                                 if g.mutations[i].value not in handed_out)
        self.modes = _modes()
        # the program's inputs gathered per call: a list with the constants in place, the
        # captured tensors' and arguments' arrays put in at their positions
        self.template = [payload if kind == _CONST else None for kind, payload in sources]
        self.from_objects = [(i, t) for i, (kind, t) in enumerate(sources) if kind == _OBJ]
        self.from_args = [(i, p) for i, (kind, p) in enumerate(sources) if kind == _ARG]
        self.from_kwargs = [(i, k) for i, (kind, k) in enumerate(sources) if kind == _KWARG]
        self.one = _UNSET   # the program's one function (codegen.whole), asked at the first run
        # the argument guards by kind: arguments checked by identity (their positions'
        # getter and the objects), by value, and tensors
        by_identity = [i for i, s in enumerate(args_spec) if s[0] == "is"]
        self.args_identity = (items_getter(by_identity),
                              tuple(args_spec[i][1] for i in by_identity))
        self.args_values = [(i, s[1], s[2]) for i, s in enumerate(args_spec) if s[0] == "value"]
        self.args_tensors = [(i, *s[1:]) for i, s in enumerate(args_spec) if s[0] == "tensor"]
        # per optimizer group: the getter of its hyperparameters, their values, whether
        # all are plain values (then compared at once: types, then values), and params
        self.hyper_guards = [(group, items_getter([k for k, _ in hyper]), hyper,
                              tuple(v for _, v in hyper),
                              tuple(type(v) for _, v in hyper),
                              all(type(v) in _PLAIN for _, v in hyper), params)
                             for group, hyper, params in optimizers]

    # --- stability -------------------------------------------------------------------------

    def signature(self) -> tuple:
        """What two traced calls must share for the step to count as stable."""
        def ident(x):
            return ("obj", id(x)) if not isinstance(x, tuple) else x
        return (id(self.program), tuple(ident(s) for s in self.sources),
                tuple(_spec_key(s) for s in self.args_spec),
                tuple((k, _spec_key(s)) for k, s in self.kwargs_spec.items()),
                tuple((id(t), typ, rg) for t, typ, rg in self.bound),
                tuple((id(r), i, d) for r, i, d in self.writes),
                tuple((_source_key(s), i, c) for s, i, c in self.grads),
                _result_key(self.result),
                tuple((id(g), tuple((k, _value_key(v)) for k, v in hp), tuple(map(id, ps)))
                      for g, hp, ps in self.optimizers),
                tuple(self.observation.describe()))

    def describe(self) -> list[str]:
        """The guards, readable (for ``explain()``)."""
        out = [f"argument {i}: {_spec_text(s)}" for i, s in enumerate(self.args_spec)]
        out += [f"argument {k!r}: {_spec_text(s)}" for k, s in self.kwargs_spec.items()]
        out.append(f"{len(self.bound)} captured tensors keep their type and requires_grad")
        out += [f"optimizer hyperparameters {dict(hyper)}" for _, hyper, _ in self.optimizers]
        out.append("no module, optimizer, hook or .grad change since the last call")
        return out + list(self.observation.describe())

    # --- guards ----------------------------------------------------------------------------

    def guard_failure(self, args: tuple, kwargs: dict) -> str | None:
        """None when this call may be replayed, else what changed. (Runs per call: the
        checks are spelled out, from tables made once.)"""
        if STRUCTURE[0] != self.structure:
            return "module, optimizer or hook state changed since the last call"
        for t, g in zip(self.watched, self.watched_grads):
            if t._grad is not g:
                return "a .grad changed since the last call"
        if _modes() != self.modes:
            return "grad mode or anomaly mode changed"
        why = self._arguments_failure(args, kwargs)
        if why is not None:
            return why
        for t, typ, rg in self.bound:
            # (_type_cache: the type without the property's call, when it is computed)
            if t._lazy is not None or (t._type_cache is not typ and t._type is not typ) \
                    or t._requires_grad is not rg or t.grad_fn is not None:
                return "a captured tensor changed type or requires_grad"
        for group, items, hyper, values, types, plain, params in self.hyper_guards:
            try:
                current = items(group)
            except KeyError:
                current = None
            if current is None or not plain or tuple(map(type, current)) != types \
                    or current != values:
                why = _hyper_failure(group, hyper)
                if why is not None:
                    return why
            current = group.get("params")
            if len(current) != len(params) or not all(map(is_, current, params)):
                return "an optimizer's parameters changed"
        if not self.observation.check(args, kwargs):
            return "a Python value the step read changed"
        return None

    def _arguments_failure(self, args: tuple, kwargs: dict) -> str | None:
        """What changed in the arguments, or None."""
        if len(args) != len(self.args_spec) or kwargs.keys() != self.kwargs_spec.keys():
            return "the arguments changed"
        items, objects = self.args_identity
        if not all(map(is_, items(args), objects)):
            return "an argument changed"
        for i, typ, value in self.args_values:
            x = args[i]
            if type(x) is not typ or x != value:
                return "an argument changed"
        for i, cls, typ, rg in self.args_tensors:
            x = args[i]
            if type(x) is not cls or x._lazy is not None \
                    or (x._type_cache is not typ and x._type is not typ) \
                    or x._requires_grad is not rg or x.grad_fn is not None:
                return "an argument changed"
        for k, s in self.kwargs_spec.items():
            if not _matches(kwargs[k], s):
                return f"argument {k!r} changed"
        return None

    # --- running ---------------------------------------------------------------------------

    def run(self, args: tuple, kwargs: dict):
        """Run the step's program and make its effects; returns the step's result."""
        inputs = self.template.copy()
        for i, t in self.from_objects:
            inputs[i] = t._data   # (the guards saw every tensor materialised: no _lazy)
        for i, p in self.from_args:
            inputs[i] = args[p]._data
        for i, k in self.from_kwargs:
            inputs[i] = kwargs[k]._data
        one = self.one
        if one is _UNSET:
            compiled = self.program.compiled
            # a small program runs as one Numba function (codegen.whole), else step by step
            one = self.one = compiled.as_one_function() if compiled is not None else None
        # (a replay is its call's last program: updates may be written in place)
        outs, muts = one(inputs, self.inplace) if one is not None \
            else self.program.run(inputs, self.inplace)
        del inputs
        landing = False
        for root, index, delta in self.writes:
            root._version[0] += delta
            if muts[index] is not root._data:   # (else written in place: codegen.inplace)
                landing = True
        if landing:
            self._land_writes(outs, muts)
        del muts
        watched_grads = self.watched_grads
        made = []
        for kind, payload, index, copy, slot in self.grad_plan:
            t = payload if kind == _OBJ else args[payload] if kind == _ARG else kwargs[payload]
            arr = outs[index]
            g = Tensor._from_array(arr.copy() if copy else arr, t._device)
            t._grad = g
            made.append(g)
            if slot is not None:
                watched_grads[slot] = g
        result = _build(self.result, outs, args, kwargs, made)
        self.structure = STRUCTURE[0]
        return result

    def _land_writes(self, outs: list, muts: list) -> None:
        """Land the new values the program did not write in place (:func:`_land`)."""
        for i in self.unused_outputs:
            outs[i] = None   # (a reference that would keep a value from being handed over)
        compiled = self.program.compiled
        pool = compiled.pool if compiled is not None else None
        for root, index, _ in self.writes:
            if muts[index] is not root._data:
                _land(root, muts, index, pool)


def _land(root: Tensor, muts: list, index: int, pool) -> None:
    """Write the program's new value into ``root``: by taking the result buffer when
    nothing else holds either array (the old storage goes to the pool), else by
    copying into the storage, which views and aliases of it then see. (``exchange``
    itself checks that the old storage fits the pool: shape, dtype, layout.)"""
    data = root._data
    new = muts[index]
    muts[index] = None
    # references: the local, getrefcount's argument, and for ``new`` the pool's list
    if pool is not None and type(new) is np.ndarray and new.base is None \
            and data.flags.writeable \
            and sys.getrefcount(data) == 3 and sys.getrefcount(new) == 3 \
            and pool.exchange(new, data):
        root._data = new
        return
    np.copyto(data, new, casting="unsafe")


def _modes() -> tuple:
    return (_GRAD_MODE.enabled, _GRAD_MODE.inference, _ANOMALY.enabled)


def _hyper_failure(group: dict, hyper) -> str | None:
    """Which of an optimizer group's hyperparameters (``(key, value)`` pairs) changed: a
    plain value must be equal and of the same type, another the same object."""
    for k, v in hyper:
        x = group.get(k, _MISSING)
        if x is not v and not (type(x) is type(v) and type(x) in _PLAIN and x == v):
            return f"optimizer hyperparameter {k!r} changed"
    return None


# --- arguments ---------------------------------------------------------------------------

def _arg_spec(x) -> tuple | None:
    """How an argument is guarded; None when it cannot be."""
    if isinstance(x, Tensor):
        if x._lazy is not None or x.grad_fn is not None:
            return None
        return ("tensor", type(x), x._type, x._requires_grad)
    if type(x) in _PLAIN:
        return ("value", type(x), x)
    return ("is", x)


def _matches(x, spec: tuple) -> bool:
    kind = spec[0]
    if kind == "is":
        return x is spec[1]
    if kind == "value":
        return type(x) is spec[1] and x == spec[2]
    return type(x) is spec[1] and x._lazy is None and x._type is spec[2] \
        and x._requires_grad is spec[3] and x.grad_fn is None


def _source_key(source: tuple) -> tuple:
    kind, payload = source
    return (kind, id(payload)) if kind == _OBJ else source


def _spec_text(spec: tuple) -> str:
    if spec[0] == "is":
        return f"is the same {type(spec[1]).__name__} object"
    if spec[0] == "value":
        return f"== {spec[2]!r}"
    return f"a tensor of type {spec[2]}, requires_grad={spec[3]}"


def _spec_key(spec: tuple) -> tuple:
    return ("is", id(spec[1])) if spec[0] == "is" else spec


def _value_key(v):
    return v if type(v) in _PLAIN else ("obj", id(v))


# --- results ----------------------------------------------------------------------------

def _result_spec(x, outputs: dict, sources: dict, grads: dict):
    """The returned structure: a ``.grad`` the step set by its place in the plan's
    grads, other tensors made by the program by output index, tensors from outside
    by where they come from, plain values as they are. None when not replayable."""
    if isinstance(x, Tensor):
        if id(x) in grads:
            return ("grad", grads[id(x)])
        entry = outputs.get(id(x))
        if entry is not None:
            index, copy = entry
            if x._base is not None:
                return None
            return ("out", index, copy, x._requires_grad, x.grad_fn,
                    x.__dict__.get("_output_nr", 0), x._version[0])
        source = sources.get(id(x))
        return None if source is None else ("same", source)
    if type(x) in _PLAIN:
        return ("value", x)
    if type(x) in (tuple, list):
        items = [_result_spec(i, outputs, sources, grads) for i in x]
        return None if any(i is None for i in items) else (type(x).__name__, items)
    if type(x) is dict:
        items = {k: _result_spec(v, outputs, sources, grads) for k, v in x.items()}
        return None if any(i is None for i in items.values()) else ("dict", items)
    return None


def _result_key(spec):
    kind = spec[0]
    if kind == "out":
        return spec[:4] + (type(spec[4]).__name__,)
    if kind == "same":
        return ("same", _source_key(spec[1]))
    if kind == "grad":
        return spec
    if kind == "value":
        return spec
    if kind == "dict":
        return ("dict", tuple((k, _result_key(v)) for k, v in spec[1].items()))
    return (kind, tuple(_result_key(i) for i in spec[1]))


def _output_indices(spec) -> set[int]:
    """The program outputs a result spec (see :func:`_build`) reads."""
    kind = spec[0]
    if kind == "out":
        return {spec[1]}
    if kind in ("grad", "same", "value"):
        return set()
    if kind == "dict":
        return set().union(*(_output_indices(v) for v in spec[1].values()))
    return set().union(*(_output_indices(v) for v in spec[1]))   # a tuple or list


def _build(spec, outs: list, args, kwargs, grads: list):
    kind = spec[0]
    if kind == "grad":
        return grads[spec[1]]
    if kind == "out":
        _, index, copy, requires_grad, grad_fn, output_nr, version = spec
        arr = outs[index]
        t = Tensor._from_array(arr.copy() if copy else arr)
        t._version[0] = version
        if requires_grad:
            t._requires_grad = True
            t.grad_fn = grad_fn   # the traced call's node: its backward raises as eagerly
            if output_nr:
                t._output_nr = output_nr
        return t
    if kind == "same":
        kind, payload = spec[1]
        return payload if kind == _OBJ else args[payload] if kind == _ARG else kwargs[payload]
    if kind == "value":
        return spec[1]
    if kind == "dict":
        return {k: _build(v, outs, args, kwargs, grads) for k, v in spec[1].items()}
    items = [_build(i, outs, args, kwargs, grads) for i in spec[1]]
    return tuple(items) if kind == "tuple" else items


# --- making a plan ------------------------------------------------------------------------

def make_plan(trace, recorder: Recorder, args: tuple, kwargs: dict, result, observation,
              structure_before: int, escaped: list) -> Plan | str:
    """The plan of a traced call, or why it cannot be replayed. ``escaped``: the
    results that left the call with a ``grad_fn`` (``trace.escaped`` before
    :func:`~compgrad.compile.escape.attach_backward` took them)."""
    if observation.refusal is not None:
        return observation.refusal
    if recorder.refusal is not None:
        return recorder.refusal
    if trace.breaks or len(recorder.segments) != 1:
        return (f"the step ran as {len(recorder.segments)} programs (graph breaks: "
                f"{', '.join(trace.breaks) or 'none'})")
    if STRUCTURE[0] != structure_before:
        return ("the step changed Python state of a module, an optimizer or a hook (an "
                "optimizer making its state on its first step does)")
    program, _external, outputs, writes, outs, muts = recorder.segments[0]
    arg_ids = {id(a): i for i, a in enumerate(args) if isinstance(a, Tensor)}
    kwarg_ids = {id(a): k for k, a in kwargs.items() if isinstance(a, Tensor)}
    args_spec = [_arg_spec(a) for a in args]
    kwargs_spec = {k: _arg_spec(a) for k, a in kwargs.items()}
    if any(s is None for s in args_spec) or any(s is None for s in kwargs_spec.values()):
        return "an argument is a tensor with autograd history or still being recorded"
    sources, bound = [], []
    for s in recorder.sources:
        if isinstance(s, tuple):
            sources.append(s)
        elif id(s) in arg_ids:
            sources.append((_ARG, arg_ids[id(s)]))
        elif id(s) in kwarg_ids:
            sources.append((_KWARG, kwarg_ids[id(s)]))
        else:
            sources.append((_OBJ, s))
            bound.append((s, s._type, s._requires_grad))
    # writes land in tensors read by identity (parameters, buffers, momentum)
    source_ids = {id(s[1]): s[1] for s in sources if s[0] == _OBJ}
    plan_writes = []
    for index, (root, _target, _value) in enumerate(writes):
        start = recorder.versions.get(id(root))
        if id(root) not in source_ids or start is None:
            return "the step writes in place into a tensor it does not read by identity"
        plan_writes.append((root, index, root._version[0] - start))
    # tensors the program made: by output index (and whether the trace copied it)
    index_of = {v: i for i, v in enumerate(outputs)}
    made = {}
    for t, v in trace.bound.values():
        i = index_of.get(v)
        if i is not None and v.node is not None and isinstance(t, Tensor):
            data = object.__getattribute__(t, "_data") if t._lazy is None else None
            made[id(t)] = (i, data is not outs[i])
    for t in escaped:
        v = t.__dict__.get("_lazy_value")
        i = index_of.get(v)
        if i is not None:
            made[id(t)] = (i, object.__getattribute__(t, "_data") is not outs[i])
    # where each tensor of this call comes from at a replay: captured ones by identity,
    # arguments by position (a replay's arguments are new tensors)
    where = {id(t): (_OBJ, t) for t in source_ids.values()}
    where.update((i, (_ARG, p)) for i, p in arg_ids.items())
    where.update((i, (_KWARG, k)) for i, k in kwarg_ids.items())
    grads = []
    grad_ids = {}   # id of a .grad made by the call -> its place in grads
    done = set()
    for t in list(source_ids.values()) + list(trace.leaves.values()) + [
            a for a in list(args) + list(kwargs.values()) if isinstance(a, Tensor)]:
        g = t._grad
        if g is None or id(g) not in made or id(t) in done:
            continue
        done.add(id(t))
        if id(t) not in where:
            return "the step sets the .grad of a tensor it made"
        if type(g) is not Tensor or g._base is not None or g.grad_fn is not None:
            return "a .grad the step made is not a plain tensor"
        index, copy = made[id(g)]
        grads.append((where[id(t)], index, copy))
        grad_ids[id(g)] = len(grads) - 1
    spec = _result_spec(result, made, where, grad_ids)
    if spec is None:
        return "the step returns something other than tensors and plain values it made"
    optimizers = []
    for opt in trace.optimizers:
        for group in opt.param_groups:
            hyper = tuple((k, v) for k, v in group.items() if k != "params")
            optimizers.append((group, hyper, tuple(group["params"])))
    return Plan(program, sources, args_spec, kwargs_spec, bound, plan_writes, grads, spec,
                optimizers, observation)

