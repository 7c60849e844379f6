"""When a flushed segment raises as it runs (an error that depends on data): what of
the call's recorded work happened, as eagerly, and what did not."""

from __future__ import annotations

from compgrad.tensor import Tensor
from ir.graph import Value
from ir.interpret import run_node

__all__ = ["stop_at_failure"]


def stop_at_failure(trace, alive: list[Tensor]) -> None:
    """The pending segment raised when it ran (an error that depends on data, such
    as an index out of range): as eagerly, what was recorded before the failing op
    happened and nothing after it did. The nodes run one by one up to the failing
    one; writes and ``.grad`` assignments recorded before it land, later ones are
    undone, and tensors computed before it get their data."""
    env = trace.env
    nodes = trace.graph.nodes
    failed = len(nodes)
    for i in range(trace.start, len(nodes)):
        node = nodes[i]
        try:
            outs = run_node(node, [env[x] if type(x) is Value else x for x in node.inputs])
        except Exception:  # noqa: BLE001 - the runner's error is the one raised
            failed = i
            break
        env.update(zip(node.outputs, outs))
    trace.start = len(nodes)
    at_failure: dict[int, Value] = {}   # each written root's value when it failed
    for pos, key, old, new in trace.write_log:
        if pos <= failed:
            at_failure[key] = new
        else:
            at_failure.setdefault(key, old)
    writes = []
    for key, (root, target) in list(trace.written.items()):
        if at_failure[key] is not target:
            writes.append((root, target, at_failure[key]))
        else:
            root._data = trace.hidden.pop(key)
            root._lazy = None
            trace.bound[key] = (root, target)
            del trace.written[key]
    for t in alive:
        if t._lazy.root is None and id(t) in at_failure:
            t._lazy.value = at_failure[id(t)]
    for pos, var, old in reversed(trace.grads_set):
        if pos > failed:
            var._grad = old
    trace.grads_set = []
    trace.write_log = []
    trace._land_writes(writes, keep_env=True)
    # a view takes its root's data (whatever value it was given after the failure)
    done = [t for t in alive if (t._lazy.value in env if t._lazy.root is None
                                 else t._lazy.root._lazy is None)]
    trace._materialize(done)
    trace.lazies = [r for r in trace.lazies if (t := r()) is not None and t._lazy is not None]
