"""The shadow value stack of one user frame, for :mod:`compgrad.compile.pyreads`.

``pyreads`` watches the user's Python with ``sys.settrace`` opcode events. An
opcode event comes *before* its instruction runs, in execution order, so a
shadow of the frame's value stack advanced at each event needs no control-flow
merging: it follows the one path the frame really takes. Each shadow slot
(:class:`Slot`) holds what is known of the real value:

- ``value``: the object itself when known (a ``LOAD_FAST`` reads the local from
  ``frame.f_locals``; ``LOAD_GLOBAL``/``LOAD_DEREF``/``LOAD_CONST`` know it; an
  attribute read re-resolves it statically; a call, a property or an operator
  implemented in Python gets it from the callee's ``return`` profile event);
- ``pin``: whether the same code is bound to reach the same object at a later
  call *because guards say so*: reached from an argument, a guarded global or
  closure cell, a compgrad object, or through guarded reads of a pinned object.
  Reads of a pinned object's state become guards; reads of anything else refuse;
- ``fresh``: the object was created during this call (a list built here, a
  comprehension's result), so reading or mutating it touches no outside state.

This module owns the mechanics: decoding a code object, the exact stack effect
of each modelled opcode, when an instruction's result is settled (at the next
event of the frame: a call's return value, whether a jump was taken). Every
decision about what is allowed and which guard a read needs is the watcher's
(:class:`compgrad.compile.pyreads._Watcher`), reached through ``self.w``. An
opcode this module does not model refuses replay: the set is explicit.
"""

from __future__ import annotations

import dis
import inspect
import sys
import types
import weakref

__all__ = ["Refuse", "Slot", "UNKNOWN", "NULL", "FrameShadow", "decode", "child_result"]

PY312 = sys.version_info[:2] >= (3, 12)


class Refuse(Exception):  # noqa: N818 - a verdict, not an error
    """Raised inside the analysis: replay is refused for the reason in ``args[0]``."""


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


UNKNOWN = _Sentinel("unknown")   # a slot whose object is not known
NULL = _Sentinel("NULL")         # the interpreter's NULL (PUSH_NULL, LOAD_GLOBAL's low bit)
NO_CHILD = _Sentinel("no child return")


class Slot:
    """What the shadow knows of one value: see the module docstring.

    ``typ`` is the value's type when known even if the value is not (a list
    built here, a call's result of a known class). ``pin`` is None (not pinned),
    True, or a pending root (an argument: its identity guard is made at the
    first read through it). ``extra`` carries a shadow iterator, the code of a
    function made here, or a bound method's receiver slot.
    """

    __slots__ = ("value", "typ", "pin", "fresh", "extra")

    def __init__(self, value=UNKNOWN, typ=None, pin=None, fresh: bool = False, extra=None):
        self.value = value
        self.typ = type(value) if typ is None and value is not UNKNOWN else typ
        self.pin = pin
        self.fresh = fresh
        self.extra = extra

    @property
    def known(self) -> bool:
        return self.value is not UNKNOWN


NULL_SLOT = Slot(NULL)


# --- decoding -------------------------------------------------------------------------------

class Instr:
    """One decoded instruction: what the shadow needs of it."""

    __slots__ = ("offset", "opname", "arg", "argval", "effect", "jump_effect", "target",
                 "next_offset", "handler")

    def __init__(self, ins: dis.Instruction, next_offset: int):
        self.offset = ins.offset
        self.opname = ins.opname
        self.arg = ins.arg
        self.argval = ins.argval
        self.next_offset = next_offset
        self.target = ins.argval if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs \
            else None
        arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
        try:
            self.effect = dis.stack_effect(ins.opcode, arg, jump=False)
            self.jump_effect = dis.stack_effect(ins.opcode, arg, jump=True)
        except ValueError:          # pseudo or unknown opcodes: never modelled
            self.effect = self.jump_effect = None
        if not PY312 and ins.opname == "PRECALL":
            # dis splits a 3.11 call's pops between PRECALL and CALL; the shadow does
            # the whole call at CALL
            self.effect = self.jump_effect = 0
        elif not PY312 and ins.opname == "CALL":
            self.effect = self.jump_effect = -ins.arg - 1
        self.handler = _HANDLERS.get(ins.opname)


_DECODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # a cache: code -> table


