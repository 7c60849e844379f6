"""What the user's Python read during a call: the analysis behind replay.

``compile(mode="reduce-overhead")`` replays a stable step without running its
Python (DESIGN.md, "A compiled call"). That is only sound if nothing the
user's Python read has changed, and if the user's Python did nothing a replay
would skip (print, draw a Python random number, append to an outside list).
:func:`observe` runs the function once, normally, watching every instruction of
the *user's* frames, and returns either a refusal (a reason naming the file,
line and what was seen) or the :class:`Guard` list a later replay must pass.

How it watches (see :mod:`compgrad.compile.pyreads_stack` for the shadow stack):

- ``sys.settrace`` with opcode events for user frames only; library frames
  (compgrad, ir, passes, codegen, the standard library, numpy and friends) get
  no local tracer and run at full speed. Library code is trusted to read only
  compgrad's own state, which :mod:`compgrad.state_epoch` guards;
- ``sys.setprofile`` for the return values of Python callees (the result of a
  call or of a property) and for ``c_call`` events, a second check that every C
  function a user frame calls is on the allowlist of side-effect-free ones.

What a user frame may do (the rest refuses, naming file:line and what was seen):

- read globals, closure cells, module attributes, and attributes and items of
  objects *pinned* by guards (reached from an argument, a global, a cell or a
  compgrad object): each read becomes a :class:`Guard` on the held object; reads
  of compgrad objects need none (the epoch counters cover them), nor do reads of
  objects made during the call;
- call Python functions (analysed in their own frames), compgrad's functions,
  and C functions on an allowlist of side-effect-free ones (``len``, ``math.*``,
  read-only methods of builtin containers); mutating methods and stores only on
  objects made during the call (and a tensor's items, and compgrad's own property
  setters such as ``x.grad = None``).

Refused, among others: ``print``, ``random``/``time``/``os`` calls, standard-library
and third-party Python, stores into outside objects, ``global``/``nonlocal``
writes, imports, user generators (generator expressions are fine), user
properties and ``__getattr__``, caught exceptions, advancing an outside iterator.
Whenever the analysis is in doubt it refuses: a refusal costs only speed, a
wrong replay is a silent wrong result.
"""

from __future__ import annotations

import dis
import functools
import gc
import operator
import os
import sys
import sysconfig
import types
from collections.abc import Callable

from compgrad.compile.pyreads_calls import CallPolicy
from compgrad.compile.pyreads_stack import FrameShadow, Refuse, Slot, decode
from compgrad.compile.pyreads_values import (
    _GEN_FLAGS,
    _M,
    _OWN_PACKAGES,
    _SCALARS,
    ArgRoot,
    _instance_dict,
    _lookup,
    _Safe,
    _user_class,
)

__all__ = ["Guard", "Observation", "observe"]

_SUPPORTED = ((3, 11), (3, 12))


# --- guards ---------------------------------------------------------------------------------

class Guard:
    """One Python read to re-check before each replay.

    A guard is a small boolean expression over objects it holds (a globals
    dict, a closure cell, a config object); :class:`Observation` compiles all of
    them into one function. ``check`` evaluates this guard alone.
    """

    __slots__ = ("description", "key", "_src", "_ns", "_fn")

    def __init__(self, description: str, key: tuple, src: str, ns: dict):
        self.description = description
        self.key = key
        self._src = src          # expression; {name} placeholders refer to ns entries
        self._ns = ns
        self._fn = None

    def check(self, args: tuple, kwargs: dict) -> bool:
        """True while the value this guard watches is as it was."""
        if self._fn is None:
            self._fn = _compile_guards((self,))
        return self._fn(args, kwargs)

    def __repr__(self) -> str:
        return f"Guard({self.description!r})"


def _always_false(args, kwargs) -> bool:
    return False


