"""One compiled call's recording: the growing Graph, the tensors bound to its
inputs, in-place writes as functional updates, and flushing pending nodes
through the program cache.

The default mode of DESIGN.md: Python runs every call and tensors are lazy.
Ops append nodes (see :mod:`compgrad.compile.lazy`); tensors from outside the
call (arguments, parameters, optimizer state, ``.grad``) and Python scalars
become graph inputs bound to this call's objects. When Python needs a value,
or the function returns, :meth:`Trace.flush` cuts the pending nodes into a
segment, finds its program by the segment's structure (compiling on a miss),
runs it, writes mutations back into the same tensor objects and gives every
live recorded tensor its data. The Graph keeps growing across flushes, so a
``backward()`` after a flush still differentiates what came before it.
"""

from __future__ import annotations

import sys
import weakref

import numpy as np

from compgrad.autograd.grad_mode import _STATE
from compgrad.compile.failure import stop_at_failure
from compgrad.compile.lazy import LazyGradFn, LazyRef, PendingWrite, user_location
from compgrad.compile.naming import input_name, input_role
from compgrad.compile.saving import values_to_save
from compgrad.compile.segment import SegmentKeys
from compgrad.tensor import OVERLAP_MESSAGE, Tensor
from ir import ops
from ir.dispatch import interpreter
from ir.dtypes import CATEGORY_FLOAT
from ir.graph import Graph, Node, Role, Value, depends_on_any
from ir.interpret import run_node
from ir.opdef import REGISTRY
from ir.types import scalar_type

__all__ = ["Trace"]

_LEAF_INPLACE = ("a leaf Variable that requires grad is being used in an in-place operation.")
_VIEW_OF_LEAF_INPLACE = ("a view of a leaf Variable that requires grad is being used in an "
                         "in-place operation.")