def decode(code: types.CodeType) -> dict[int, Instr]:
    """Offset -> :class:`Instr` for ``code`` (cached). On 3.11 the opcode event of an
    instruction with an ``EXTENDED_ARG`` prefix comes at the prefix's offset: the
    prefix maps to the instruction it extends."""
    table = _DECODED.get(code)
    if table is not None:
        return table
    instrs = list(dis.get_instructions(code))
    table = {}
    for i, ins in enumerate(instrs):
        nxt = instrs[i + 1].offset if i + 1 < len(instrs) else ins.offset + 2
        table[ins.offset] = Instr(ins, nxt)
    if not PY312:
        for i in range(len(instrs) - 1, -1, -1):
            if instrs[i].opname == "EXTENDED_ARG":
                table[instrs[i].offset] = table[instrs[i + 1].offset]
    _DECODED[code] = table
    return table


# --- the shadow of one frame -----------------------------------------------------------------

class FrameShadow:
    """The shadow stack and local provenance of one user frame.

    ``trace`` is the frame's local trace function. The watcher appends to
    ``children`` the (value, code, slot) of each return or yield of a Python frame
    called directly from this one during the current instruction (``slot``: what
    the callee's shadow returned, when it was a user frame).
    """

    __slots__ = ("w", "frame", "code", "table", "stack", "locals", "kwnames", "pending",
                 "children", "exc", "fn", "call", "c_ok",
                 "ret", "tracefn", "genexpr", "__weakref__")

    def __init__(self, watcher, frame, fn=None):
        self.w = watcher
        self.frame = frame
        self.code = frame.f_code
        self.table = decode(self.code)
        self.stack: list[Slot] = []
        self.locals: dict[str, Slot] = {}   # provenance of locals (name -> slot stored)
        self.kwnames: tuple = ()
        self.pending = None                 # (settle function, data) of the last instruction
        self.children: list[tuple] = []     # (value, code, slot) of direct callees
        self.exc = None                     # where an exception was raised (or passed)
        self.fn = fn                        # the function object, when known
        self.call = None                    # (function or class, arg slots, kw slots, new)
        self.c_ok = None                    # the C function the last CALL approved
        self.ret = None                     # the slot this frame returned or yielded last
        self.genexpr = self.code.co_name == "<genexpr>"
        self.tracefn = self.trace

    # -- events --------------------------------------------------------------------------

    def trace(self, frame, event, arg):
        """The local trace function of the user frame."""
        w = self.w
        if w.refusal is not None:
            return None
        try:
            if event == "opcode":
                self.step(frame)
            elif event == "exception":
                ins = self.table.get(frame.f_lasti)
                if not (ins is not None and ins.opname == "FOR_ITER"
                        and issubclass(arg[0], StopIteration)):
                    # (a Python __next__ ending a for loop is no exception handling)
                    self.exc = w.where(frame)   # refused if the frame goes on: caught here
                    self.pending = None
        except Refuse as r:
            w.refuse(r.args[0])
            return None
        except Exception as e:   # noqa: BLE001 - the analyser must never break the call
            w.refuse(f"replay analysis failed: {type(e).__name__}: {e} "
                     f"({w.where(frame)})")
            return None
        return self.tracefn

    def step(self, frame) -> None:
        """Advance the shadow over the instruction about to run."""
        if self.exc:
            raise Refuse(f"an exception raised at {self.exc} is caught in user code; "
                         "exception handling is not analysed")
        lasti = frame.f_lasti
        if self.pending is not None:
            settle, data = self.pending
            self.pending = None
            settle(self, data, lasti)
        ins = self.table.get(lasti)
        if ins is None:
            raise Refuse(f"replay analysis failed: no instruction at offset {lasti} "
                         f"({self.w.where(frame)})")
        if PY312 and ins.opname == "EXTENDED_ARG":
            return
        handler = ins.handler
        if handler is None:
            raise Refuse(f"the opcode {ins.opname} is not analysed ({self.w.where(frame)})")
        depth = len(self.stack)
        self.children.clear()
        self.call = None
        self.c_ok = None
        handler(self, ins)
        if self.pending is None or self.pending[0] is not _settle_jump:
            if len(self.stack) - depth != ins.effect:
                raise Refuse(f"replay analysis failed: shadow stack of {ins.opname} moved by "
                             f"{len(self.stack) - depth}, expected {ins.effect} "
                             f"({self.w.where(frame)})")

    # -- helpers ---------------------------------------------------------------------------

    def pop(self) -> Slot:
        try:
            return self.stack.pop()
        except IndexError:
            raise Refuse("replay analysis failed: shadow stack underflow") from None

    def popn(self, n: int) -> list[Slot]:
        if n == 0:
            return []
        if n > len(self.stack):
            raise Refuse("replay analysis failed: shadow stack underflow")
        out = self.stack[-n:]
        del self.stack[-n:]
        return out

    def push(self, slot: Slot) -> None:
        self.stack.append(slot)

    def defer(self, settle, data) -> None:
        self.pending = (settle, data)

    def where(self) -> str:
        return self.w.where(self.frame)