def _compile_guards(guards) -> Callable[[tuple, dict], bool]:
    """One function checking every guard: ``g0 and g1 and ...`` over bound constants;
    any exception (an index gone, an empty cell) counts as a failed guard."""
    if not guards:
        return _always_true
    ns = {"_M": _M, "_is": operator.is_}
    terms = []
    for i, g in enumerate(guards):
        names = {k: f"g{i}_{k}" for k in g._ns}
        for k, v in g._ns.items():
            ns[names[k]] = v
        terms.append("(" + g._src.format(**names) + ")")
    # the held objects become closure variables of the generated function: the cheapest
    # loads there are (module globals would each be a dict lookup)
    names = [k for k in ns if k != "__builtins__"]
    src = (f"def make({', '.join(names)}):\n"
           "    def check(args, kwargs):\n        try:\n            return ("
           + " and\n                ".join(terms)
           + ")\n        except Exception:\n            return False\n    return check\n")
    env: dict = {}
    exec(compile(src, "<compgrad replay guards>", "exec"), env)  # noqa: S102 - generated
    return env["make"](*(ns[k] for k in names))


def _always_true(args, kwargs) -> bool:
    return True


def _same_src(expr: str, value) -> tuple[str, dict]:
    """A guard expression: ``expr`` still evaluates to ``value`` (identity for objects,
    type and value for scalars; a float zero by identity, so -0.0 never passes for
    0.0)."""
    t = type(value)
    if value is None or t is bool:
        return f"{expr} is {{v}}", {"v": value}
    if t in (int, str, bytes) or (t in (float, complex) and value == value and value != 0):
        return f"((x := {expr}) is {{v}} or (type(x) is {{t}} and x == {{v}}))", \
            {"v": value, "t": t}
    return f"{expr} is {{v}}", {"v": value}


def _show(v) -> str:
    """A short, stable description of a value (no addresses: descriptions are
    compared between calls)."""
    if type(v) in _SCALARS:
        r = repr(v)
        return r if len(r) <= 40 else r[:37] + "..."
    if isinstance(v, types.ModuleType):
        return f"module {v.__name__}"
    if isinstance(v, type):
        return f"class {v.__qualname__}"
    if isinstance(v, (types.FunctionType, types.BuiltinFunctionType)):
        return f"function {getattr(v, '__qualname__', '?')}"
    return f"a {type(v).__qualname__}"


# --- the result -------------------------------------------------------------------------------

class Observation:
    """What :func:`observe` found: a refusal, or the guards of a replay.

    ``check(args, kwargs)`` is one generated function (bound at construction);
    it is False whenever a refusal was recorded.
    """

    def __init__(self, refusal: str | None, guards: tuple[Guard, ...] = ()):
        self.refusal = refusal
        self.guards = tuple(guards) if refusal is None else ()
        self.check = _compile_guards(self.guards) if refusal is None else _always_false

    def check(self, args: tuple, kwargs: dict) -> bool:  # replaced per instance
        """True when every guard passes (runs before each replay)."""
        raise NotImplementedError

    def describe(self) -> list[str]:
        """The refusal, or one line per guard (stable between equal calls)."""
        if self.refusal is not None:
            return [f"not replayable: {self.refusal}"]
        return [g.description for g in self.guards]

    def __repr__(self) -> str:
        if self.refusal is not None:
            return f"Observation(refusal={self.refusal!r})"
        return f"Observation({len(self.guards)} guards)"


def observe(fn, args: tuple, kwargs: dict) -> tuple[object, Observation]:
    """Call ``fn(*args, **kwargs)`` once (its normal effects happen), watching the
    Python it runs. Returns its result and an :class:`Observation`. Exceptions
    from ``fn`` propagate unchanged; the tracers are always removed."""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return fn(*args, **kwargs), Observation(
            "a Python tracer or profiler is active (a debugger or coverage); "
            "the step's Python cannot be watched")
    if sys.version_info[:2] not in _SUPPORTED:
        return fn(*args, **kwargs), Observation(
            f"replay analysis supports Python 3.11 and 3.12, not "
            f"{sys.version_info.major}.{sys.version_info.minor}")
    watcher = _Watcher(fn, args, kwargs, sys._getframe())
    watcher.install()
    try:
        result = fn(*args, **kwargs)
    finally:
        watcher.uninstall()
        watcher.release()
    return result, watcher.observation()