class Trace:
    """The recording of one call of a compiled function (see the module docstring).

    ``runner`` turns a flushed segment into outputs: ``runner(trace, nodes,
    outputs, writes, reason)`` (the compiled function's program cache).
    """

    # (slots: a trace is made per compiled call, and its attributes are read per op)
    __slots__ = ("graph", "backward_cache", "runner", "names", "env", "start", "bound",
                 "written", "written_storage", "hidden", "gen", "lazies", "requires_grad",
                 "leaves", "versions", "freed", "saved_nothing", "originals", "graph_fns",
                 "counts", "final", "side", "_node_index", "_keys", "stale", "escaped",
                 "backward_follows", "landing_held", "mviews", "path", "breaks", "grads_set",
                 "write_log", "error", "pool", "replay", "optimizers", "__weakref__")

    def __init__(self, name: str, runner, names: dict[int, tuple[str, Role]] | None = None,
                 backward_cache=None):
        self.graph = Graph(name)
        self.backward_cache = backward_cache   # the compiled function's derived backwards
        self.runner = runner
        self.names = names or {}
        self.env: dict[Value, object] = {}      # computed values: bound inputs, flushed results
        self.start = 0                          # first node not yet run
        self.bound: dict[int, tuple[Tensor, Value]] = {}   # id(tensor) -> (tensor, its value)
        self.written: dict[int, Tensor] = {}    # outside tensors with a pending write
        self.written_storage: set[int] = set()  # ids of their version counters (storages)
        self.hidden: dict[int, np.ndarray] = {}  # their data, hidden until the write lands
        self.gen: dict[int, int] = {}           # write generation per storage root
        self.lazies: list[weakref.ref] = []     # recorded tensors made since the last flush
        self.requires_grad: set[Value] = set()  # values whose tensor required grad
        self.leaves: dict[Value, Tensor] = {}   # values of leaves that require grad
        self.versions: dict[Value, tuple[list, int]] = {}  # version counter when recorded
        self.freed: set = set()                 # forward nodes whose saved values were freed
        self.saved_nothing: set = set()         # forward nodes whose VJP read no value
        self.originals: set = set()   # (node, input index): an in-place op's own target
        self.graph_fns: set = set()             # grad_fns with tensor hooks or retain_grad
        self.counts = {"scalar": 0, "input": 0}
        self.final = False      # set for the flush at the end of the call
        self.side: dict[Value, object] = {}     # small values computed apart (side_value)
        self._node_index: dict = {}
        self._keys: SegmentKeys | None = None   # the pending segment's key, as it grows
        # leaves whose current value was computed outside autograd (a no_grad write, a
        # requires_grad_() on a computed tensor): cut from their history when read
        self.stale: dict[int, Tensor] = {}
        self.escaped: list[Tensor] = []   # results leaving the call with a recorded grad_fn
        self.backward_follows = False     # whether their backward may still run
        self.landing_held: set = set()    # the flush's held_values (when its writes use them)
        # views made in this call that were given their data at a flush: id -> (weak
        # tensor, its LazyRef). A write through one, or into its root, makes it lazy
        # again, so it keeps following its root as eagerly (see _relazy)
        self.mviews: dict[int, tuple[weakref.ref, LazyRef]] = {}
        self.path: list[int] = []         # programs run, in order (for explain())
        self.breaks: list[str] = []       # why each graph break of this call happened
        # since the last flush: (nodes recorded by then, ...) of each .grad replaced and
        # each write, so a segment that fails when it runs undoes only what came after
        self.grads_set: list[tuple[int, Tensor, Tensor | None]] = []
        self.write_log: list[tuple[int, int, Value, Value]] = []   # (.., root, old, new)
        self.error: Exception | None = None   # a flush failed: the call is over
        # the buffer pool of the program the last flush ran (None: the reference
        # interpreter): writes can land by exchanging buffers with it (_hand_over)
        self.pool = None
        self.replay = None      # a replay.Recorder while reduce-overhead mode watches
        self.optimizers: list = []   # optimizers whose step() this call ran

    def __del__(self) -> None:
        # A node and its outputs point at each other (Node.outputs, Value.node): a cycle
        # per op, freed only by the cyclic GC. All that reads the graph after the call (a
        # lazy grad_fn, a later backward) holds the trace: once the trace goes, cutting
        # the back edges lets reference counting free the nodes and values at once.
        graph = getattr(self, "graph", None)   # (None: __init__ failed before making it)
        for node in graph.nodes if graph is not None else ():
            node.outputs = ()

    def segment_keys(self) -> SegmentKeys:
        """The structural key of the pending segment (``graph.nodes[start:]``), built as
        it grows: a backward's key, then the flush's, key the forward once."""
        self._keys = SegmentKeys.catch_up(self._keys, self.start, self.graph.nodes)
        return self._keys

    def nodes_rewritten(self) -> None:
        """Pending nodes were changed in place (not appended to): key them afresh."""
        self._keys = None

    # --- binding ------------------------------------------------------------------------

    def scalar(self, x) -> Value:
        """A Python scalar operand, lifted to a weak scalar input (its value is not
        part of the program, so a new learning rate compiles nothing)."""
        if isinstance(x, np.generic):
            x = x.item()
        v = self.graph.add_input(scalar_type(x), Role.ARGUMENT, f"s{self.counts['scalar']}")
        self.counts["scalar"] += 1
        self.env[v] = x
        return v

    def value_of(self, t: Tensor, role: Role | None = None) -> Value:
        """The current value of tensor ``t`` in the graph (binding it as an input the
        first time a tensor from outside the call is read)."""
        ref = t._lazy
        if type(ref) is LazyRef:
            if ref.root is not None and ref.gen != self.gen.get(id(ref.root), 0):
                self._refresh_view(t, ref)
            if self.stale and id(t) in self.stale and _STATE.enabled:
                return self._cut(t)
            return ref.value
        if self.written and id(t._version) in self.written_storage and id(t) not in self.written:
            # an alias made outside the call (views share their base's version counter)
            # of a tensor written inside it: run the pending graph so the alias sees the
            # write, then read it afresh
            self.flush(reason="read of a tensor sharing storage with one written in place")
        entry = self.bound.get(id(t))
        if entry is not None and entry[0] is t:
            if self.stale and id(t) in self.stale and _STATE.enabled:
                return self._cut(t)
            return entry[1]
        return self._bind(t, role)

    def _bind(self, t: Tensor, role: Role | None) -> Value:
        known = self.names.get(id(t))
        if role is None:
            role = known[1] if known else input_role(t)
        name = known[0] if known else None
        n = self.counts["input"]
        self.counts["input"] += 1
        v = self.graph.add_input(t._type, role, name or input_name(role, n))
        self.env[v] = object.__getattribute__(t, "_data")
        self.bound[id(t)] = (t, v)
        self.versions[v] = (t._version, t._version[0])
        if t._requires_grad:
            self.requires_grad.add(v)
            if t.grad_fn is None:
                self.leaves[v] = t
        return v

    # --- recorded tensors -----------------------------------------------------------------

    def new_tensor(self, value: Value, requires_grad: bool, node, source: Tensor | None = None,
                   chain_step: tuple | None = None) -> Tensor:
        """A recorded tensor holding ``value`` (the output of ``node``); ``source`` is
        the input a view op aliases."""
        t = Tensor.__new__(Tensor)
        t._device = value.type.device
        t._type_cache = value.type
        t._requires_grad = requires_grad
        t.grad_fn = None
        if source is not None:
            root, chain = self._root_and_chain(source)
            step = chain_step if chain_step is not None else (node.op, node.attrs, value.index)
            t._base = root
            t._version = root._version
            t._lazy = LazyRef(self, value, root, chain + (step,), self.gen.get(id(root), 0))
        else:
            t._base = None
            t._version = [0]
            t._lazy = LazyRef(self, value)
        if requires_grad:
            t.grad_fn = LazyGradFn(self, node, value.index)
            t._output_nr = value.index
            self.requires_grad.add(value)
        self.versions[value] = (t._version, t._version[0])
        self.lazies.append(weakref.ref(t))
        return t

    def _root_and_chain(self, t: Tensor) -> tuple[Tensor, tuple]:
        ref = t._lazy
        if type(ref) is not LazyRef:
            ref = self._materialized_view(t)
        if ref is not None and ref.root is not None:
            return ref.root, ref.chain
        return t, ()

    def _materialized_view(self, t: Tensor) -> LazyRef | None:
        entry = self.mviews.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def _relazy(self, t: Tensor, ref: LazyRef) -> None:
        """Make the materialised view ``t`` lazy again (its root is being written):
        its value is re-derived from the root, and the next flush gives it data that
        is again a view of the root's."""
        del self.mviews[id(t)]
        ref.trace = self
        ref.value = self.bound.pop(id(t))[1]
        t._lazy = ref
        del t._data
        self.lazies.append(weakref.ref(t))

    def alias(self, t: Tensor) -> Tensor:
        """``t.detach()``: a tensor sharing ``t``'s storage that requires no grad."""
        value = self.value_of(t)
        if value in self.requires_grad:
            # its own value (an identity that does not require grad), so gradients
            # never flow through the alias: ``y * y.detach()``
            value = self._append(_RESHAPE, (value,), {"shape": tuple(value.type.shape)})
        out = self.new_tensor(value, False, value.node, source=t, chain_step=(None, None, 0))
        out._detached = True
        return out

    def set_requires_grad(self, t: Tensor, flag: bool) -> None:
        """``t.requires_grad_(flag)`` on a tensor the trace knows (recorded, or bound):
        its value becomes (or stops being) a leaf the symbolic backward reaches."""
        if type(t._lazy) is not LazyRef and id(t) not in self.bound:
            return  # an outside tensor not read yet: binding reads the flag
        prev = _STATE.enabled
        _STATE.enabled = False   # the current value, not a cut one
        try:
            v = self.value_of(t)
        finally:
            _STATE.enabled = prev
        if not flag:
            self.stale.pop(id(t), None)
            self.requires_grad.discard(v)
            self.leaves.pop(v, None)
        elif t.grad_fn is None:
            self._new_leaf(t, v)

    def _new_leaf(self, t: Tensor, v: Value) -> None:
        """``t`` (a leaf that requires grad) now holds ``v``. A value computed from
        values that require grad (a no_grad update of a parameter), or shared with
        another tensor (an alias), is cut from its history at its next read with grad
        enabled, so gradients stop at the leaf as eagerly (see :meth:`_cut`)."""
        node = v.node
        shared = type(t._lazy) is LazyRef and t._lazy.root is not None
        if shared or (node is not None and any(
                type(x) is Value and x in self.requires_grad for x in node.inputs)):
            self.stale[id(t)] = t
            return
        self.stale.pop(id(t), None)
        self.requires_grad.add(v)
        self.leaves[v] = t

    def _cut(self, t: Tensor) -> Value:
        """A fresh value for the stale leaf ``t``: an identity ``reshape`` of a value
        that does not require grad (its current value, or an identity of it when that
        one does), so the symbolic backward reaches it as a leaf and stops there."""
        del self.stale[id(t)]
        ref = t._lazy
        lazy = type(ref) is LazyRef
        new = ref.value if lazy else self.bound[id(t)][1]
        loc = user_location()
        for _ in range(2 if new in self.requires_grad else 1):
            new = self._append(_RESHAPE, (new,), {"shape": tuple(new.type.shape)}, loc)
        if lazy:
            ref.value = new
        else:
            self.bound[id(t)] = (t, new)
        self.versions[new] = (t._version, t._version[0])
        self.requires_grad.add(new)
        self.leaves[new] = t
        return new

    def _refresh_view(self, t: Tensor, ref: LazyRef) -> None:
        # the root was written since this view's value was recorded: read it again
        positions = Tensor._from_array(self.positions(ref))
        grad_on = _STATE.enabled
        _STATE.enabled = grad_on and not t._detached   # a detached alias reads outside autograd
        try:
            fresh = ops.take(ref.root, positions)
        finally:
            _STATE.enabled = grad_on
        ref.value = fresh._lazy.value
        ref.gen = self.gen.get(id(ref.root), 0)
        # a VJP that saves the re-read value checks the view's (shared) version counter
        self.versions[ref.value] = (t._version, t._version[0])
        if fresh._requires_grad and not t._detached:
            t._requires_grad = True
            t.grad_fn = fresh.grad_fn

    def positions(self, ref: LazyRef) -> np.ndarray:
        """Flat indices into the root of each element of the view ``ref`` describes."""
        root_type = ref.root._type
        return LazyRef.replay_chain(ref.chain, np.arange(root_type.numel, dtype=np.int64)
                                  .reshape(root_type.shape))

    # --- in-place writes ------------------------------------------------------------------

    def write(self, target: Tensor, value: Tensor, own_result: bool = True) -> Tensor:
        """``Tensor._write`` while recording: ``target`` takes ``value`` (already
        checked for shape and dtype) as a new SSA value; writes through views update
        the root, and writes to tensors from outside become mutation records
        (``own_result`` as for ``Tensor._write``)."""
        grad_on = _STATE.enabled
        ref = target._lazy
        if ref is None and (mview := self._materialized_view(target)) is not None:
            self._relazy(target, mview)
            ref = mview
        lazy = type(ref) is LazyRef
        root = ref.root if lazy else None
        if grad_on:
            if target._requires_grad and target.grad_fn is None and root is None \
                    and target._base is None:
                raise RuntimeError(_LEAF_INPLACE)
            if root is not None and not target._detached and root._requires_grad \
                    and root.grad_fn is None:
                raise RuntimeError(_VIEW_OF_LEAF_INPLACE)
        if not lazy and target._base is not None:
            return self._write_outside_view(target, value)
        # (the types, not the dtype and shape properties: those build objects, per write)
        target_type = target._type
        if value._type.dtype is not target_type.dtype:
            value = ops.to_dtype(value, target_type.dtype)
        if value._type.shape != target_type.shape:
            value = ops.expand(value, target_type.shape)
        new = self.value_of(value)
        if own_result:
            self._keep_original(target, new)
        elif new in self.versions:
            # a copy_ of a tensor's value: the target gets an SSA value of its own, so a
            # saved-value check reads the version of the tensor saved (as eagerly, where
            # they are two tensors), not of the one written last
            new = self._glue(_STRAIGHT_THROUGH, new, new, new in self.requires_grad)
        requires_grad = grad_on and target_type.dtype.category == CATEGORY_FLOAT and (
            value._requires_grad or (target._requires_grad and not target._detached))
        # a write outside autograd (no_grad, or through a detach() alias) into a tensor
        # with history keeps that history, as eagerly: the new data, the old gradient path
        outside = not (grad_on and not target._detached)
        glued = False
        if root is not None:
            old_root = self.value_of(root) if outside and _has_history(root) else None
            old_view = self.value_of(target) if outside and _has_history(target) else None
            positions = self.positions(ref)
            if positions.size > 1 and np.unique(positions).size != positions.size:
                raise RuntimeError(OVERLAP_MESSAGE)
            # a write through a detached alias is outside autograd: the root keeps its
            # grad_fn (a leaf stays a leaf), as eagerly
            _STATE.enabled = grad_on and not target._detached
            try:
                flat = ops.index_put(ops.reshape(root, (-1,)),
                                     (Tensor._from_array(positions.reshape(-1)),),
                                     ops.reshape(value, (-1,)))
                new_root = ops.reshape(flat, tuple(root.shape))
            finally:
                _STATE.enabled = grad_on
            root_value = new_root._lazy.value
            if old_root is not None and not new_root._requires_grad:
                root_value = self._straight_through(root_value, old_root)
            self._set_root(root, root_value)
            if new_root._requires_grad:
                root._requires_grad = True
                root.grad_fn = new_root.grad_fn
                self.requires_grad.add(new_root._lazy.value)
            elif root._requires_grad and root.grad_fn is None:
                self._new_leaf(root, new_root._lazy.value)
            if old_view is not None:
                new = self._straight_through(new, old_view)
            ref.value = new
            ref.gen = self.gen[id(root)]
        else:
            if outside and _has_history(target):
                new = self._straight_through(new, self.value_of(target))
            elif not outside and _has_history(target) and (
                    not value._requires_grad or not own_result):
                # as eager's: a copy_ keeps an edge to the old history (CopyBackwards)
                new = self._glue(_OVERWRITE, self.value_of(target), new)
                glued = True
            self._set_root(target, new)
        target._version[0] += 1
        self.versions[new] = (target._version, target._version[0])
        if requires_grad:
            target._requires_grad = True
            target.grad_fn = value.grad_fn if value.grad_fn is not None and not glued \
                else LazyGradFn(self, new.node, new.index)
            self.requires_grad.add(new)
        elif not outside and target.grad_fn is not None:
            target.grad_fn = None
            target._requires_grad = False
        elif root is None and target._requires_grad and target.grad_fn is None:
            self._new_leaf(target, new)   # a leaf written outside autograd stays a leaf
        return target

    def _straight_through(self, new: Value, old: Value) -> Value:
        return self._glue(_STRAIGHT_THROUGH, new, old)

    def _glue(self, op, first: Value, second: Value, requires_grad: bool = True) -> Value:
        # a node of straight_through / overwrite: autograd's glue of an in-place write
        out = self._append(op, (first, second), {})
        if requires_grad:
            self.requires_grad.add(out)
        return out

    def _append(self, op, inputs: tuple, attrs: dict, loc: str | None = None) -> Value:
        """Append a node of ``op`` whose output has the type of its first input (the
        identities and glue the trace adds itself); its value."""
        node = Node(op, inputs, attrs, (inputs[0].type,), loc or user_location())
        self.graph.nodes.append(node)
        return node.outputs[0]

    def _keep_original(self, target: Tensor, new: Value) -> None:
        # the op computing the written value (``x.mul_(w)``) read the target's value
        # before the write: as eager autograd keeps that original, its VJP may read it
        # whatever the version counter says (SSA values never change)
        node = new.node
        if node is None:
            return
        ref = target._lazy
        if type(ref) is LazyRef:
            old = ref.value
        else:
            entry = self.bound.get(id(target))
            old = entry[1] if entry is not None and entry[0] is target else None
        for i, x in enumerate(node.inputs):
            if x is old:
                self.originals.add((node, i))

    def _set_root(self, root: Tensor, value: Value) -> None:
        key = id(root)
        self.gen[key] = self.gen.get(key, 0) + 1
        for vkey, (tref, vref) in list(self.mviews.items()) if self.mviews else ():
            if vref.root is root and (view := tref()) is not None and view._lazy is None:
                self._relazy(view, vref)   # it re-reads the root's new value when used
            elif tref() is None:
                del self.mviews[vkey]
        ref = root._lazy
        if type(ref) is LazyRef:
            old = ref.value
            ref.value = value
            ref.gen = self.gen[key]
        else:
            if key not in self.written:
                target = self.value_of(root)  # bound, so the mutation has a target input
                root._type_cache = root._type
                self.hidden[key] = object.__getattribute__(root, "_data")
                del root._data
                root._lazy = PendingWrite(self)
                self.written[key] = (root, target)
                self.written_storage.add(id(root._version))
            old = self.bound[key][1]
            self.bound[key] = (root, value)
        self.write_log.append((len(self.graph.nodes), key, old, value))

    def _write_outside_view(self, target: Tensor, value: Tensor) -> Tensor:
        # a view made outside the call: its aliasing is NumPy's, not recorded; run the
        # pending graph and write eagerly (a graph break)
        self.flush(reason="in-place write into a view made outside the compiled function")
        from compgrad._eager import EAGER
        with interpreter(EAGER):
            value._data  # noqa: B018 - computes it if it is still pending
            return target._write(value)

    # --- running ----------------------------------------------------------------------------

    SIDE_MAX_NODES = 32
    SIDE_MAX_NUMEL = 256

    def side_value(self, value: Value):
        """``value`` computed apart from the pending graph when it needs only a few
        small pending nodes (else None). SSA values never change, so results are
        remembered for the rest of the call."""
        if value in self.env:
            return self.env[value]
        side = self.side
        cone, stack, seen = [], [value], set()
        while stack:
            v = stack.pop()
            if v in seen or v in self.env or v in side:
                continue
            seen.add(v)
            node = v.node
            if node is None or len(cone) >= self.SIDE_MAX_NODES or any(
                    o.type.numel > self.SIDE_MAX_NUMEL for o in node.outputs):
                return None
            cone.append(node)
            stack.extend(x for x in node.inputs if type(x) is Value)
        for node in sorted(set(cone), key=self._position):
            args = [self.env[x] if x in self.env else side[x] if type(x) is Value else x
                    for x in node.inputs]
            side.update(zip(node.outputs, run_node(node, args)))
        return side[value]

    def _position(self, node) -> int:
        index = self._node_index
        if node not in index:
            for i, n in enumerate(self.graph.nodes[len(index):], start=len(index)):
                index[n] = i
        return index[node]

    def pending(self) -> bool:
        return self.start < len(self.graph.nodes) or bool(self.written) or bool(self.lazies)

    def flush(self, reason: str) -> None:
        """Run the pending nodes as one program and give live tensors their data."""
        recorded = len(self.lazies)
        alive = [t for r in self.lazies if (t := r()) is not None and t._lazy is not None]
        for t in alive:
            if self.stale or t._lazy.root is not None:   # (else value_of changes nothing)
                self.value_of(t)  # refresh stale views before the segment is cut
        nodes = self.graph.nodes[self.start:]
        # (from the call's first node, every value a node computed is this segment's)
        produced = {o for n in nodes for o in n.outputs} if self.start else None
        outputs: list[Value] = []
        seen: set[Value] = set()

        def keep(v):
            if (v in produced if produced is not None else v.node is not None) \
                    and v not in seen:
                seen.add(v)
                outputs.append(v)

        for t in alive:
            keep(t._lazy.value)
        saved = None
        if self.requires_grad and self.final and self.start == 0 and not self.freed \
                and not self.saved_nothing:
            # the whole call is this segment and no backward ran in it: keep for the
            # backward of the escaping results what a min-cut chooses (saving.py)
            saved = values_to_save(self, nodes, [
                t._lazy.value for t in alive if isinstance(t.grad_fn, LazyGradFn)])
        if saved is not None:
            for v in saved:
                keep(v)
        elif self.requires_grad:
            # values a later backward may read (the saved tensors eager autograd keeps)
            rg = self.requires_grad
            freed = self.freed
            nothing = self.saved_nothing
            for n in nodes:
                # (most nodes of a training step compute no value that requires grad: the
                # backward's and the optimizer's; that test comes first)
                if not rg.isdisjoint(n.outputs) and n.op.differentiable and n not in freed \
                        and n not in nothing:
                    for x in n.inputs:
                        if type(x) is Value:
                            keep(x)
                    for o in n.outputs:
                        keep(o)
        writes = []
        for key, (root, target) in self.written.items():
            value = self.bound[key][1]
            keep(value)
            writes.append((root, target, value))
        if self.error is not None:
            raise self.error   # this call already failed: its pending work cannot run
        if self.final:
            # results leaving the call with a recorded grad_fn (escape.attach_backward)
            self.escaped = [t for t in alive if isinstance(t.grad_fn, LazyGradFn)]
            self.backward_follows = self.backward_may_follow(
                [t._lazy.value for t in self.escaped])
        # read by the program's in-place permission (compile.api) and by the landing
        self.landing_held = self.held_values(alive, recorded) if writes and self.values_final \
            else set()
        try:
            results = self.runner(self, nodes, outputs, writes, reason) if (nodes or writes) \
                else {}
        except Exception as e:
            self.error = e
            stop_at_failure(self, alive)
            raise
        self.grads_set = []
        self.write_log = []
        self.env.update(results)
        del results   # (its references would keep _hand_over from landing a write)
        self.start = len(self.graph.nodes)
        # values computed so far are read again after a graph break, or by the backward
        # of results leaving the call: landing a write must not change them
        if writes or self.written_storage:
            self._land_writes(writes, keep_env=not self.values_final)
        self._materialize(alive)
        self.lazies = []

    def backward_may_follow(self, values: list[Value]) -> bool:
        """Whether a backward through ``values`` (results leaving the call) could still
        run after it: not when a backward inside the call freed what theirs reads (a
        training step's loss), where eagerly a second backward raises."""
        if not values:
            return False
        if self.freed and depends_on_any(values, self.freed):
            return False
        return True

    @property
    def values_final(self) -> bool:
        """Whether the segment being flushed is the call's last and nothing reads its SSA
        values again (no backward of an escaping result): its program may then write an
        update into the updated tensor's own storage (``codegen.inplace``) unless a live
        tensor of the call holds the new value (``landing_held``)."""
        return self.final and not self.backward_follows

    def held_values(self, alive: list[Tensor], recorded: int) -> set:
        """The values the call's live recorded tensors hold (a write of one of them lands
        by copying: the tensor and the written storage must stay two arrays). A flush
        keeps them, for its writes, in ``landing_held``. ``alive``: the live ones of the
        first ``recorded`` tensors (as the flush found them; later ones are looked at
        here: refreshing a view records)."""
        held = {t._lazy.value for t in alive if t._lazy is not None}
        held.update(t._lazy.value for r in self.lazies[recorded:] if (t := r()) is not None
                    and t._lazy is not None)
        return held

    def _land_writes(self, writes, keep_env: bool) -> None:
        env = self.env
        held = set() if keep_env else self.landing_held
        for root, _target, value in writes:
            key = id(root)
            data = self.hidden.pop(key)
            if keep_env:
                # SSA values never change: one whose array is (a view of) the storage
                # about to be overwritten keeps a copy of what it held
                for table in (env, self.side):
                    for v, arr in table.items():
                        if isinstance(arr, np.ndarray) and np.may_share_memory(arr, data):
                            table[v] = arr.copy()
            new = self.env[value]
            if new is data:
                root._data = data   # the program wrote the storage in place (codegen.inplace)
            elif keep_env or not self._hand_over(root, data, new, value, held):
                root._data = data
                np.copyto(data, new, casting="unsafe")
            del new
            root._lazy = None
            del self.written[key]
            if not self.final:
                # outside aliases of the root read before the write: bind afresh when read
                for t, v in list(self.bound.values()):
                    if t is not root and v.node is None and t._version is root._version:
                        del self.bound[id(t)]
            if root.grad_fn is not None:
                # its value has autograd history in this trace: keep reading that value
                self.bound[key] = (root, value)
            else:
                del self.bound[key]   # the next read binds the written data afresh
                self.stale.pop(key, None)
        if not self.written:
            self.written_storage.clear()

    def _hand_over(self, root: Tensor, data: np.ndarray, new, value: Value, held: set) -> bool:
        """Land a write without copying: ``root`` takes the program's result buffer
        ``new`` and the program's pool takes ``data``, its old storage, for the next call
        to write into (a W1 step lands 12 parameter and momentum writes, 2.7 MB each way,
        this way). Only when nothing could tell: the call is over (no SSA value is read
        again), no tensor of the call holds ``value``, and the reference counts show
        nothing but this trace holds either array -- no view, alias or ``.numpy()``
        array of the storage (they must see the write in place), no other value on the
        buffer. ``held``: the values of the call's live recorded tensors."""
        if self.pool is None or type(new) is not np.ndarray or new.base is not None \
                or new.shape != data.shape or new.dtype != data.dtype \
                or not data.flags.owndata or not data.flags.writeable \
                or not data.flags.c_contiguous:
            return False
        if value in held:
            return False
        in_data = in_new = 0     # references from the trace's tables
        for table in (self.env, self.side):
            for a in table.values():
                if a is data:
                    in_data += 1
                elif a is new:
                    in_new += 1
        # and the caller's local, this argument and getrefcount's own; for ``new`` also
        # the pool's list (no closure may capture either: a cell is one more)
        if sys.getrefcount(data) != 3 + in_data or sys.getrefcount(new) != 4 + in_new:
            return False
        if not self.pool.exchange(new, data):
            return False
        root._data = new
        return True

    def _materialize(self, alive: list[Tensor]) -> None:
        views = []
        for t in alive:
            ref = t._lazy
            if ref.root is not None:
                views.append(t)
                continue
            arr = self.env[ref.value]
            # a tensor that is not a view owns writable memory, as eagerly (a .grad
            # made by backward may be a broadcast; a later accumulation writes it)
            owned = isinstance(arr, np.ndarray) and arr.flags.writeable \
                and not _aliases_input(ref.value, arr, self.env)
            t._data = arr if owned or not isinstance(arr, np.ndarray) else arr.copy()
            t._lazy = None
            self.bound[id(t)] = (t, ref.value)
        for t in views:
            ref = t._lazy
            t._data = self._view_data(ref)
            t._lazy = None
            self.bound[id(t)] = (t, ref.value)
            ref.trace = None   # until _relazy (else a cycle: the trace holds the ref)
            self.mviews[id(t)] = (weakref.ref(t), ref)

    def _view_data(self, ref: LazyRef) -> np.ndarray:
        # replay the view chain on the root's real array, so the view shares its storage
        root_data = object.__getattribute__(ref.root, "_data")
        arr = LazyRef.replay_chain(ref.chain, root_data)
        want = self.env.get(ref.value)
        if want is None:   # not computed (a segment failed after it was recorded)
            return arr
        if arr.shape != want.shape or arr.dtype != want.dtype or not np.shares_memory(
                arr, root_data):
            return np.array(want)
        return arr


_RESHAPE = REGISTRY["reshape"]
_STRAIGHT_THROUGH = REGISTRY["straight_through"]
_OVERWRITE = REGISTRY["overwrite"]


def _has_history(t: Tensor) -> bool:
    """Whether ``t`` is a non-leaf with autograd history (float, not a detached alias)."""
    return t._requires_grad and t.grad_fn is not None and not t._detached \
        and t.dtype.category == CATEGORY_FLOAT

def _aliases_input(value: Value, arr, env) -> bool:
    # results of non-view ops must own their memory (an in-place op on them must not
    # reach an input), as eager results do
    node = value.node
    if node is None or not isinstance(arr, np.ndarray):
        return False
    for x in node.inputs:
        if type(x) is Value and isinstance(a := env.get(x), np.ndarray) \
                and np.may_share_memory(arr, a):
            return True
    return False