# --- settling an instruction at the next event --------------------------------------------

def child_result(shadow: FrameShadow, accept):
    """(value, slot) of the latest direct callee's return that ``accept`` matches: the
    callee's code object, a frozenset of the codes of an operator's dunders (whose
    NotImplemented is not a result), or None (any). (NO_CHILD, None) when there is
    none: a finalizer that ran last, or C code that made the result, leaves the
    result unknown."""
    for value, code, slot in reversed(shadow.children):
        if accept is None or code is accept or (
                type(accept) is frozenset and code in accept
                and value is not NotImplemented):
            return value, slot
    return NO_CHILD, None


def _settle_child(shadow: FrameShadow, data, lasti: int) -> None:
    """The result of an instruction that ran a Python callee (a call, a property, an
    operator of a Python class): the callee's return value, with its provenance when
    the callee was a user frame. ``data`` is (slot to fill, accept): see
    :func:`child_result`."""
    slot, accept = data
    value, ret = child_result(shadow, accept)
    if value is NO_CHILD:
        return
    slot.value = value
    slot.typ = type(value)
    if ret is not None and (ret.value is UNKNOWN or ret.value is value):
        slot.pin = slot.pin or ret.pin
        slot.fresh = slot.fresh or ret.fresh
    elif ret is None and type(value) is types.GeneratorType and \
            inspect.getgeneratorstate(value) == inspect.GEN_CREATED:
        slot.fresh = True       # compgrad returned a new generator (named_parameters())
    shadow.w.note_value(slot)


def _settle_jump(shadow: FrameShadow, data, lasti: int) -> None:
    """A conditional jump whose stack effect depends on the way taken."""
    ins, on_fall, on_jump = data
    depth = len(shadow.stack)
    if lasti == ins.next_offset and lasti != ins.target:
        on_fall(shadow, ins, lasti)
        expected = ins.effect
    elif lasti == ins.target:
        on_jump(shadow, ins, lasti)
        expected = ins.jump_effect
    elif PY312 and ins.opname == "FOR_ITER" and lasti == ins.target + 2:
        on_jump(shadow, ins, lasti)        # 3.12 skips the END_FOR: the iterator is popped
        expected = -1
    else:
        raise Refuse(f"replay analysis failed: {ins.opname} at {ins.offset} went to {lasti}")
    if len(shadow.stack) - depth != expected:
        raise Refuse(f"replay analysis failed: shadow stack of {ins.opname} moved by "
                     f"{len(shadow.stack) - depth}, expected {expected}")


# --- handlers ---------------------------------------------------------------------------------
# Each handler pops and pushes exactly what the instruction does (checked against
# dis.stack_effect after it runs); values the instruction computes in Python code
# are filled in when the instruction is settled.

def _nop(shadow: FrameShadow, ins: Instr) -> None:
    pass


def _push_null(shadow: FrameShadow, ins: Instr) -> None:
    shadow.push(NULL_SLOT)


def _pop_top(shadow: FrameShadow, ins: Instr) -> None:
    shadow.pop()


def _end_for(shadow: FrameShadow, ins: Instr) -> None:
    shadow.popn(2)


def _copy(shadow: FrameShadow, ins: Instr) -> None:
    if ins.arg > len(shadow.stack):
        raise Refuse("replay analysis failed: shadow stack underflow")
    shadow.push(shadow.stack[-ins.arg])


def _swap(shadow: FrameShadow, ins: Instr) -> None:
    st = shadow.stack
    if ins.arg > len(st):
        raise Refuse("replay analysis failed: shadow stack underflow")
    st[-1], st[-ins.arg] = st[-ins.arg], st[-1]


