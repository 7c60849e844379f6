"""Kinds of values, and the policy for reading them, for :mod:`compgrad.compile.pyreads`.

A value the user's Python touches is one of: a scalar or immutable builtin (no
guard needed), a compgrad object (its state is compgrad's: the epoch counters of
:mod:`compgrad.state_epoch` cover it), a module or class, an object made during
the call (``fresh``: nothing outside can have changed it), or any other object,
which must be *pinned* -- reached from an argument, a guarded global or closure
cell, or a compgrad object -- so that its reads become guards on the held
object. :class:`ValuePolicy` holds the decisions about loads, attribute reads,
writes and contents; :mod:`compgrad.compile.pyreads` makes the guards.
"""

from __future__ import annotations

import builtins
import gc
import math
import operator
import types
from collections import OrderedDict

from compgrad.compile.pyreads_stack import UNKNOWN, FrameShadow, Refuse, Slot, _settle_child

_M = object()          # "missing" in lookups and guard expressions
_OWN_PACKAGES = ("compgrad", "ir", "passes", "codegen")

_SCALARS = (int, float, bool, str, bytes, complex, type(None))


# --- kinds of values --------------------------------------------------------------------------

_IMMUTABLE = frozenset({int, float, bool, str, bytes, complex, type(None), tuple, frozenset,
                        range, slice, type(Ellipsis), type(NotImplemented)})
_MUTABLE_CONTAINERS = frozenset({list, dict, set, OrderedDict})
_ITERATORS = frozenset({type(iter([])), type(iter(())), type(iter(range(0))), type(iter("")),
                        type(iter({})), type(iter({}.values())), type(iter({}.items())),
                        type(iter(set())), enumerate, zip, reversed, map, filter,
                        types.GeneratorType, type(iter(b""))})
_VIEWS = frozenset({type({}.keys()), type({}.values()), type({}.items())})
_CALLABLE_TYPES = frozenset({types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                             type(list.append), type(int.__add__), type((1).__add__),
                             type(dict.__dict__["fromkeys"])})
_C_FUNCTION_TYPES = frozenset({types.BuiltinFunctionType, type(list.append),
                               type(int.__add__), type((1).__add__),
                               type(dict.__dict__["fromkeys"])})
_PLAIN_C_TYPES = frozenset({types.SimpleNamespace, object})
_CONTAINER_BASES = (list, dict, set, bytearray)
_HEAPTYPE = 1 << 9
_IMMUTABLETYPE = 1 << 8
_OBJECT_CLASS = object.__dict__["__class__"]
_TUPLEGETTER = type(__import__("collections").namedtuple("_T", "a").a)


class _Safe:
    """``Slot.typ`` of a value whose object is not known but whose kind is safe to
    operate on: the result of a side-effect-free builtin over checked arguments."""


_LIB_TYPES: dict[type, bool] = {}     # a cache: type -> defined in compgrad's packages


def _lib_type(t: type) -> bool:
    r = _LIB_TYPES.get(t)
    if r is None:
        r = any(str(getattr(c, "__module__", "")).split(".")[0] in _OWN_PACKAGES
                for c in t.__mro__[:-1])
        _LIB_TYPES[t] = r
    return r


def _user_class(t: type) -> bool:
    """A class defined by the user (Python code outside compgrad), not compgrad's:
    a user subclass of ``nn.Module`` is one (its instances are compgrad objects)."""
    # C extension types made from a spec are heap types too, but immutable ones
    return t.__flags__ & (_HEAPTYPE | _IMMUTABLETYPE) == _HEAPTYPE and \
        str(getattr(t, "__module__", "")).split(".")[0] not in _OWN_PACKAGES


def _plain_class(t: type) -> bool:
    """Instances whose attribute access is the plain object protocol: Python
    classes over ``object`` or builtin containers, with the default metaclass."""
    if type(t) is not type and not _lib_type(type(t)) and type(t).__module__ != "abc":
        return False
    for c in t.__mro__:
        if not _user_class(c) and c not in _PLAIN_C_TYPES \
                and c not in _MUTABLE_CONTAINERS and c not in _IMMUTABLE:
            return False
    return True


def _lookup(t: type, name: str):
    """(owning class, attribute) of ``name`` in ``t``'s MRO dicts, without running
    descriptors; (None, _M) when no class has it."""
    for c in t.__mro__:
        d = c.__dict__
        if name in d:
            return c, d[name]
    return None, _M