# --- which code is the user's -----------------------------------------------------------------

_COMPGRAD, _STDLIB, _THIRD, _USER = "compgrad", "stdlib", "third-party", "user"
_THIRD_PACKAGES = ("numpy", "scipy", "numba", "llvmlite", "networkx", "threadpoolctl", "cupy",
                   "cupyx", "cupy_backends", "fastrlock")
# standard-library modules a user frame may call into directly: context-manager and
# typing plumbing that reads nothing but its arguments
_STDLIB_CALLABLE = frozenset({"contextlib", "abc", "typing", "_collections_abc", "numbers"})


@functools.lru_cache(maxsize=1)
def _roots() -> tuple[tuple[str, str], ...]:
    """(directory prefix, kind), longest first: compgrad's packages, the installed
    third-party packages, the standard library (without site-packages)."""
    import importlib.util
    roots = []
    for kind, names in ((_COMPGRAD, _OWN_PACKAGES), (_THIRD, _THIRD_PACKAGES)):
        for name in names:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            for d in (spec.submodule_search_locations or []) if spec else []:
                roots.append((os.path.join(os.path.realpath(d), ""), kind))
    paths = sysconfig.get_paths()
    site = {os.path.join(os.path.realpath(paths[k]), "") for k in ("purelib", "platlib")}
    for s in site:
        roots.append((s, _USER))          # site-packages: user unless listed above
    roots.append((os.path.join(os.path.realpath(paths["stdlib"]), ""), _STDLIB))
    roots.sort(key=lambda r: len(r[0]), reverse=True)
    return tuple(roots)


_FILE_KIND: dict[str, str] = {}       # a cache: co_filename -> kind


def _file_kind(filename: str) -> str:
    kind = _FILE_KIND.get(filename)
    if kind is None:
        if filename.startswith("<frozen "):
            kind = _STDLIB
        elif filename.startswith("<"):
            kind = _USER                  # generated code: dataclass __init__, exec
        else:
            path = os.path.realpath(filename)
            kind = _USER
            for prefix, k in _roots():
                if path.startswith(prefix):
                    kind = k
                    break
        _FILE_KIND[filename] = kind
    return kind


def _where_code(code, line=None) -> str:
    return f"{os.path.basename(code.co_filename)}:{line or code.co_firstlineno}"


# --- the watcher --------------------------------------------------------------------------------