def _kw_names(shadow: FrameShadow, ins: Instr) -> None:
    shadow.kwnames = shadow.code.co_consts[ins.arg]


def _load_const(shadow: FrameShadow, ins: Instr) -> None:
    shadow.push(Slot(ins.argval, pin=True))


def _load_fast(shadow: FrameShadow, ins: Instr) -> None:
    shadow.push(shadow.w.local_slot(shadow, ins.argval))


def _load_fast_and_clear(shadow: FrameShadow, ins: Instr) -> None:
    name = ins.argval
    if name in shadow.frame.f_locals:
        shadow.push(shadow.w.local_slot(shadow, name))
    else:
        shadow.push(NULL_SLOT)
    shadow.locals.pop(name, None)


def _store_fast(shadow: FrameShadow, ins: Instr) -> None:
    shadow.locals[ins.argval] = shadow.pop()


def _delete_fast(shadow: FrameShadow, ins: Instr) -> None:
    shadow.locals.pop(ins.argval, None)


def _load_deref(shadow: FrameShadow, ins: Instr) -> None:
    shadow.push(shadow.w.load_deref(shadow, ins.argval))


def _store_deref(shadow: FrameShadow, ins: Instr) -> None:
    name = ins.argval
    if name in shadow.code.co_freevars:
        raise Refuse(f"assigns the variable {name!r} of an enclosing function "
                     f"(nonlocal, {shadow.where()})")
    slot = shadow.pop()
    if ins.opname == "STORE_DEREF":
        shadow.locals[name] = slot


def _delete_deref(shadow: FrameShadow, ins: Instr) -> None:
    name = ins.argval
    if name in shadow.code.co_freevars:
        raise Refuse(f"deletes the variable {name!r} of an enclosing function "
                     f"(nonlocal, {shadow.where()})")
    shadow.locals.pop(name, None)


def _load_closure(shadow: FrameShadow, ins: Instr) -> None:
    shadow.push(Slot(typ=types.CellType, fresh=ins.argval in shadow.code.co_cellvars))


def _load_global(shadow: FrameShadow, ins: Instr) -> None:
    if ins.arg & 1:
        shadow.push(NULL_SLOT)
    shadow.push(shadow.w.load_global(shadow, ins.argval))


def _load_attr(shadow: FrameShadow, ins: Instr) -> None:
    name = ins.argval
    method = ins.opname == "LOAD_METHOD" or (PY312 and ins.arg & 1)
    owner = shadow.pop()
    result, is_method = shadow.w.read_attr(shadow, owner, name, method)
    _push_attr(shadow, result, owner, method, is_method)


def _push_attr(shadow: FrameShadow, result, owner, method: bool, is_method: bool) -> None:
    # a method load pushes the unbound function and self, as the interpreter does, or
    # NULL and the attribute; a plain load pushes the attribute
    if method:
        if is_method:
            shadow.push(result)
            shadow.push(owner)
        else:
            shadow.push(NULL_SLOT)
            shadow.push(result)
    else:
        shadow.push(result)


def _load_super_attr(shadow: FrameShadow, ins: Instr) -> None:
    # 3.12: super().name / super(cls, self).name; the stack holds super, the class, self
    sup, cls, self_slot = shadow.popn(3)
    if sup.value is not super:
        raise Refuse(f"calls a rebound super ({shadow.where()})")
    result, is_method = shadow.w.read_super_attr(shadow, cls, self_slot, ins.argval,
                                                 bool(ins.arg & 1))
    _push_attr(shadow, result, self_slot, bool(ins.arg & 1), is_method)


def _load_assertion_error(shadow: FrameShadow, ins: Instr) -> None:
    shadow.push(Slot(AssertionError, pin=True))


def _store_attr(shadow: FrameShadow, ins: Instr) -> None:
    owner = shadow.pop()
    shadow.pop()
    shadow.w.store_target(shadow, owner, f"assigns the attribute .{ins.argval} of",
                          attr=(ins.argval, "fset"))


def _delete_attr(shadow: FrameShadow, ins: Instr) -> None:
    owner = shadow.pop()
    shadow.w.store_target(shadow, owner, f"deletes the attribute .{ins.argval} of",
                          attr=(ins.argval, "fdel"))