def _is_data_descriptor(attr) -> bool:
    t = type(attr)
    return _lookup(t, "__set__")[0] is not None or _lookup(t, "__delete__")[0] is not None


# --- the allowlist of C functions ---------------------------------------------------------------

_PURE_BUILTINS = frozenset(getattr(builtins, n) for n in (
    "len", "isinstance", "issubclass", "abs", "min", "max", "sum", "round", "divmod", "pow",
    "all", "any", "sorted", "callable", "id", "hash", "repr", "format", "ascii", "chr",
    "ord", "bin", "hex", "oct"))
# operator's functions less those that write (setitem, iadd, ...) or call their argument
_OPERATOR_EXCLUDED = frozenset(
    {"setitem", "delitem", "__setitem__", "__delitem__", "call", "__call__"}
    | {n for n in vars(operator) if n.startswith("i") and (n[1:] in vars(operator)
                                                           or n[1:] + "_" in vars(operator))}
    | {n for n in vars(operator) if n.startswith("__i") and "__" + n[3:] in vars(operator)})
_PURE_FUNCTIONS = frozenset(
    set(_PURE_BUILTINS)
    | {v for v in vars(math).values() if isinstance(v, types.BuiltinFunctionType)}
    | {v for n, v in vars(operator).items() if isinstance(v, types.BuiltinFunctionType)
       and n not in _OPERATOR_EXCLUDED})
_IMMUTABLE_METHODS = frozenset({str, bytes, int, float, complex, bool, tuple, frozenset,
                                range, slice})
_READ_METHODS = {
    list: frozenset({"index", "count", "copy", "__getitem__", "__len__", "__contains__",
                     "__iter__", "__reversed__"}),
    dict: frozenset({"get", "keys", "values", "items", "copy", "__getitem__", "__len__",
                     "__contains__", "__iter__", "fromkeys"}),
    set: frozenset({"copy", "union", "intersection", "difference", "symmetric_difference",
                    "issubset", "issuperset", "isdisjoint", "__contains__", "__len__"}),
}
_READ_METHODS[OrderedDict] = _READ_METHODS[dict]
_MUTATING_METHODS = {
    list: frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort",
                     "reverse", "__setitem__", "__delitem__", "__iadd__", "__imul__"}),
    dict: frozenset({"update", "pop", "popitem", "setdefault", "clear", "__setitem__",
                     "__delitem__"}),
    set: frozenset({"add", "discard", "remove", "pop", "clear", "update",
                    "intersection_update", "difference_update",
                    "symmetric_difference_update"}),
}
_MUTATING_METHODS[OrderedDict] = _MUTATING_METHODS[dict] | {"move_to_end"}
_FRESH_RESULTS = frozenset({"copy", "union", "intersection", "difference",
                            "symmetric_difference"})
# builtin classes a user frame may call: pure constructors over checked arguments
_CONSTRUCTORS = frozenset({int, float, complex, bool, str, bytes, tuple, list, dict, set,
                           frozenset, range, slice, enumerate, zip, reversed, map, filter,
                           object, type, super, OrderedDict})
_NEW_CONTAINERS = frozenset({list, dict, set, OrderedDict})

_NB_OPS = (operator.add, operator.and_, operator.floordiv, operator.lshift, operator.matmul,
           operator.mul, operator.mod, operator.or_, operator.pow, operator.rshift,
           operator.sub, operator.truediv, operator.xor)
_NB_DUNDERS = ("add", "and", "floordiv", "lshift", "matmul", "mul", "mod", "or", "pow",
               "rshift", "sub", "truediv", "xor")
_CMP = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
        ">": operator.gt, ">=": operator.ge}
_CMP_DUNDERS = {"<": ("__lt__", "__gt__"), "<=": ("__le__", "__ge__"), "==": ("__eq__",),
                "!=": ("__ne__",), ">": ("__gt__", "__lt__"), ">=": ("__ge__", "__le__")}
_UNARY = {"UNARY_NEGATIVE": (operator.neg, "__neg__"), "UNARY_POSITIVE": (operator.pos, "__pos__"),
          "UNARY_INVERT": (operator.invert, "__invert__")}
_GEN_FLAGS = 0x20 | 0x80 | 0x100 | 0x200   # generator, coroutine, iterable coroutine, async gen


