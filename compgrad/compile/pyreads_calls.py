"""The policy for operators, iteration and calls of user frames, for
:mod:`compgrad.compile.pyreads`.

A call from a user frame is allowed when its callee is analysed (a user Python
function: it runs in its own watched frame), trusted (compgrad's own Python), or
a C function known to be side-effect free (``len``, ``math.sqrt``, read-only
methods of builtin containers); a C method that mutates is allowed only on an
object made during the call. Arguments handed to C or library code may be read
there unguarded, so the contents of the containers among them are guarded (or
were made here). Results are known when the callee was Python (its return
event), or computed again in the shadow when the builtin runs no Python code.
"""

from __future__ import annotations

import builtins
import types

from compgrad.compile.pyreads_stack import (
    NO_CHILD,
    UNKNOWN,
    FrameShadow,
    Refuse,
    Slot,
    _settle_child,
    child_result,
)
from compgrad.compile.pyreads_values import (
    _C_FUNCTION_TYPES,
    _CMP,
    _CMP_DUNDERS,
    _CONSTRUCTORS,
    _FRESH_RESULTS,
    _GEN_FLAGS,
    _IMMUTABLE,
    _IMMUTABLE_METHODS,
    _ITERATORS,
    _M,
    _MUTABLE_CONTAINERS,
    _MUTATING_METHODS,
    _NB_DUNDERS,
    _NB_OPS,
    _NEW_CONTAINERS,
    _PURE_FUNCTIONS,
    _READ_METHODS,
    _SCALARS,
    _UNARY,
    _VIEWS,
    OrderedDict,
    ValuePolicy,
    _lib_type,
    _lookup,
    _plain_class,
    _plain_data,
    _plain_isinstance,
    _qualname,
    _Safe,
    _simple,
    _snapshot,
    _user_class,
)


class ShadowIter:
    """The shadow of an iterator made in this call: the items it will yield when
    the container is known (``seq``), from generator yields (``gen``), or nothing
    known (``opaque``). Item slots keep the container's pin."""

    __slots__ = ("kind", "seq", "index", "pin", "inner", "start")

    def __init__(self, kind: str, seq=None, pin=None, inner=None, start: int = 0):
        self.kind = kind
        self.seq = seq
        self.index = 0
        self.pin = pin
        self.inner = inner
        self.start = start