def _store_subscr(shadow: FrameShadow, ins: Instr) -> None:
    _, container, _ = shadow.popn(3)
    shadow.w.store_target(shadow, container, "assigns an item of", allow_tensor=True)


def _delete_subscr(shadow: FrameShadow, ins: Instr) -> None:
    container, _ = shadow.popn(2)
    shadow.w.store_target(shadow, container, "deletes an item of", allow_tensor=True)


def _store_slice(shadow: FrameShadow, ins: Instr) -> None:
    _, container, _, _ = shadow.popn(4)
    shadow.w.store_target(shadow, container, "assigns a slice of", allow_tensor=True)


def _binary_op(shadow: FrameShadow, ins: Instr) -> None:
    b = shadow.pop()
    a = shadow.pop()
    shadow.push(shadow.w.binary(shadow, ins.arg, a, b))


def _compare_op(shadow: FrameShadow, ins: Instr) -> None:
    b = shadow.pop()
    a = shadow.pop()
    shadow.push(shadow.w.compare(shadow, ins.argval, a, b))


def _is_op(shadow: FrameShadow, ins: Instr) -> None:
    b = shadow.pop()
    a = shadow.pop()
    if a.known and b.known:
        shadow.push(Slot((a.value is b.value) != bool(ins.arg), pin=True))
    else:
        shadow.push(Slot(typ=bool))


def _contains_op(shadow: FrameShadow, ins: Instr) -> None:
    container = shadow.pop()
    item = shadow.pop()
    shadow.push(shadow.w.contains(shadow, item, container, bool(ins.arg)))


def _unary(shadow: FrameShadow, ins: Instr) -> None:
    a = shadow.pop()
    shadow.push(shadow.w.unary(shadow, ins.opname, a))


def _binary_subscr(shadow: FrameShadow, ins: Instr) -> None:
    key = shadow.pop()
    container = shadow.pop()
    shadow.push(shadow.w.subscript(shadow, container, key))


def _binary_slice(shadow: FrameShadow, ins: Instr) -> None:
    container, start, stop = shadow.popn(3)
    key = Slot(slice(start.value, stop.value)) if start.known and stop.known else Slot()
    shadow.push(shadow.w.subscript(shadow, container, key))


def _build_slice(shadow: FrameShadow, ins: Instr) -> None:
    parts = shadow.popn(ins.arg)
    if all(p.known for p in parts):
        shadow.push(Slot(slice(*(p.value for p in parts)), pin=True))
    else:
        shadow.push(Slot(typ=slice, pin=True))


def _build_tuple(shadow: FrameShadow, ins: Instr) -> None:
    items = shadow.popn(ins.arg)
    if all(i.known for i in items):
        # a tuple is compared by value wherever identity matters not, so rebuilding
        # it here is faithful; the items keep their provenance in extra
        shadow.push(Slot(tuple(i.value for i in items), fresh=True, extra=items,
                         pin=True if all(i.pin is True for i in items) else None))
    else:
        shadow.push(Slot(typ=tuple, fresh=True, extra=items))


def _build_container(typ):
    def build(shadow: FrameShadow, ins: Instr) -> None:
        n = ins.arg * 2 if typ is dict else ins.arg
        items = shadow.popn(n)
        shadow.w.contents_of_new(shadow, items)
        shadow.push(Slot(typ=typ, fresh=True))
    build.__name__ = f"_build_{typ.__name__}"
    return build


def _build_const_key_map(shadow: FrameShadow, ins: Instr) -> None:
    items = shadow.popn(ins.arg + 1)
    shadow.w.contents_of_new(shadow, items[:-1])
    shadow.push(Slot(typ=dict, fresh=True))


def _build_string(shadow: FrameShadow, ins: Instr) -> None:
    parts = shadow.popn(ins.arg)
    if all(p.known and type(p.value) is str for p in parts):
        shadow.push(Slot("".join(p.value for p in parts), pin=True))
    else:
        shadow.push(Slot(typ=str, pin=True))


def _format_value(shadow: FrameShadow, ins: Instr) -> None:
    spec = shadow.pop() if (ins.arg & 0x04) else None
    value = shadow.pop()
    shadow.push(shadow.w.format_value(shadow, value, ins.arg & 0x03, spec))