def _simple(v, depth: int = 0) -> bool:
    """A value a builtin can compute with, in the shadow, without running Python
    code: scalars and tuples of scalars."""
    t = type(v)
    if t in _SCALARS or t is range or t is slice:
        return True
    if t is tuple and depth < 3:
        return all(_simple(x, depth + 1) for x in v)
    return False


def _plain_data(v, depth: int = 0) -> bool:
    """Scalars, and builtin containers of plain data: builtins compute over them
    without running any Python code."""
    t = type(v)
    if t in _SCALARS or t is range or t is slice:
        return True
    if t in (tuple, list, set, frozenset) and depth < 3 and len(v) <= 10_000:
        return all(_plain_data(x, depth + 1) for x in v)
    if t in (dict, OrderedDict) and depth < 3 and len(v) <= 10_000:
        return all(type(k) in _SCALARS and _plain_data(x, depth + 1) for k, x in v.items())
    return False


def _qualname(f) -> str:
    """``print``, ``time.time``, ``random.Random.random``, ``list.append``."""
    self = getattr(f, "__self__", None)
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", repr(f))
    if isinstance(self, types.ModuleType):
        mod = self.__name__
        return name if mod == "builtins" else f"{mod}.{name}"
    if self is not None and not isinstance(self, type):
        mod = type(self).__module__
        return name if mod == "builtins" else f"{mod}.{name}"
    mod = getattr(f, "__module__", None)
    if self is None and isinstance(mod, str) and mod != "builtins":
        return f"{mod}.{name}"
    return name


class ArgRoot:
    """A root argument of the observed function: pinned once its identity is guarded."""

    __slots__ = ("index", "name", "value")

    def __init__(self, index, name, value):
        self.index = index
        self.name = name
        self.value = value

    def __bool__(self) -> bool:
        return True