class CallPolicy(ValuePolicy):
    """Operators, iteration and calls of user frames (a mixin of the watcher)."""

    pending_gens: dict

    # -- operators ---------------------------------------------------------------------------

    def binary(self, shadow: FrameShadow, arg: int, a: Slot, b: Slot) -> Slot:
        inplace = arg >= len(_NB_OPS)
        index = arg - len(_NB_OPS) if inplace else arg
        sym = _NB_DUNDERS[index]
        if inplace:
            self.mutation_target(shadow, a, f"applies {sym}= to", f"__i{sym}__")
        self.operand(shadow, a, f"computes {sym} with")
        self.operand(shadow, b, f"computes {sym} with")
        if a.known and b.known and _simple(a.value) and _simple(b.value):
            try:
                return Slot(_NB_OPS[index](a.value, b.value), pin=True)
            except Exception:  # noqa: BLE001 - the real instruction raises too
                return Slot()
        # no Python dunder returns a result: C code over checked operands made it
        slot = Slot(typ=_Safe)
        if a.typ in (list, tuple) and a.typ is b.typ:
            slot = Slot(typ=a.typ, fresh=True)      # a new list (or += on one made here)
        names = ((a, f"__{sym}__"), (b, f"__r{sym}__")) + (
            ((a, f"__i{sym}__"),) if inplace else ())
        shadow.defer(_settle_child, (slot, _dunder_codes(names)))
        return slot

    def compare(self, shadow: FrameShadow, op: str, a: Slot, b: Slot) -> Slot:
        self.operand(shadow, a, "compares")
        self.operand(shadow, b, "compares")
        mine, reflected = _CMP_DUNDERS[op][0], _CMP_DUNDERS[op][-1]
        if a.known and b.known:
            x, y = _compared(a.value, mine), _compared(b.value, reflected)
            if x is not _M and y is not _M:
                try:
                    return Slot(_CMP[op](x, y), pin=True)
                except Exception:  # noqa: BLE001 - the real instruction raises too
                    return Slot()
        slot = Slot(typ=_Safe)
        shadow.defer(_settle_child, (slot, _dunder_codes(((a, mine), (b, reflected)))))
        return slot

    def contains(self, shadow: FrameShadow, item: Slot, container: Slot, negate: bool) -> Slot:
        self.operand(shadow, item, "tests membership of")
        self.operand(shadow, container, "tests membership in")
        if item.known and container.known and _simple(item.value) \
                and _plain_data(container.value):
            try:
                return Slot((item.value in container.value) != negate, pin=True)
            except Exception:  # noqa: BLE001
                return Slot()
        return Slot(typ=bool)

    def unary(self, shadow: FrameShadow, opname: str, a: Slot) -> Slot:
        if opname == "UNARY_NOT":
            self.truth(shadow, a)
            if a.known and _simple(a.value):
                return Slot(not a.value, pin=True)
            return Slot(typ=bool)
        fn, dunder = _UNARY[opname]
        self.operand(shadow, a, f"applies {dunder} to")
        if a.known and _simple(a.value):
            try:
                return Slot(fn(a.value), pin=True)
            except Exception:  # noqa: BLE001
                return Slot()
        slot = Slot(typ=_Safe)
        shadow.defer(_settle_child, (slot, _dunder_codes(((a, dunder),))))
        return slot

    def format_value(self, shadow: FrameShadow, value: Slot, conv: int, spec) -> Slot:
        self.operand(shadow, value, "formats")
        if spec is not None:
            self.operand(shadow, spec, "formats")
        if value.known and type(value.value) in (str, int, float, bool, type(None)) \
                and (spec is None or (spec.known and type(spec.value) is str)):
            fmt = {0: str, 1: str, 2: repr, 3: ascii}[conv](value.value) if conv else \
                value.value
            try:
                return Slot(format(fmt, spec.value if spec is not None else ""), pin=True)
            except Exception:  # noqa: BLE001
                return Slot()
        return Slot(typ=str)

    def subscript(self, shadow: FrameShadow, container: Slot, key: Slot) -> Slot:
        where = shadow.where()
        if not container.known:
            raise Refuse(f"reads an item of a value the analysis does not know ({where})")
        self.operand(shadow, key, "indexes with")
        c = container.value
        t = type(c)
        if _lib_type(t) or (_user_class(t) and _plain_class(t)):
            getitem = _lookup(t, "__getitem__")[1]
            if type(getitem) is types.FunctionType:
                slot = Slot()                 # a Python __getitem__: its return value
                shadow.defer(_settle_child, (slot, getitem.__code__))
                return slot
            if not _lib_type(t):
                self.operand(shadow, container, "indexes")
        elif t in _IMMUTABLE or t in _MUTABLE_CONTAINERS:
            if t in _MUTABLE_CONTAINERS and not container.fresh and not self.is_fresh(c):
                if not container.pin:
                    raise Refuse(f"reads an item of a {t.__qualname__} that was not reached "
                                 f"from an argument, a global or a closure variable ({where})")
                self.emit_root(container)
        else:
            self.operand(shadow, container, "indexes")
        if not key.known or not (_simple(key.value) or type(key.value) is slice) \
                or not _pure_getitem(c):
            return Slot(typ=_Safe) if container.fresh or container.pin else Slot()
        k = key.value
        try:
            value = c[k]
        except Exception:  # noqa: BLE001 - the real instruction raises too
            return Slot()
        if type(k) is slice:
            if t in _MUTABLE_CONTAINERS and not self.is_fresh(c):
                self.guard_contents(c, where)
            if t in (list, tuple, str, bytes):
                return Slot(typ=t, fresh=True)
            return Slot()
        if t in _MUTABLE_CONTAINERS and not self.is_fresh(c) and not container.fresh \
                and id(c) not in self.guarded:
            self.guard_item(c, k, value, where)
        pin = True if (container.pin or _lib_type(t)) else None
        return self.known(value, pin)

    def unpack(self, shadow: FrameShadow, seq: Slot, n: int) -> list[Slot]:
        if not seq.known:
            if isinstance(seq.extra, list) and len(seq.extra) == n:
                return list(seq.extra)
            if seq.fresh or seq.typ is _Safe:
                return [Slot(typ=_Safe) for _ in range(n)]
            raise Refuse(f"unpacks a value the analysis does not know ({shadow.where()})")
        v = seq.value
        t = type(v)
        if isinstance(seq.extra, list) and len(seq.extra) == n and t is tuple:
            return list(seq.extra)
        self.read_contents(shadow, seq, "unpacks")
        if t in (tuple, list) and len(v) == n:
            pin = True if seq.pin else None
            return [self.known(x, pin) for x in v]
        if _lib_type(t) and isinstance(v, tuple) and len(v) == n:
            return [self.known(x, True) for x in v]
        return [Slot(typ=_Safe) for _ in range(n)]

    # -- iteration ---------------------------------------------------------------------------

    def get_iter(self, shadow: FrameShadow, it: Slot) -> Slot:
        where = shadow.where()
        if not it.known:
            if isinstance(it.extra, ShadowIter):
                return it
            if it.fresh:
                return Slot(fresh=True, extra=ShadowIter("opaque"))
            raise Refuse(f"iterates over a value the analysis does not know ({where})")
        v = it.value
        t = type(v)
        if t in _ITERATORS:
            if not (it.fresh or self.is_fresh(v)):
                raise Refuse(f"iterates over an iterator made before the call ({where}); "
                             "advancing it changes outside state")
            return it if isinstance(it.extra, ShadowIter) else \
                Slot(v, fresh=True, extra=ShadowIter("gen" if t is types.GeneratorType
                                                     else "opaque"))
        self.read_contents(shadow, it, "iterates over")
        seq = _snapshot(v)
        if seq is not None:
            pin = True if (it.pin or _lib_type(t)) else None
            return Slot(typ=_Safe, fresh=True, extra=ShadowIter("seq", seq, pin))
        if _lib_type(t) or (_user_class(t) and _plain_class(t)):
            slot = Slot(fresh=True, extra=ShadowIter("opaque"))
            it_fn = _lookup(t, "__iter__")[1]
            if type(it_fn) is types.FunctionType:
                shadow.defer(_settle_child, (slot, it_fn.__code__))
            return slot
        raise Refuse(f"iterates over a {t.__qualname__} ({where})")

    def advance(self, shadow: FrameShadow, it: Slot) -> None:
        if not (it.fresh or (it.known and self.is_fresh(it.value))):
            raise Refuse(f"advances an iterator made before the call ({shadow.where()})")

    def next_item(self, shadow: FrameShadow, it: Slot) -> Slot:
        si = it.extra
        if not isinstance(si, ShadowIter):
            return self.child_item(shadow)
        return self.iter_next(shadow, si)

    def child_item(self, shadow: FrameShadow, accept=None) -> Slot:
        """The item a FOR_ITER got from a Python ``__next__`` or a generator's yield."""
        value, ret = child_result(shadow, accept)
        if value is NO_CHILD:
            return Slot(typ=_Safe)
        slot = Slot(value)
        if ret is not None and (ret.value is UNKNOWN or ret.value is value):
            slot.pin, slot.fresh = ret.pin, ret.fresh
        self.note_value(slot)
        return slot

    def iter_next(self, shadow: FrameShadow, si: ShadowIter) -> Slot:
        kind = si.kind
        if kind == "seq":
            i = si.index
            si.index += 1
            if i < len(si.seq):
                return self.known(si.seq[i], si.pin)
            return Slot()
        if kind == "gen":
            return self.child_item(shadow)
        if kind == "enumerate":
            inner = self.iter_next(shadow, si.inner)
            i = si.start + si.index
            si.index += 1
            if inner.known:
                return Slot((i, inner.value), fresh=True, extra=[Slot(i), inner])
            return Slot(typ=tuple, fresh=True, extra=[Slot(i), inner])
        if kind == "zip":
            parts = [self.iter_next(shadow, s) for s in si.inner]
            if all(p.known for p in parts):
                return Slot(tuple(p.value for p in parts), fresh=True, extra=parts)
            return Slot(typ=tuple, fresh=True, extra=parts)
        return Slot(typ=_Safe)

    def shadow_iter(self, shadow: FrameShadow, slot: Slot) -> ShadowIter:
        """The shadow iterator over ``slot`` (for enumerate/zip/iter arguments)."""
        if isinstance(slot.extra, ShadowIter):
            return slot.extra
        if slot.known:
            seq = _snapshot(slot.value)
            if seq is not None:
                return ShadowIter("seq", seq, True if (slot.pin or _lib_type(
                    type(slot.value))) else None)
            if type(slot.value) is types.GeneratorType:
                return ShadowIter("gen")
        return ShadowIter("opaque")

    def enter_context(self, shadow: FrameShadow, ctx: Slot):
        t = type(ctx.value) if ctx.known else ctx.typ
        if t is None or t is _Safe:
            raise Refuse(f"enters a context manager the analysis does not know "
                         f"({shadow.where()})")
        enter = _lookup(t, "__enter__")[1]
        exit_ = _lookup(t, "__exit__")[1]
        if not (type(enter) is types.FunctionType and type(exit_) is types.FunctionType):
            raise Refuse(f"enters a {t.__qualname__} context manager ({shadow.where()}); "
                         "only Python context managers are analysed")
        mod = getattr(t, "__module__", "")
        if not (_lib_type(t) or _user_class(t) or mod == "contextlib"):
            raise Refuse(f"enters a {t.__qualname__} context manager ({shadow.where()})")
        exit_slot = Slot(types.MethodType(exit_, ctx.value), pin=True) if ctx.known \
            else Slot(typ=types.MethodType, extra=exit_)
        enter_slot = Slot()
        shadow.defer(_settle_child, (enter_slot, enter.__code__))
        return exit_slot, enter_slot

    # -- calls -------------------------------------------------------------------------------

    def call(self, shadow: FrameShadow, func: Slot, pos: list, kw: dict) -> Slot:
        where = shadow.where()
        shadow.call = None
        if not func.known:
            if func.typ is types.FunctionType and func.extra is not None:
                return self.py_call(shadow, None, func.extra, pos, kw)
            if func.typ is types.MethodType and type(func.extra) is types.FunctionType:
                return self.py_call(shadow, func.extra, func.extra.__code__, pos, kw)
            raise Refuse(f"calls a value the analysis does not know ({where})")
        f = func.value
        t = type(f)
        if t is types.FunctionType:
            return self.py_call(shadow, f, f.__code__, pos, kw)
        if t is types.MethodType:
            inner = f.__func__
            recv = func.extra if isinstance(func.extra, Slot) and func.extra.value is \
                f.__self__ else Slot(f.__self__, pin=func.pin)
            if type(inner) is types.FunctionType:
                return self.py_call(shadow, inner, inner.__code__, [recv] + pos, kw)
            return self.call(shadow, Slot(inner, pin=True), [recv] + pos, kw)
        if t in _C_FUNCTION_TYPES:
            recv = None
            if t is type(list.append) or t is type(int.__add__):
                if not pos:
                    raise Refuse(f"calls {_qualname(f)} without its object ({where})")
                recv, pos = pos[0], pos[1:]
            elif t is types.BuiltinFunctionType and not isinstance(
                    f.__self__, (types.ModuleType, type(None))):
                recv = func.extra if isinstance(func.extra, Slot) else \
                    Slot(f.__self__, pin=func.pin)
            elif t is type((1).__add__):
                recv = func.extra if isinstance(func.extra, Slot) else Slot(f.__self__)
            return self.c_call(shadow, f, recv, pos, kw)
        if isinstance(f, type):
            return self.class_call(shadow, f, pos, kw)
        if _lib_type(t) or _user_class(t):
            cls, method = _lookup(t, "__call__")
            if type(method) is types.FunctionType:
                if _lib_type(t):
                    self.library_args(shadow, pos, kw, f"calls a {t.__qualname__} with")
                shadow.call = (method, [func] + pos, kw, None)
                slot = Slot()
                shadow.defer(_settle_child, (slot, method.__code__))
                return slot
        raise Refuse(f"calls {_qualname(f)} ({where}), a {t.__module__}.{t.__qualname__} "
                     "object; only Python functions and known-pure builtins are analysed")

    def call_ex(self, shadow: FrameShadow, func: Slot, args: Slot, kwargs) -> Slot:
        """``f(*args, **kwargs)``: the packed arguments were checked as they were built."""
        self.read_contents(shadow, args, "unpacks")
        if kwargs is not None:
            self.read_contents(shadow, kwargs, "unpacks")
        if func.known and type(func.value) in _C_FUNCTION_TYPES \
                and func.value not in _PURE_FUNCTIONS:
            raise Refuse(f"calls {_qualname(func.value)} with *args ({shadow.where()})")
        pos = list(args.extra) if isinstance(args.extra, list) else []
        if func.known and type(func.value) in _C_FUNCTION_TYPES:
            shadow.call = None
            return Slot(typ=_Safe)
        if func.known and isinstance(func.value, type) and func.value in _CONSTRUCTORS:
            raise Refuse(f"calls {func.value.__qualname__} with *args ({shadow.where()})")
        slot = self.call(shadow, func, pos, {})
        shadow.call = None                # the positional mapping is not known
        return slot

    def library_args(self, shadow: FrameShadow, pos, kw, what: str) -> None:
        """Arguments handed to compgrad's Python: it may read them, unguarded."""
        for s in list(pos) + list(kw.values()):
            self.operand(shadow, s, what)

    def py_call(self, shadow: FrameShadow, fn, code, pos: list, kw: dict) -> Slot:
        if not self.is_user(code):
            self.library_args(shadow, pos, kw, f"passes to {code.co_qualname}")
        shadow.call = (fn if fn is not None else code, pos, kw, None)
        if code.co_flags & _GEN_FLAGS:
            if code.co_flags & 0x380:
                raise Refuse(f"calls the coroutine {code.co_qualname} ({shadow.where()})")
            # the generator's frame starts at its first next(): bind its arguments then
            self.pending_gens.setdefault(code, []).append((pos, kw))
            return Slot(typ=types.GeneratorType, fresh=True, extra=ShadowIter("gen"))
        slot = Slot()
        shadow.defer(_settle_child, (slot, code))
        return slot

    def c_call(self, shadow: FrameShadow, f, recv, pos: list, kw: dict) -> Slot:
        """A call of a C function (``recv``: the object of a method): allowed when it
        is known to be side-effect free, or mutates only an object made here."""
        where = shadow.where()
        name = _qualname(f)
        evaluate = True            # its result may be computed again in the shadow
        shadow.c_ok = f
        if recv is not None:
            rt = type(recv.value) if recv.known else recv.typ
            base = next((c for c in (rt.__mro__ if isinstance(rt, type) else ())
                         if c in _READ_METHODS), None)
            mname = f.__name__
            if rt in _IMMUTABLE_METHODS or (isinstance(rt, type) and issubclass(
                    rt, tuple(_IMMUTABLE_METHODS)) and _lib_type(rt)):
                pass
            elif base is not None and mname in _MUTATING_METHODS[base]:
                self.mutation_target(shadow, recv, f"calls {base.__qualname__}.{mname} on")
                evaluate = False
            elif base is not None and mname in _READ_METHODS[base]:
                self.read_contents(shadow, recv, f"calls {base.__qualname__}.{mname} on")
            elif recv.known and recv.value in (object, tuple, int, float, str, dict, list) \
                    and mname == "__new__":
                evaluate = False
            else:
                raise Refuse(f"calls {name}() ({where}), a C function that is not known to "
                             "be side-effect free")
        elif f is builtins.next:
            if not pos:
                raise Refuse(f"calls next() without an iterator ({where})")
            self.advance(shadow, pos[0])
            for s in pos[1:]:
                self.operand(shadow, s, "passes to next")
            si = pos[0].extra
            return self.iter_next(shadow, si) if isinstance(si, ShadowIter) else \
                Slot(typ=_Safe)
        elif f is builtins.iter:
            if len(pos) != 1 or kw:
                raise Refuse(f"calls iter() with a sentinel ({where})")
            self.read_contents(shadow, pos[0], "iterates over")
            if pos[0].known and type(pos[0].value) in _ITERATORS:
                self.advance(shadow, pos[0])
            return Slot(typ=_Safe, fresh=True, extra=self.shadow_iter(shadow, pos[0]))
        elif f not in _PURE_FUNCTIONS:
            raise Refuse(f"calls {name}() ({where}), a C function that is not known to be "
                         "side-effect free")
        for s in list(pos) + list(kw.values()):
            self.operand(shadow, s, f"passes to {name}")
            if s.known and type(s.value) in _C_FUNCTION_TYPES \
                    and s.value not in _PURE_FUNCTIONS:
                raise Refuse(f"passes {_qualname(s.value)} to {name} ({where})")
        if not evaluate:
            return Slot(typ=_Safe)
        return self.pure_result(f, recv, pos, kw)

    def pure_result(self, f, recv, pos, kw) -> Slot:
        """The result of a side-effect-free builtin, computed again in the shadow when
        that runs no Python code: plain data in (scalars and builtin containers of
        them), so a scalar out is the value the real call got."""
        slots = list(pos) + list(kw.values()) + ([recv] if recv is not None else [])
        if recv is not None and recv.known and isinstance(recv.value, dict) and not pos \
                and f.__name__ in ("keys", "values", "items"):
            # a live view of the dict (whose contents were checked as the call's
            # receiver): iterating it runs no Python code
            view = getattr(dict, f.__name__)(recv.value)
            return Slot(view, pin=recv.pin, fresh=True)
        if f in (builtins.isinstance, builtins.issubclass):
            # only the classes' MROs are read (metaclass type: no __instancecheck__)
            plain = all(s.known for s in pos) and not kw and \
                _plain_isinstance([s.value if f is builtins.isinstance else object()
                                   for s in pos[:1]] + [s.value for s in pos[1:]]) \
                and (f is builtins.isinstance or isinstance(pos[0].value, type)
                     and type(pos[0].value) is type)
        else:
            plain = all(s.known and _plain_data(s.value) for s in slots)
        if plain:
            args = [s.value for s in pos]
            if recv is not None and type(f) in (type(list.append), type(int.__add__)):
                args.insert(0, recv.value)          # an unbound method descriptor
            try:
                out = f(*args, **{k: s.value for k, s in kw.items()})
            except Exception:  # noqa: BLE001 - the real call raises too
                return Slot()
            if type(out) in _SCALARS or _simple(out):
                return Slot(out, pin=True)
            if recv is not None and f.__name__ == "get" and any(
                    out is x for x in recv.value.values()):
                # an item of a container whose contents are guarded (or made here)
                return self.known(out, True if recv.pin or recv.fresh else None)
            if type(out) in _MUTABLE_CONTAINERS:
                return Slot(typ=type(out), fresh=True)
            if type(out) in _VIEWS:
                # a live view of the container (whose contents are checked): it reads
                # the same items as the real one
                return Slot(out, pin=recv.pin if recv is not None else None, fresh=True)
        if recv is not None and f.__name__ in _FRESH_RESULTS:
            return Slot(typ=type(recv.value) if recv.known else recv.typ, fresh=True)
        if f is builtins.sorted:
            return Slot(typ=list, fresh=True)
        return Slot(typ=_Safe)

    def class_call(self, shadow: FrameShadow, cls: type, pos: list, kw: dict) -> Slot:
        where = shadow.where()
        if cls in _CONSTRUCTORS:
            return self.builtin_construct(shadow, cls, pos, kw)
        meta = type(cls)
        if meta is not type and not _lib_type(meta) and meta.__module__ != "abc":
            raise Refuse(f"calls the class {cls.__qualname__}, whose metaclass is "
                         f"{meta.__qualname__} ({where})")
        # an instance of a class whose __new__ is object's is new: writes into it (its
        # __init__'s) change nothing outside the call
        new = _lookup(cls, "__new__")[1]
        fresh = new is object.__new__ or any(new is c.__new__ for c in _NEW_CONTAINERS)
        if _lib_type(cls):
            if not _user_class(cls):
                self.library_args(shadow, pos, kw, f"passes to {cls.__qualname__}")
            slot = Slot(typ=cls, pin=True, fresh=fresh)
            shadow.call = (cls, pos, kw, slot)
            return slot
        if _user_class(cls) and _plain_class(cls):
            slot = Slot(typ=cls, fresh=fresh)
            shadow.call = (cls, pos, kw, slot)
            return slot
        raise Refuse(f"calls the class {cls.__module__}.{cls.__qualname__} ({where}); only "
                     "Python classes and known-pure builtins are analysed")

    def builtin_construct(self, shadow: FrameShadow, cls: type, pos: list, kw: dict) -> Slot:
        where = shadow.where()
        if cls is super:
            if pos:
                if len(pos) == 2 and all(s.known for s in pos):
                    return Slot(super(pos[0].value, pos[1].value), pin=True)
                raise Refuse(f"calls super() with unknown arguments ({where})")
            frame = shadow.frame
            loc = frame.f_locals
            names = frame.f_code.co_varnames
            if "__class__" not in loc or not names or names[0] not in loc:
                raise Refuse(f"calls super() outside a method ({where})")
            return Slot(super(loc["__class__"], loc[names[0]]), pin=True)
        if cls is type:
            if len(pos) == 1 and pos[0].known:
                t = type(pos[0].value)
                return Slot(t, pin=True if pos[0].pin or _lib_type(t) or not _user_class(t)
                            else None)
            raise Refuse(f"calls type() to make a class ({where})")
        for s in list(pos) + list(kw.values()):
            self.operand(shadow, s, f"passes to {cls.__qualname__}")
        if cls in (map, filter):
            f = pos[0] if pos else None
            if f is None or not f.known or (type(f.value) in _C_FUNCTION_TYPES
                                            and f.value not in _PURE_FUNCTIONS):
                raise Refuse(f"calls {cls.__qualname__} with a function the analysis does "
                             f"not know to be pure ({where})")
            return Slot(typ=cls, fresh=True, extra=ShadowIter("opaque"))
        if cls is enumerate and pos:
            start = pos[1].value if len(pos) > 1 and pos[1].known else \
                kw["start"].value if "start" in kw and kw["start"].known else 0
            return Slot(typ=cls, fresh=True, extra=ShadowIter(
                "enumerate", inner=self.shadow_iter(shadow, pos[0]), start=start))
        if cls is zip:
            return Slot(typ=cls, fresh=True, extra=ShadowIter(
                "zip", inner=[self.shadow_iter(shadow, s) for s in pos]))
        if cls is reversed and pos and pos[0].known:
            seq = _snapshot(pos[0].value)
            if seq is not None:
                return Slot(typ=cls, fresh=True, extra=ShadowIter(
                    "seq", tuple(reversed(seq)), True if pos[0].pin else None))
        for s in pos:
            if s.known and type(s.value) in _ITERATORS:
                self.advance(shadow, s)
        if cls in _NEW_CONTAINERS or cls in (enumerate, zip, reversed, object):
            return Slot(typ=cls, fresh=True)
        if all(s.known and _simple(s.value) for s in pos) and not kw:
            try:
                return Slot(cls(*(s.value for s in pos)), pin=True)
            except Exception:  # noqa: BLE001
                return Slot()
        return Slot(typ=cls if cls in _IMMUTABLE else _Safe, fresh=cls is tuple)

    def c_call_event(self, shadow: FrameShadow, f) -> None:
        """The profiler's view of a C call from a user frame: it must be the one the
        shadow approved at its CALL instruction, or a pure one."""
        g = shadow.c_ok
        if g is not None:
            if g is f or (getattr(g, "__name__", None) == getattr(f, "__name__", "")
                          and type(g) in (type(list.append), type(int.__add__),
                                          types.BuiltinFunctionType)):
                return
        if f in _PURE_FUNCTIONS:
            return
        self_ = getattr(f, "__self__", None)
        if isinstance(self_, type) and f.__name__ == "__new__":
            return
        if self_ is not None and not isinstance(self_, types.ModuleType) \
                and type(self_) in _IMMUTABLE_METHODS:
            return
        raise Refuse(f"calls {_qualname(f)}() ({self.where(shadow.frame)}), a C function "
                     "that is not known to be side-effect free")