class _Watcher(CallPolicy):
    """The tracer and profiler of one observed call, and every policy decision:
    which reads need which guards, which calls and writes refuse."""

    def __init__(self, fn, args: tuple, kwargs: dict, me):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.me = me                           # observe's frame: the root's caller
        self.refusal: str | None = None
        self.guards: dict[tuple, Guard] = {}
        self.fresh: dict[int, object] = {}     # id -> object made during the call
        self.guarded: dict[int, object] = {}   # id -> container whose contents are guarded
        self.states: dict = {}                 # frame -> FrameShadow (user frames)
        self.shadows: list = []                # every FrameShadow made (see release)
        self.user_codes: dict = {}             # a cache: code -> is user code
        self.pending_gens: dict = {}           # code -> [(pos, kw)] of generators not started
        # garbage-collector callbacks (hypothesis registers one that times GC) run
        # whenever a collection happens to fall inside the call: not the step's Python,
        # so neither they nor what they call are analysed
        self.gc_codes = {getattr(getattr(cb, "__func__", cb), "__code__", None)
                         for cb in gc.callbacks}
        self.foreign: set = set()              # frames of such callbacks, and their callees
        self._trace = self.trace
        self._profile = self.profile

    # -- installing ------------------------------------------------------------------------

    def install(self) -> None:
        # 3.12 emits opcode events only if a frame asked for them before settrace
        # (CPython gh-103615); asking on our own, untraced frame is enough
        self.me.f_trace_opcodes = True
        sys.setprofile(self._profile)
        sys.settrace(self._trace)

    def uninstall(self) -> None:
        if sys.gettrace() == self._trace:
            sys.settrace(None)
        if sys.getprofile() == self._profile:
            sys.setprofile(None)
        self.me.f_trace_opcodes = False
        self.states.clear()

    def release(self) -> None:
        """Drop the frames and objects of the call. Traced frames reference the watcher
        (their ``f_trace``) and it references them: a cycle that only a full garbage
        collection frees, which keeps the frames' locals alive -- compgrad's trace of the
        call and through it the parameters' old arrays, which replayed steps then could
        not exchange (W1: 0.46 ms a step of copies). Only the guards outlive the call."""
        for shadow in self.shadows:
            if shadow.frame is not None:
                shadow.frame.f_trace = None   # the frame's reference to its shadow
                shadow.frame = None
        self.shadows.clear()
        self.me = None
        self.states.clear()
        self.foreign.clear()
        self.fresh.clear()
        self.guarded.clear()
        self.pending_gens.clear()
        self.args = self.kwargs = None

    def observation(self) -> Observation:
        if self.refusal is not None:
            return Observation(self.refusal)
        return Observation(None, tuple(self.guards.values()))

    def refuse(self, reason: str) -> None:
        """Record the first refusal and stop watching (the call runs on untraced)."""
        if self.refusal is None:
            self.refusal = reason
        self.uninstall()

    def where(self, frame) -> str:
        return _where_code(frame.f_code, frame.f_lineno)

    # -- events ----------------------------------------------------------------------------

    def is_user(self, code, frame=None) -> bool:
        r = self.user_codes.get(code)
        if r is None:
            kind = _file_kind(code.co_filename)
            if kind == _USER and code.co_filename.startswith("<") and frame is not None:
                # generated code (a dataclass __init__) belongs to its module
                mod = str(frame.f_globals.get("__name__", "")).split(".")[0]
                if mod in _OWN_PACKAGES:
                    kind = _COMPGRAD
            r = self.user_codes[code] = kind == _USER
        return r

    def trace(self, frame, event, arg):
        """The global trace function: called for each new Python frame."""
        if self.refusal is not None:
            return None
        if frame.f_code in self.gc_codes or frame.f_back in self.foreign:
            self.foreign.add(frame)
            return None
        try:
            parent = self.states.get(frame.f_back)
            if not self.is_user(frame.f_code, frame):
                if parent is not None:
                    self.library_called(parent, frame)
                return None
            shadow = self.states.get(frame)
            if shadow is None:
                shadow = FrameShadow(self, frame)
                self.shadows.append(shadow)
                if frame.f_code.co_flags & _GEN_FLAGS and frame.f_lasti > 0 \
                        and not _at_start(frame):
                    raise Refuse(f"resumes a generator made before the call "
                                 f"({self.where(frame)})")
                self.states[frame] = shadow
                self.frame_started(shadow, frame, parent)
            frame.f_trace_lines = False
            frame.f_trace_opcodes = True
            return shadow.tracefn
        except Refuse as r:
            self.refuse(r.args[0])
        except Exception as e:  # noqa: BLE001 - never break the user's call
            self.refuse(f"replay analysis failed: {type(e).__name__}: {e} "
                        f"({self.where(frame)})")
        return None

    def profile(self, frame, event, arg):
        """Return values of Python callees of user frames; C calls of user frames."""
        if event == "return":
            if frame in self.foreign:
                self.foreign.discard(frame)
                return
            parent = self.states.get(frame.f_back)
            shadow = self.states.get(frame)
            if parent is not None:
                parent.children.append((arg, frame.f_code,
                                        shadow.ret if shadow is not None else None))
            if shadow is not None:
                shadow.ret = None
                if not _suspended(frame):
                    del self.states[frame]
                    # the frame keeps its shadow (f_trace) and the shadow its frame: a
                    # cycle only a full collection frees, holding the frame's locals
                    # (see release)
                    shadow.frame = None
        elif event == "c_call":
            shadow = self.states.get(frame)
            if shadow is not None and self.refusal is None:
                try:
                    self.c_call_event(shadow, arg)
                except Refuse as r:
                    self.refuse(r.args[0])
                except Exception as e:  # noqa: BLE001
                    self.refuse(f"replay analysis failed: {type(e).__name__}: {e}")

    # -- frames starting ------------------------------------------------------------------

    def frame_started(self, shadow: FrameShadow, frame, parent) -> None:
        """Give a new user frame's parameters the provenance its caller knew."""
        code = frame.f_code
        if code.co_flags & _GEN_FLAGS:
            waiting = self.pending_gens.get(code)
            if waiting and len(waiting) == 1:
                # the one generator of this code made and not started yet: this one
                pos, kw = waiting.pop()
                _bind(shadow, pos, kw)
                return
            if waiting:
                waiting.pop(0)          # ambiguous: bind nothing rather than guess
            if shadow.genexpr and ".0" in frame.f_locals:
                # a generator expression's argument is the iterator its enclosing
                # frame made for it (whose iterable was checked there)
                shadow.locals[".0"] = Slot(typ=_Safe, fresh=True)
            return
        if frame.f_back is self.me:
            self.bind_root(shadow, frame)
            return
        if parent is not None:
            call = parent.call
            if call is None:
                return
            fn, pos, kw, new_slot = call
            if isinstance(fn, types.CodeType):          # a function made in the caller
                if fn is frame.f_code:
                    _bind(shadow, pos, kw)
            elif isinstance(fn, types.FunctionType) and fn.__code__ is frame.f_code:
                shadow.fn = fn
                _bind(shadow, pos, kw)
            elif isinstance(fn, type) and new_slot is not None:
                self.init_called(shadow, frame, fn, pos, kw, new_slot)
            return
        # called from library code: parameters passed through unchanged keep the pin
        # the nearest user caller's call gave them
        anc = frame.f_back
        for _ in range(64):
            if anc is None:
                return
            caller = self.states.get(anc)
            if caller is not None:
                break
            anc = anc.f_back
        else:
            return
        if caller.call is None:
            return
        known = [s for s in list(caller.call[1]) + list(caller.call[2].values())
                 if s.known and s.pin]
        code = frame.f_code
        nparams = code.co_argcount + code.co_kwonlyargcount
        loc = frame.f_locals
        for name in code.co_varnames[:nparams]:
            if name in loc:
                v = loc[name]
                for s in known:
                    if s.value is v:
                        shadow.locals[name] = Slot(v, pin=s.pin)
                        break

    def bind_root(self, shadow: FrameShadow, frame) -> None:
        fn = self.fn
        pos = []
        if isinstance(fn, types.MethodType):
            pos.append(Slot(fn.__self__, pin=True))
            fn = fn.__func__
        if not isinstance(fn, types.FunctionType) or fn.__code__ is not frame.f_code:
            return
        shadow.fn = fn
        for i, a in enumerate(self.args):
            pos.append(Slot(a, pin=ArgRoot(i, None, a)))
        kw = {k: Slot(v, pin=ArgRoot(None, k, v)) for k, v in self.kwargs.items()}
        _bind(shadow, pos, kw)

    def init_called(self, shadow, frame, cls, pos, kw, new_slot) -> None:
        """A user ``__init__`` run by a call of its class: its self is the new object."""
        init = _lookup(cls, "__init__")[1]
        if not isinstance(init, types.FunctionType) or init.__code__ is not frame.f_code:
            return
        shadow.fn = init
        names = frame.f_code.co_varnames
        if not names or names[0] not in frame.f_locals:
            return
        obj = frame.f_locals[names[0]]
        if type(obj) is not cls:
            return
        new_slot.value = obj
        new_slot.typ = cls
        if new_slot.fresh:
            self.fresh[id(obj)] = obj
        _bind(shadow, [Slot(obj, pin=new_slot.pin, fresh=new_slot.fresh)] + list(pos), kw)

    def library_called(self, parent: FrameShadow, frame) -> None:
        """A library Python frame called by a user frame (directly or through a C
        function): only compgrad's own Python and a few standard-library modules
        of plumbing are trusted to be called from user code."""
        code = frame.f_code
        kind = _file_kind(code.co_filename)
        if kind == _STDLIB:
            mod = frame.f_globals.get("__name__", "?")
            if mod not in _STDLIB_CALLABLE:
                raise Refuse(f"calls {mod}.{code.co_qualname} ({self.where(parent.frame)}); "
                             "standard-library Python is not analysed")
        elif kind == _THIRD:
            mod = frame.f_globals.get("__name__", "?")
            raise Refuse(f"calls {mod}.{code.co_qualname} ({self.where(parent.frame)}); "
                         "third-party Python code is not analysed")
        call = parent.call
        if call is not None and isinstance(call[0], type) and call[3] is not None:
            cls, new_slot = call[0], call[3]
            init = _lookup(cls, "__init__")[1]
            if isinstance(init, types.FunctionType) and init.__code__ is code:
                names = code.co_varnames
                if names and names[0] in frame.f_locals:
                    obj = frame.f_locals[names[0]]
                    if type(obj) is cls:
                        new_slot.value = obj
                        new_slot.typ = cls
                        if new_slot.fresh:
                            self.fresh[id(obj)] = obj

    # -- guards ------------------------------------------------------------------------------

    def add(self, key: tuple, description: str, src: str, ns: dict) -> None:
        """A guard: ``src`` over the objects in ``ns`` (once per ``key``)."""
        if key not in self.guards:
            self.guards[key] = Guard(description, key, src, ns)

    def guard_attr(self, obj, name: str, value, where: str) -> None:
        """``obj.name`` (an instance-dict attribute) is still ``value``."""
        src, ns = _same_src("{o}.__dict__.get({k}, _M)", value)
        ns.update(o=obj, k=name, T=type(obj))
        self.add(("attr", id(obj), name),
                 f"{type(obj).__qualname__}.{name} is {_show(value)} (read at {where})",
                 "type({o}) is {T} and " + src, ns)

    def guard_class_state(self, t: type, name: str, where: str, stop=None,
                          start=None) -> None:
        """What the user classes of ``t``'s MRO hold under ``name`` (the attribute, or
        nothing) stays as it is: through ``stop``, the class the lookup found it in,
        or the whole MRO (an instance attribute: no class may gain a descriptor that
        would take precedence); from after ``start`` for a ``super()`` lookup."""
        mro = t.__mro__
        if start is not None:
            mro = mro[mro.index(start) + 1:]
        for c in mro:
            if _user_class(c):
                value = c.__dict__.get(name, _M)
                if value is _M:
                    self.add(("cls", id(c), name), f"class {c.__qualname__} has no "
                             f"attribute {name!r}", "{k} not in {d}",
                             {"k": name, "d": c.__dict__})
                else:
                    src, ns = _same_src("{d}.get({k}, _M)", value)
                    ns.update(d=c.__dict__, k=name)
                    self.add(("cls", id(c), name), f"class attribute {c.__qualname__}."
                             f"{name} is {_show(value)} (read at {where})", src, ns)
            if c is stop:
                break

    def guard_not_in_instance(self, obj, name: str) -> None:
        if _instance_dict(obj) is not None:
            self.add(("noinst", id(obj), name), f"the {type(obj).__qualname__} object has "
                     f"no instance attribute {name!r}", "{k} not in {o}.__dict__",
                     {"k": name, "o": obj})

    def guard_global(self, g: dict, b: dict, name: str, value, where: str) -> None:
        mod = g.get("__name__", "?")
        if name in g:
            src, ns = _same_src("{g}.get({k}, _M)", value)
            ns.update(g=g, k=name)
            self.add(("global", id(g), name),
                     f"global {name} of {mod} is {_show(value)} (read at {where})", src, ns)
        else:
            self.add(("builtin", id(g), name), f"{name} is the builtin (read at {where})",
                     "{k} not in {g} and {b}.get({k}, _M) is {v}",
                     {"k": name, "g": g, "b": b, "v": value})

    def guard_cell(self, cell, name: str, value, owner: str, where: str) -> None:
        src, ns = _same_src("{c}.cell_contents", value)
        ns["c"] = cell
        self.add(("cell", id(cell)), f"closure variable {name} of {owner} is "
                 f"{_show(value)} (read at {where})", src, ns)

    def guard_module(self, mod, name: str, value, where: str) -> None:
        src, ns = _same_src("{d}.get({k}, _M)", value)
        ns.update(d=mod.__dict__, k=name)
        self.add(("global", id(mod.__dict__), name),
                 f"{mod.__name__}.{name} is {_show(value)} (read at {where})", src, ns)

    def guard_item(self, container, key, value, where: str) -> None:
        src, ns = _same_src("{c}[{k}]", value)
        ns.update(c=container, k=key)
        self.add(("item", id(container), key),
                 f"item {key!r} of a {type(container).__qualname__} is {_show(value)} "
                 f"(read at {where})", src, ns)

    def guard_slot(self, obj, member, name: str, value, where: str) -> None:
        """A ``__slots__`` attribute, read through its C member descriptor."""
        src, ns = _same_src("{m}.__get__({o})", value)
        ns.update(m=member, o=obj)
        self.add(("slot", id(obj), name), f"{type(obj).__qualname__}.{name} is "
                 f"{_show(value)} (read at {where})", src, ns)