class ValuePolicy:
    """Loads, attribute reads, writes and contents reads of user frames (a mixin of
    the watcher, which provides ``add`` and the ``guard_*`` makers, ``fresh`` and
    ``guarded``)."""

    fresh: dict
    guarded: dict

    def add(self, key: tuple, description: str, src: str, ns: dict) -> None:
        raise NotImplementedError

    # -- guards ------------------------------------------------------------------------------

    def emit_root(self, slot: Slot) -> None:
        root = slot.pin
        if isinstance(root, ArgRoot):
            t = type(root.value)
            if t in _SCALARS or _lib_type(t):
                # the replay's own argument guards compare scalars by value, and the
                # epoch covers compgrad objects
                slot.pin = True
                return
            if root.index is not None:
                self.add(("arg", root.index), f"argument {root.index} is the same "
                         f"{type(root.value).__qualname__} object",
                         f"args[{root.index}] is {{v}}", {"v": root.value})
            else:
                self.add(("kwarg", root.name), f"argument {root.name!r} is the same "
                         f"{type(root.value).__qualname__} object",
                         "kwargs.get({k}, _M) is {v}", {"k": root.name, "v": root.value})
            slot.pin = True

    def guard_contents(self, container, where: str, depth: int = 0) -> None:
        """The container holds the same items (by identity), in the same order, and so
        do the mutable containers inside it."""
        key = id(container)
        if key in self.guarded:
            return
        if depth > 4:
            raise Refuse(f"reads a nested container too deep to guard ({where})")
        t = type(container)
        if len(container) > 10_000:
            raise Refuse(f"reads a {t.__qualname__} of {len(container)} items, too large to "
                         f"guard ({where})")
        self.guarded[key] = container
        if t is list:
            items = tuple(container)
            self.add(("contents", key), f"a list of {len(items)} items read at {where} is "
                     "unchanged", "type({c}) is list and len({c}) == {n} and "
                     "all(map(_is, {c}, {s}))", {"c": container, "n": len(items), "s": items})
        elif t in (dict, OrderedDict):
            ks, vs = tuple(container.keys()), tuple(container.values())
            for k in ks:
                if type(k) not in _SCALARS:
                    raise Refuse(f"reads a dict with {type(k).__qualname__} keys ({where})")
            self.add(("contents", key), f"a dict of {len(ks)} items read at {where} is "
                     "unchanged", "len({c}) == {n} and all(map(_is, {c}.keys(), {ks})) and "
                     "all(map(_is, {c}.values(), {vs}))",
                     {"c": container, "n": len(ks), "ks": ks, "vs": vs})
            items = vs
        elif t is set:
            for k in container:
                if type(k) not in _SCALARS:
                    raise Refuse(f"reads a set of {type(k).__qualname__} ({where})")
            snap = frozenset(container)
            # (only scalars are hashed and compared: no user __eq__ runs in the check)
            self.add(("contents", key), f"a set of {len(snap)} items read at {where} is "
                     "unchanged", "len({c}) == {n} and all(type(e) in {sc} for e in {c}) "
                     "and {c} == {s}",
                     {"c": container, "n": len(snap), "s": snap, "sc": frozenset(_SCALARS)})
            items = ()
        elif t in (tuple, frozenset):
            items = tuple(container)
        else:
            raise Refuse(f"reads the contents of a {t.__qualname__} ({where})")
        for item in items:
            self.check_value(item, True, where, depth + 1)

    # -- values ------------------------------------------------------------------------------

    def is_fresh(self, v) -> bool:
        return self.fresh.get(id(v)) is v

    def note_value(self, slot: Slot) -> None:
        """A slot now holds the real object: remember it if it was made in this call."""
        if slot.fresh:
            self.fresh[id(slot.value)] = slot.value
        elif self.is_fresh(slot.value):
            slot.fresh = True

    def check_value(self, v, pinned, where: str, depth: int = 0, what: str = "reads") -> None:
        """``v`` may be read by C code or library code (an argument of a builtin or of a
        library function, an operand): its kind is safe, and a mutable container's
        contents are guarded (when pinned) or were made in this call."""
        t = type(v)
        if t in _SCALARS or t in (range, slice) or v is Ellipsis or v is NotImplemented:
            return
        if _lib_type(t) or t in _CALLABLE_TYPES or isinstance(v, (type, types.ModuleType)):
            return
        if t in (tuple, frozenset):
            if depth > 4:
                raise Refuse(f"{what} a nested tuple too deep to check ({where})")
            for x in v:
                self.check_value(x, pinned, where, depth + 1, what)
            return
        if t in _MUTABLE_CONTAINERS:
            if self.is_fresh(v) or id(v) in self.guarded:
                return
            if pinned:
                self.guard_contents(v, where, depth)
                return
            raise Refuse(f"{what} a {t.__qualname__} that was not reached from an argument, "
                         f"a global or a closure variable ({where})")
        if isinstance(v, _CONTAINER_BASES) and not self.is_fresh(v):
            # a user subclass of a builtin container: C code reads its items unguarded
            raise Refuse(f"{what} a {t.__qualname__}, a subclass of "
                         f"{_container_base(t).__qualname__} from outside the call ({where})")
        if t in _ITERATORS or t in _VIEWS:
            if t in _VIEWS or self.is_fresh(v):
                return
            raise Refuse(f"{what} an iterator made before the call ({where}); advancing it "
                         "changes outside state")
        if _user_class(t) and _plain_class(t):
            return
        raise Refuse(f"{what} a {t.__module__}.{t.__qualname__} ({where}); objects of that "
                     "kind are not analysed")

    def operand(self, shadow: FrameShadow, slot: Slot, what: str) -> None:
        if not slot.known:
            if slot.typ in _IMMUTABLE or slot.typ is _Safe or slot.fresh:
                return
            raise Refuse(f"{what} a value the analysis does not know ({shadow.where()})")
        self.emit_root(slot)
        self.check_value(slot.value, slot.pin, shadow.where(), what=what)

    def local_slot(self, shadow: FrameShadow, name: str) -> Slot:
        loc = shadow.frame.f_locals
        if name not in loc:
            return Slot()
        v = loc[name]
        info = shadow.locals.get(name)
        if info is not None and (info.value is UNKNOWN or info.value is v):
            slot = Slot(v, pin=info.pin, fresh=info.fresh, extra=info.extra)
            if info.value is UNKNOWN:
                shadow.locals[name] = slot
        else:
            slot = Slot(v)
        self.note_value(slot)
        return slot

    def load_deref(self, shadow: FrameShadow, name: str) -> Slot:
        code = shadow.code
        if name in code.co_cellvars:
            return self.local_slot(shadow, name)
        fn = shadow.fn or _function_of(code)
        if fn is None or fn.__closure__ is None or name not in fn.__code__.co_freevars:
            raise Refuse(f"reads the closure variable {name!r} of {code.co_qualname} "
                         f"({shadow.where()}) but cannot find its cell")
        shadow.fn = fn
        cell = fn.__closure__[fn.__code__.co_freevars.index(name)]
        try:
            value = cell.cell_contents
        except ValueError:
            return Slot()
        if name != "__class__":
            self.guard_cell(cell, name, value, code.co_qualname, shadow.where())
        return Slot(value, pin=True)

    def load_global(self, shadow: FrameShadow, name: str) -> Slot:
        frame = shadow.frame
        g, b = frame.f_globals, frame.f_builtins
        if name in g:
            value = g[name]
        elif name in b:
            value = b[name]
        else:
            return Slot()
        self.guard_global(g, b, name, value, shadow.where())
        return Slot(value, pin=True)

    # -- attributes --------------------------------------------------------------------------

    def read_attr(self, shadow: FrameShadow, owner: Slot, name: str, method: bool):
        """The slot of ``owner.name`` and whether the interpreter pushes it as an
        unbound method with self (LOAD_METHOD's two forms)."""
        where = shadow.where()
        if not owner.known:
            raise Refuse(f"reads .{name} of a value the analysis does not know ({where})")
        v = owner.value
        t = type(v)
        if isinstance(v, types.ModuleType):
            return self.module_attr(shadow, v, name), False
        if isinstance(v, type):
            return self.class_attr(shadow, owner, v, name), False
        if t is super:
            # LOAD_METHOD on a super object pushes the bound method (NULL form)
            return self.super_attr(shadow, v, name, False)
        if t in _IMMUTABLE or t in _MUTABLE_CONTAINERS or t in _VIEWS or t in _ITERATORS \
                or t in _CALLABLE_TYPES and name in ("__self__", "__func__", "__name__",
                                                     "__qualname__"):
            # builtin types: attribute access runs no Python code
            cls, attr = _lookup(t, name)
            if method and type(attr) is type(list.append):
                return Slot(attr, pin=True), True
            try:
                value = getattr(v, name)
            except AttributeError:
                return Slot(), False
            return Slot(value, pin=owner.pin, extra=owner), False
        lib = _lib_type(t)
        if not lib:
            if not owner.fresh:
                if owner.pin is None:
                    raise Refuse(f"reads .{name} of a {t.__qualname__} object that was not "
                                 "reached from an argument, a global or a closure variable "
                                 f"({where})")
                self.emit_root(owner)
            if not (_user_class(t) and _plain_class(t)) and t not in _PLAIN_C_TYPES \
                    and t is not types.FunctionType:
                raise Refuse(f"reads .{name} of a {t.__module__}.{t.__qualname__} ({where}); "
                             "objects of that kind are not analysed")
        ga = _lookup(t, "__getattribute__")[0]
        if ga is not object and ga not in _PLAIN_C_TYPES and ga not in _IMMUTABLE \
                and ga not in _MUTABLE_CONTAINERS and not _lib_type(ga):
            raise Refuse(f"reads .{name} of a {t.__qualname__}, whose class overrides "
                         f"__getattribute__ ({where})")
        cls, attr = _lookup(t, name)
        pin = True if (lib or not owner.fresh) else None
        if attr is _OBJECT_CLASS:
            return Slot(t, pin=True if lib or owner.pin else None), False
        if attr is not _M and _is_data_descriptor(attr):
            self.guard_class_state(t, name, where, stop=cls)
            return self.data_descriptor(shadow, owner, t, cls, attr, name, lib), False
        d = _instance_dict(v)
        if d is not None and name in d:
            value = d[name]
            self.guard_class_state(t, name, where)
            if not lib and not owner.fresh:
                self.guard_attr(v, name, value, where)
            return self.known(value, pin), False
        if lib and attr is _M and d is not None:
            for table in ("_parameters", "_buffers", "_modules"):
                tab = d.get(table)
                if type(tab) in (dict, OrderedDict) and name in tab:
                    self.guard_class_state(t, name, where)
                    return self.known(tab[name], True), False
        if attr is _M:
            getattr_cls, getattr_fn = _lookup(t, "__getattr__")
            if getattr_cls is None:
                return Slot(), False        # AttributeError follows
            if _user_class(getattr_cls) or not _lib_type(getattr_cls) \
                    or type(getattr_fn) is not types.FunctionType:
                raise Refuse(f"reads .{name} of a {t.__qualname__} through its __getattr__ "
                             f"({where})")
            slot = Slot(pin=True)           # compgrad's __getattr__ runs: its result
            shadow.defer(_settle_child, (slot, getattr_fn.__code__))
            return slot, False
        # a class attribute: a method, a static or class method, or plain data
        self.guard_class_state(t, name, where, stop=cls)
        if d is not None and not owner.fresh and (not lib or _user_class(cls)):
            self.guard_not_in_instance(v, name)
        at = type(attr)
        if at is types.FunctionType:
            if method:
                return Slot(attr, pin=True), True
            return Slot(types.MethodType(attr, v), pin=pin, extra=owner), False
        if at is staticmethod:
            return Slot(attr.__func__, pin=True), False
        if at is classmethod:
            return Slot(types.MethodType(attr.__func__, t), pin=True), False
        if at in _C_FUNCTION_TYPES:
            if method and at is type(list.append):
                return Slot(attr, pin=True), True
            return Slot(attr.__get__(v, t), pin=pin, extra=owner), False
        if _lookup(at, "__get__")[0] is not None:
            if lib and not _user_class(cls):
                get = _lookup(at, "__get__")[1]     # compgrad's descriptor runs
                slot = Slot()
                shadow.defer(_settle_child, (slot, get.__code__ if type(get) is
                                             types.FunctionType else None))
                return slot, False
            raise Refuse(f"reads .{name} of a {t.__qualname__}: a {at.__qualname__} "
                         f"descriptor would run user code ({where})")
        return self.known(attr, True), False

    def data_descriptor(self, shadow, owner, t, cls, attr, name, lib):
        where = shadow.where()
        at = type(attr)
        if at is property and lib and not _user_class(cls):
            slot = Slot()                         # compgrad's own property: its getter runs
            fget = attr.fget
            shadow.defer(_settle_child, (slot, fget.__code__ if type(fget) is
                                         types.FunctionType else None))
            return slot
        v = owner.value
        if at in (types.MemberDescriptorType, types.GetSetDescriptorType) and lib:
            return self.known(attr.__get__(v, t), True)
        if at is _TUPLEGETTER and isinstance(v, tuple):
            # a namedtuple field: an item of an immutable tuple
            return self.known(attr.__get__(v, t), owner.pin or None)
        if at is types.MemberDescriptorType and _user_class(cls):
            # a __slots__ attribute: read by the descriptor's C code, guarded like an
            # instance attribute
            value = attr.__get__(v, t)
            if not owner.fresh:
                self.guard_slot(v, attr, name, value, where)
            return self.known(value, True if not owner.fresh else None)
        if at is property:
            raise Refuse(f"reads the property {t.__qualname__}.{name} ({where}); a user "
                         "property would run user code a replay cannot re-check")
        raise Refuse(f"reads .{name} of a {t.__qualname__} through a {at.__qualname__} "
                     f"descriptor ({where})")

    def known(self, value, pin) -> Slot:
        slot = Slot(value, pin=pin)
        if self.is_fresh(value):
            slot.fresh = True
        return slot

    def module_attr(self, shadow: FrameShadow, mod, name: str) -> Slot:
        d = mod.__dict__
        if name in d:
            value = d[name]
            self.guard_module(mod, name, value, shadow.where())
            return Slot(value, pin=True)
        if "__getattr__" in d:
            if mod.__name__.split(".")[0] not in _OWN_PACKAGES:
                raise Refuse(f"reads {mod.__name__}.{name} through the module's __getattr__ "
                             f"({shadow.where()})")
            self.add(("nomod", id(d), name), f"{mod.__name__} has no attribute {name!r}",
                     "{k} not in {d}", {"k": name, "d": d})
            slot = Slot(pin=True)
            getattr_fn = d["__getattr__"]
            shadow.defer(_settle_child, (slot, getattr_fn.__code__ if type(getattr_fn) is
                                         types.FunctionType else None))
            return slot
        return Slot()

    def class_attr(self, shadow: FrameShadow, owner: Slot, cls: type, name: str) -> Slot:
        where = shadow.where()
        meta = type(cls)
        if meta is not type and not _lib_type(meta) and meta.__module__ != "abc":
            raise Refuse(f"reads .{name} of the class {cls.__qualname__}, whose metaclass is "
                         f"{meta.__qualname__} ({where})")
        user = _user_class(cls)
        if user and not owner.pin:
            raise Refuse(f"reads .{name} of the class {cls.__qualname__}, not reached from an "
                         f"argument, a global or a closure variable ({where})")
        self.emit_root(owner)
        mcls, mattr = _lookup(meta, name)
        if mattr is not _M and _is_data_descriptor(mattr):
            if user and name not in ("__name__", "__qualname__"):
                raise Refuse(f"reads {cls.__qualname__}.{name} ({where})")
            return Slot(getattr(cls, name), pin=True)
        owner_cls, attr = _lookup(cls, name)
        if owner_cls is None:
            if mattr is not _M and type(mattr) in _C_FUNCTION_TYPES:
                return Slot(getattr(cls, name), pin=True)
            return Slot()
        if user:
            self.guard_class_state(cls, name, where, stop=owner_cls)
        at = type(attr)
        if at is staticmethod:
            return Slot(attr.__func__, pin=True)
        if at is classmethod:
            return Slot(types.MethodType(attr.__func__, cls), pin=True)
        if at is types.FunctionType or _lookup(at, "__get__")[0] is None:
            return Slot(attr, pin=True)
        if at in _C_FUNCTION_TYPES or at in (types.MemberDescriptorType,
                                             types.GetSetDescriptorType, property):
            return Slot(attr.__get__(None, cls), pin=True)
        raise Refuse(f"reads {cls.__qualname__}.{name}, a {at.__qualname__} descriptor "
                     f"({where})")

    def super_attr(self, shadow: FrameShadow, sup, name: str, method: bool):
        """``super().name``: static lookup past the class in the MRO of self's type."""
        start, obj = sup.__thisclass__, sup.__self__
        t = obj if isinstance(obj, type) else type(obj)
        mro = t.__mro__
        if start not in mro:
            raise Refuse(f"reads super().{name} ({shadow.where()})")
        for c in mro[mro.index(start) + 1:]:
            if name in c.__dict__:
                attr = c.__dict__[name]
                self.guard_class_state(t, name, shadow.where(), stop=c, start=start)
                at = type(attr)
                if at is types.FunctionType:
                    if method and not isinstance(obj, type):
                        return Slot(attr, pin=True), True
                    return Slot(types.MethodType(attr, obj), pin=True), False
                if at in _C_FUNCTION_TYPES:
                    return Slot(attr.__get__(obj, t), pin=True), False
                if at is classmethod:
                    return Slot(types.MethodType(attr.__func__, t), pin=True), False
                if at is staticmethod:
                    return Slot(attr.__func__, pin=True), False
                raise Refuse(f"reads super().{name}, a {at.__qualname__} ({shadow.where()})")
        return Slot(), False

    def read_super_attr(self, shadow, cls_slot, self_slot, name, method):
        if not (cls_slot.known and self_slot.known and isinstance(cls_slot.value, type)):
            raise Refuse(f"reads super().{name} of unknown values ({shadow.where()})")
        return self.super_attr(shadow, super(cls_slot.value, self_slot.value), name, method)

    # -- writes ------------------------------------------------------------------------------

    def store_target(self, shadow: FrameShadow, target: Slot, what: str,
                     allow_tensor: bool = False, attr=None) -> None:
        """A write into ``target``: allowed into objects made in this call, into a
        tensor's items (``allow_tensor``: the trace records it), and through a
        property of compgrad's own (``attr``: (name, "fset" or "fdel")), whose setter
        is library code that keeps compgrad's state counters (``x.grad = None``)."""
        if target.fresh:
            return
        if target.known:
            v = target.value
            if self.is_fresh(v):
                return
            from compgrad.tensor import Tensor
            if allow_tensor and isinstance(v, Tensor):
                return
            if attr is not None and _lib_type(type(v)):
                cls, prop = _lookup(type(v), attr[0])
                if type(prop) is property and not _user_class(cls) \
                        and type(getattr(prop, attr[1])) is types.FunctionType:
                    return
            raise Refuse(f"{what} a {type(v).__qualname__} from outside the call "
                         f"({shadow.where()})")
        raise Refuse(f"{what} a value the analysis does not know ({shadow.where()})")

    def mutation_target(self, shadow: FrameShadow, target: Slot, what: str,
                        dunder: str | None = None) -> None:
        """``target`` may be changed in place (``+=``: ``dunder`` is ``__iadd__``; a
        mutating C method): allowed on objects made here and compgrad's."""
        if target.fresh or (target.known and self.is_fresh(target.value)):
            return
        if target.known:
            t = type(target.value)
            if t in _IMMUTABLE or _lib_type(t):
                return
            if dunder is not None and _user_class(t) and _plain_class(t):
                # a Python __iadd__ runs in its own watched frame; none at all falls back
                # to __add__, which makes a new object
                method = _lookup(t, dunder)[1]
                if method is _M or type(method) is types.FunctionType:
                    return
            raise Refuse(f"{what} a {t.__qualname__} from outside the call ({shadow.where()})")
        if target.typ in _IMMUTABLE:
            return
        raise Refuse(f"{what} a value the analysis does not know ({shadow.where()})")

    def contents_of_new(self, shadow: FrameShadow, items) -> None:
        """Items put into a container made here: a mutable container among them is
        read through it later, so its contents must be guarded now."""
        for s in items:
            if s.known:
                if type(s.value) in _MUTABLE_CONTAINERS:
                    self.operand(shadow, s, "puts into a new container")
            elif not (s.fresh or s.typ in _IMMUTABLE or s.typ is _Safe):
                raise Refuse(f"puts a value the analysis does not know into a container "
                             f"({shadow.where()})")

    def read_contents(self, shadow: FrameShadow, slot: Slot, what: str) -> None:
        if not slot.known:
            if slot.fresh or slot.typ in _IMMUTABLE:
                return
            raise Refuse(f"{what} a value the analysis does not know ({shadow.where()})")
        v = slot.value
        t = type(v)
        if _lib_type(t) or (_user_class(t) and _plain_class(t)
                            and not isinstance(v, _CONTAINER_BASES)):
            return                  # its __iter__/__getitem__ runs in a watched frame
        self.operand(shadow, slot, what)

    def truth(self, shadow: FrameShadow, slot: Slot) -> None:
        """``if value:``: calls ``__bool__``/``__len__``."""
        if not slot.known:
            if slot.typ in _IMMUTABLE or slot.typ is _Safe or slot.fresh:
                return
            raise Refuse(f"tests the truth of a value the analysis does not know "
                         f"({shadow.where()})")
        v = slot.value
        t = type(v)
        if t in _MUTABLE_CONTAINERS and not self.is_fresh(v) and id(v) not in self.guarded:
            if not slot.pin:
                raise Refuse(f"tests whether a {t.__qualname__} from outside the call is "
                             f"empty ({shadow.where()})")
            self.emit_root(slot)
            self.add(("nonempty", id(v)), f"a {t.__qualname__} read at {shadow.where()} "
                     f"is {'non-' if v else ''}empty", "(len({c}) != 0) is {r}",
                     {"c": v, "r": bool(v)})
            return
        self.check_value(v, slot.pin, shadow.where(), what="tests the truth of")