def _collection_add(shadow: FrameShadow, ins: Instr) -> None:
    # LIST_APPEND / SET_ADD / MAP_ADD: into a container the comprehension built
    n = 2 if ins.opname == "MAP_ADD" else 1
    items = shadow.popn(n)
    target = shadow.stack[-ins.arg] if ins.arg <= len(shadow.stack) else None
    if target is None or not target.fresh:
        raise Refuse(f"replay analysis failed: {ins.opname} into an unknown container")
    shadow.w.contents_of_new(shadow, items)


def _collection_extend(shadow: FrameShadow, ins: Instr) -> None:
    # LIST_EXTEND / SET_UPDATE / DICT_UPDATE / DICT_MERGE: read an iterable's contents
    source = shadow.pop()
    target = shadow.stack[-ins.arg] if ins.arg <= len(shadow.stack) else None
    if target is None or not target.fresh:
        raise Refuse(f"replay analysis failed: {ins.opname} into an unknown container")
    shadow.w.read_contents(shadow, source, "unpacks")


def _list_to_tuple(shadow: FrameShadow, ins: Instr) -> None:
    shadow.pop()
    shadow.push(Slot(typ=tuple, fresh=True))


def _call_intrinsic_1(shadow: FrameShadow, ins: Instr) -> None:
    # 3.12: 5 = unary +, 6 = list to tuple; the others (print, import *, async,
    # typing internals, StopIteration in a generator) are not analysed
    if ins.arg == 6:
        _list_to_tuple(shadow, ins)
    elif ins.arg == 5:
        shadow.push(shadow.w.unary(shadow, "UNARY_POSITIVE", shadow.pop()))
    else:
        raise Refuse(f"the intrinsic {ins.argval} is not analysed ({shadow.where()})")


def _unpack_sequence(shadow: FrameShadow, ins: Instr) -> None:
    seq = shadow.pop()
    items = shadow.w.unpack(shadow, seq, ins.arg)
    for slot in reversed(items):
        shadow.push(slot)


def _unpack_ex(shadow: FrameShadow, ins: Instr) -> None:
    seq = shadow.pop()
    shadow.w.read_contents(shadow, seq, "unpacks")
    before, after = ins.arg & 0xFF, ins.arg >> 8
    for _ in range(after):
        shadow.push(Slot())
    shadow.push(Slot(typ=list, fresh=True))
    for _ in range(before):
        shadow.push(Slot())


def _pop_jump_if(shadow: FrameShadow, ins: Instr) -> None:
    value = shadow.pop()
    if "NONE" not in ins.opname:
        shadow.w.truth(shadow, value)


def _jump_if_or_pop(shadow: FrameShadow, ins: Instr) -> None:
    shadow.w.truth(shadow, shadow.stack[-1] if shadow.stack else Slot())
    shadow.defer(_settle_jump, (ins, _fall_pop, _jump_keep))


def _fall_pop(shadow: FrameShadow, ins: Instr, lasti: int) -> None:
    shadow.pop()


def _jump_keep(shadow: FrameShadow, ins: Instr, lasti: int) -> None:
    pass


def _get_iter(shadow: FrameShadow, ins: Instr) -> None:
    iterable = shadow.pop()
    shadow.push(shadow.w.get_iter(shadow, iterable))


def _for_iter(shadow: FrameShadow, ins: Instr) -> None:
    if not shadow.stack:
        raise Refuse("replay analysis failed: shadow stack underflow")
    it = shadow.stack[-1]
    shadow.w.advance(shadow, it)
    shadow.defer(_settle_jump, (ins, _for_iter_item, _for_iter_done))


def _for_iter_item(shadow: FrameShadow, ins: Instr, lasti: int) -> None:
    it = shadow.stack[-1]
    item = shadow.w.next_item(shadow, it)
    shadow.push(item)


def _for_iter_done(shadow: FrameShadow, ins: Instr, lasti: int) -> None:
    if PY312 and lasti == ins.target:
        shadow.push(Slot())         # END_FOR pops the iterator and this
    else:
        shadow.pop()


def _return_value(shadow: FrameShadow, ins: Instr) -> None:
    shadow.ret = shadow.pop()


def _return_const(shadow: FrameShadow, ins: Instr) -> None:
    shadow.ret = Slot(ins.argval, pin=True)