def _bind(shadow: FrameShadow, pos: list, kw: dict) -> None:
    """Give the frame's parameters the caller's argument slots (plain positional and
    keyword parameters; ``*args``/``**kwargs`` keep no provenance)."""
    code = shadow.code
    names = code.co_varnames
    nargs = code.co_argcount
    nkw = code.co_kwonlyargcount
    loc = shadow.frame.f_locals
    # a slot whose object is unknown (an iterator made by the caller) binds too: the
    # first LOAD_FAST of the parameter reads the object and keeps the provenance
    for name, s in zip(names[:nargs], pos):
        if not s.known or loc.get(name, _M) is s.value:
            shadow.locals[name] = s
    params = set(names[:nargs + nkw])
    for name, s in kw.items():
        if name in params and (not s.known or loc.get(name, _M) is s.value):
            shadow.locals[name] = s


def _at_start(frame) -> bool:
    """A generator frame that has not run yet (its first resume)."""
    code = frame.f_code
    for ins in _first_instrs(code):
        if ins.offset >= frame.f_lasti:
            return True
        if ins.opname not in ("RETURN_GENERATOR", "POP_TOP", "RESUME", "COPY_FREE_VARS",
                              "MAKE_CELL", "NOP"):
            return False
    return False


@functools.lru_cache(maxsize=256)
def _first_instrs(code):
    return tuple(dis.get_instructions(code))[:8]


def _suspended(frame) -> bool:
    """The frame yielded (a generator that will resume) rather than returned."""
    if not frame.f_code.co_flags & _GEN_FLAGS:
        return False
    ins = decode(frame.f_code).get(frame.f_lasti)
    return ins is not None and ins.opname == "YIELD_VALUE"