def _instance_dict(v):
    """``v``'s instance dict, read through the C descriptor only (a class that made
    ``__dict__`` a property would run its code)."""
    attr = _lookup(type(v), "__dict__")[1]
    if type(attr) not in (types.GetSetDescriptorType, types.MemberDescriptorType):
        return None
    try:
        d = attr.__get__(v, type(v))
    except (AttributeError, TypeError):
        return None
    return d if type(d) is dict else None


def _snapshot(v):
    """The items iteration over ``v`` yields, when a builtin container (read without
    running Python code); None otherwise."""
    t = type(v)
    if t in (list, tuple, str, bytes, range):
        return v
    if t in (dict, OrderedDict, set, frozenset) or t in _VIEWS:
        return tuple(v)
    if _lib_type(t) and isinstance(v, tuple):
        return v
    return None


def _plain_isinstance(vals) -> bool:
    """isinstance(x, C) reads only ``type(x)`` (no ``__class__`` property, no
    ``__instancecheck__``)."""
    if len(vals) != 2:
        return False
    classes = vals[1] if type(vals[1]) is tuple else (vals[1],)
    return all(isinstance(c, type) and type(c) is type for c in classes) \
        and _lookup(type(vals[0]), "__class__")[0] is object


def _container_base(t: type) -> type:
    return next(b for b in _CONTAINER_BASES if issubclass(t, b))


def _function_of(code):
    """The one function object running ``code`` (to find its closure cells), or None
    when there is not exactly one."""
    fns = [r for r in gc.get_referrers(code) if type(r) is types.FunctionType
           and r.__code__ is code]
    return fns[0] if len(fns) == 1 else None