def _yield_value(shadow: FrameShadow, ins: Instr) -> None:
    if not shadow.genexpr:
        raise Refuse(f"runs the user generator {shadow.code.co_qualname} "
                     f"({shadow.where()}); generators are not analysed")
    shadow.ret = shadow.pop()
    shadow.push(Slot())             # the value sent in: None for a generator expression


def _raise_varargs(shadow: FrameShadow, ins: Instr) -> None:
    shadow.popn(ins.arg)


def _before_with(shadow: FrameShadow, ins: Instr) -> None:
    ctx = shadow.pop()
    exit_slot, enter_slot = shadow.w.enter_context(shadow, ctx)
    shadow.push(exit_slot)
    shadow.push(enter_slot)


def _make_function(shadow: FrameShadow, ins: Instr) -> None:
    code_slot = shadow.pop()
    parts = bin(ins.arg & 0x0F).count("1")
    shadow.popn(parts)
    code = code_slot.value if isinstance(code_slot.value, types.CodeType) else None
    shadow.push(Slot(typ=types.FunctionType, fresh=True, extra=code))


def _call(shadow: FrameShadow, ins: Instr) -> None:
    argc = ins.arg
    kwnames = shadow.kwnames
    shadow.kwnames = ()
    slots = shadow.popn(argc + 2)
    first, second, args = slots[0], slots[1], slots[2:]
    if first.value is NULL:
        func, args = second, args
    else:
        func, args = first, [second] + args
    nkw = len(kwnames)
    pos = args[:len(args) - nkw] if nkw else args
    kw = dict(zip(kwnames, args[len(args) - nkw:])) if nkw else {}
    shadow.push(shadow.w.call(shadow, func, pos, kw))


def _call_function_ex(shadow: FrameShadow, ins: Instr) -> None:
    kwargs = shadow.pop() if ins.arg & 1 else None
    args = shadow.pop()
    func = shadow.pop()
    null = shadow.pop()
    if null.value is not NULL:
        raise Refuse("replay analysis failed: CALL_FUNCTION_EX without NULL")
    shadow.push(shadow.w.call_ex(shadow, func, args, kwargs))


def _refuse_opcode(reason: str):
    def refuse(shadow: FrameShadow, ins: Instr) -> None:
        raise Refuse(f"{reason} ({shadow.where()})")
    refuse.__name__ = "_refuse_" + reason.split()[0]
    return refuse