def _compared(v, dunder: str):
    """``v`` as a comparison sees it when that runs no Python code: plain data, or
    a compgrad tuple (``Size``) compared as a tuple; _M otherwise."""
    if _plain_data(v):
        return v
    t = type(v)
    if _lib_type(t) and isinstance(v, tuple) and type(_lookup(t, dunder)[1]) is not \
            types.FunctionType and type(_lookup(t, "__iter__")[1]) is not types.FunctionType:
        items = tuple(v)
        if _simple(items):
            return items
    return _M


def _dunder_codes(pairs) -> frozenset:
    """The code objects of the Python dunders an operator may call: (operand slot,
    dunder name) pairs; the result is the return value of one of them."""
    codes = set()
    for slot, name in pairs:
        t = type(slot.value) if slot.known else slot.typ
        if isinstance(t, type):
            fn = _lookup(t, name)[1]
            if type(fn) is types.FunctionType:
                codes.add(fn.__code__)
    return frozenset(codes)


def _pure_getitem(c) -> bool:
    """``c[key]`` (a scalar key) runs no Python code: a builtin sequence, or a dict
    whose keys are all scalars (no user ``__eq__`` on a hash collision)."""
    t = type(c)
    if t in (list, tuple, str, bytes, range) or (_lib_type(t) and isinstance(c, tuple)):
        return True
    if (t in (dict, OrderedDict) or _lib_type(t) and isinstance(c, dict)
            and _lookup(t, "__getitem__")[0] is dict and _lookup(t, "__missing__")[0] is None) \
            and len(c) <= 10_000:
        return all(type(k) in _SCALARS for k in c)
    return False