_HANDLERS = {
    # no stack effect
    "NOP": _nop, "RESUME": _nop, "CACHE": _nop, "COPY_FREE_VARS": _nop, "MAKE_CELL": _nop,
    "RETURN_GENERATOR": _nop, "JUMP_FORWARD": _nop, "JUMP_BACKWARD": _nop,
    "JUMP_BACKWARD_NO_INTERRUPT": _nop, "JUMP": _nop, "JUMP_NO_INTERRUPT": _nop,
    "PRECALL": _nop, "KW_NAMES": _kw_names,
    # stack manipulation
    "PUSH_NULL": _push_null, "POP_TOP": _pop_top, "END_FOR": _end_for, "COPY": _copy,
    "SWAP": _swap,
    # loads and stores of the frame's own variables
    "LOAD_CONST": _load_const, "LOAD_FAST": _load_fast, "LOAD_FAST_CHECK": _load_fast,
    "LOAD_FAST_AND_CLEAR": _load_fast_and_clear, "STORE_FAST": _store_fast,
    "DELETE_FAST": _delete_fast, "LOAD_DEREF": _load_deref, "STORE_DEREF": _store_deref,
    "DELETE_DEREF": _delete_deref, "LOAD_CLOSURE": _load_closure,
    # reads of outside state: guarded by the watcher
    "LOAD_GLOBAL": _load_global, "LOAD_ATTR": _load_attr, "LOAD_METHOD": _load_attr,
    "LOAD_SUPER_ATTR": _load_super_attr, "LOAD_ASSERTION_ERROR": _load_assertion_error,
    # writes: allowed into objects made in this call (and tensors) only
    "STORE_ATTR": _store_attr, "DELETE_ATTR": _delete_attr, "STORE_SUBSCR": _store_subscr,
    "DELETE_SUBSCR": _delete_subscr, "STORE_SLICE": _store_slice,
    # operators
    "BINARY_OP": _binary_op, "COMPARE_OP": _compare_op, "IS_OP": _is_op,
    "CONTAINS_OP": _contains_op, "UNARY_NEGATIVE": _unary, "UNARY_POSITIVE": _unary,
    "UNARY_INVERT": _unary, "UNARY_NOT": _unary, "BINARY_SUBSCR": _binary_subscr,
    "BINARY_SLICE": _binary_slice, "BUILD_SLICE": _build_slice,
    "FORMAT_VALUE": _format_value, "BUILD_STRING": _build_string,
    # containers built here
    "BUILD_TUPLE": _build_tuple, "BUILD_LIST": _build_container(list),
    "BUILD_SET": _build_container(set), "BUILD_MAP": _build_container(dict),
    "BUILD_CONST_KEY_MAP": _build_const_key_map, "LIST_APPEND": _collection_add,
    "SET_ADD": _collection_add, "MAP_ADD": _collection_add,
    "LIST_EXTEND": _collection_extend, "SET_UPDATE": _collection_extend,
    "DICT_UPDATE": _collection_extend, "DICT_MERGE": _collection_extend,
    "LIST_TO_TUPLE": _list_to_tuple, "CALL_INTRINSIC_1": _call_intrinsic_1,
    "UNPACK_SEQUENCE": _unpack_sequence, "UNPACK_EX": _unpack_ex,
    # control flow
    "POP_JUMP_IF_TRUE": _pop_jump_if, "POP_JUMP_IF_FALSE": _pop_jump_if,
    "POP_JUMP_IF_NONE": _pop_jump_if, "POP_JUMP_IF_NOT_NONE": _pop_jump_if,
    "POP_JUMP_FORWARD_IF_TRUE": _pop_jump_if, "POP_JUMP_FORWARD_IF_FALSE": _pop_jump_if,
    "POP_JUMP_FORWARD_IF_NONE": _pop_jump_if, "POP_JUMP_FORWARD_IF_NOT_NONE": _pop_jump_if,
    "POP_JUMP_BACKWARD_IF_TRUE": _pop_jump_if, "POP_JUMP_BACKWARD_IF_FALSE": _pop_jump_if,
    "POP_JUMP_BACKWARD_IF_NONE": _pop_jump_if,
    "POP_JUMP_BACKWARD_IF_NOT_NONE": _pop_jump_if,
    "JUMP_IF_TRUE_OR_POP": _jump_if_or_pop, "JUMP_IF_FALSE_OR_POP": _jump_if_or_pop,
    "GET_ITER": _get_iter, "FOR_ITER": _for_iter, "RETURN_VALUE": _return_value,
    "RETURN_CONST": _return_const, "YIELD_VALUE": _yield_value,
    "RAISE_VARARGS": _raise_varargs, "BEFORE_WITH": _before_with,
    # calls
    "MAKE_FUNCTION": _make_function, "CALL": _call, "CALL_FUNCTION_EX": _call_function_ex,
    # Python state outside the frame, or code this analysis does not follow
    "STORE_GLOBAL": _refuse_opcode("assigns a global variable"),
    "DELETE_GLOBAL": _refuse_opcode("deletes a global variable"),
    "STORE_NAME": _refuse_opcode("assigns a name in module or class-body code"),
    "DELETE_NAME": _refuse_opcode("deletes a name in module or class-body code"),
    "LOAD_NAME": _refuse_opcode("reads a name in module or class-body code"),
    "LOAD_CLASSDEREF": _refuse_opcode("reads a name in class-body code"),
    "LOAD_LOCALS": _refuse_opcode("reads locals() in class-body code"),
    "LOAD_FROM_DICT_OR_GLOBALS": _refuse_opcode("reads a name in class-body code"),
    "LOAD_FROM_DICT_OR_DEREF": _refuse_opcode("reads a name in class-body code"),
    "IMPORT_NAME": _refuse_opcode("imports a module"),
    "IMPORT_FROM": _refuse_opcode("imports a name"),
    "IMPORT_STAR": _refuse_opcode("imports *"),
    "LOAD_BUILD_CLASS": _refuse_opcode("defines a class"),
    "SETUP_ANNOTATIONS": _refuse_opcode("sets up annotations"),
    "PRINT_EXPR": _refuse_opcode("prints an expression"),
}
# Not in the table, so refused when met: async code, pattern matching, exception handlers
# (PUSH_EXC_INFO, RERAISE, ...), ``yield from`` (GET_YIELD_FROM_ITER, SEND).
