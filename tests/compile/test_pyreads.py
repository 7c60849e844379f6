"""compgrad.compile.pyreads: the analysis of the user's Python behind replay.

Each test runs a plain function (or a small compgrad training step) through
``observe`` and checks the verdict: replayable with guards that notice the
relevant change, or refused with a reason naming the file, line and what was
seen. ``observe`` must never change what the function does.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import operator
import random
import sys
import time
import types

import numpy as np
import pytest

import compgrad
from compgrad import nn, optim
from compgrad.compile.pyreads import Guard, Observation, observe

HERE = "test_pyreads.py"

SCALE = 0.5
LOG: list = []
COUNTER = 0
TABLE = {"lr": 0.1, "momentum": 0.9}
WEIGHTS = [1.0, 2.0, 3.0]


def _obs(fn, *args, **kwargs) -> tuple[object, Observation]:
    result, obs = observe(fn, args, kwargs)
    assert sys.gettrace() is None and sys.getprofile() is None
    return result, obs


def _replayable(fn, *args, **kwargs) -> tuple[object, Observation]:
    result, obs = _obs(fn, *args, **kwargs)
    assert obs.refusal is None, obs.refusal
    assert obs.check(args, kwargs)
    assert all(isinstance(g, Guard) and g.check(args, kwargs) for g in obs.guards)
    return result, obs


def _refused(fn, *args, **kwargs) -> str:
    _, obs = _obs(fn, *args, **kwargs)
    assert obs.refusal is not None, f"replayable with {obs.describe()}"
    assert obs.check(args, kwargs) is False
    assert obs.describe() == [f"not replayable: {obs.refusal}"]
    return obs.refusal


def _line(fn, offset: int) -> str:
    """``test_pyreads.py:N`` for the line ``offset`` lines after ``def fn``."""
    return f"{HERE}:{fn.__code__.co_firstlineno + offset}"


# --- training steps ---------------------------------------------------------------------------

def train_step(model, loss_fn, opt, x, y):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu())


class ScaledNet(Net):
    scale = 2.0

    def forward(self, x):
        return super().forward(x) * self.scale


def _mlp():
    compgrad.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def _data():
    compgrad.manual_seed(1)
    return compgrad.randn(16, 4), compgrad.randn(16, 1)


def _params(model) -> list[np.ndarray]:
    return [np.array(p.detach().numpy()) for p in model.parameters()]


def test_sequential_training_step_is_replayable_and_unchanged():
    x, y = _data()
    plain_model, watched_model = _mlp(), _mlp()
    plain_opt = optim.SGD(plain_model.parameters(), lr=0.1)
    watched_opt = optim.SGD(watched_model.parameters(), lr=0.1)
    for _ in range(2):
        expected = train_step(plain_model, nn.MSELoss(), plain_opt, x, y)
        args = (watched_model, nn.MSELoss(), watched_opt, x, y)
        loss, obs = _replayable(train_step, *args)
        assert obs.check(args, {})          # twice: guards do not consume anything
        np.testing.assert_array_equal(loss.detach().numpy(), expected.detach().numpy())
    for a, b in zip(_params(plain_model), _params(watched_model)):
        np.testing.assert_array_equal(a, b)


def test_user_module_subclass_is_replayable():
    x, y = _data()
    compgrad.manual_seed(0)
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    _, obs = _replayable(train_step, model, nn.MSELoss(), opt, x, y)
    # the submodules come from Module._modules; the user class is guarded not to
    # shadow them with class attributes
    assert any("class Net has no attribute 'fc1'" in d for d in obs.describe())


def test_user_class_attribute_of_a_module_is_guarded():
    x, y = _data()
    compgrad.manual_seed(0)
    model = ScaledNet()
    opt = optim.SGD(model.parameters(), lr=0.1)
    args = (model, nn.MSELoss(), opt, x, y)
    _, obs = _replayable(train_step, *args)
    assert any("ScaledNet.scale is 2.0" in d for d in obs.describe())
    try:
        ScaledNet.scale = 3.0
        assert not obs.check(args, {})
    finally:
        ScaledNet.scale = 2.0
    assert obs.check(args, {})
    model.scale = 5.0                 # an instance attribute now shadows the class's
    try:
        assert not obs.check(args, {})
    finally:
        object.__delattr__(model, "scale")


def test_no_grad_block_and_tensor_methods():
    def step(model, x):
        with compgrad.no_grad():
            y = model(x).sum()
        return y * 2

    x, _ = _data()
    _replayable(step, _mlp(), x)


# --- guards -------------------------------------------------------------------------------

def scaled(x):
    return x * SCALE


def test_global_hyperparameter_is_guarded():
    global SCALE
    x, _ = _data()
    out, obs = _replayable(scaled, x)
    np.testing.assert_allclose(out.numpy(), x.numpy() * 0.5)
    assert obs.describe() == [f"global SCALE of {__name__} is 0.5 (read at "
                              f"{_line(scaled, 1)})"]
    try:
        SCALE = 0.25
        assert not obs.check((x,), {})
        SCALE = 0.5                    # an equal float again: compared by value
        assert obs.check((x,), {})
    finally:
        SCALE = 0.5


def _make_closure(factor):
    def step(x):
        return x * factor
    return step


def test_closure_cell_is_guarded():
    step = _make_closure(3.0)
    _, obs = _replayable(step, 2.0)
    assert obs.describe() == [f"closure variable factor of _make_closure.<locals>.step is "
                              f"3.0 (read at {_line(step, 1)})"]
    step.__closure__[0].cell_contents = 4.0
    assert not obs.check((2.0,), {})


def cfg_step(x, cfg):
    return x * cfg.scale + cfg.shift


class Config:
    def __init__(self, scale, shift=0.0):
        self.scale = scale
        self.shift = shift


CFG_OBJ = Config(1.0)


@pytest.mark.parametrize("make", [Config, types.SimpleNamespace])
def test_config_object_argument_is_guarded(make):
    cfg = make(scale=2.0, shift=1.0)
    out, obs = _replayable(cfg_step, 3.0, cfg)
    assert out == 7.0
    assert obs.check((3.0, cfg), {})
    cfg.scale = 2.5
    assert not obs.check((3.0, cfg), {})
    cfg.scale = 2.0
    assert obs.check((3.0, cfg), {})
    assert not obs.check((3.0, make(scale=2.0, shift=1.0)), {})   # another object


def test_class_attribute_added_later_fails_the_guard():
    cfg = Config(2.0)
    _, obs = _replayable(cfg_step, 1.0, cfg)
    try:
        Config.scale = property(lambda self: 9.0)   # would shadow the instance value
        assert not obs.check((1.0, cfg), {})
    finally:
        del Config.scale


def helper(x):
    return x + 1


def calls_helper(x):
    return helper(x) * 2


def test_rebinding_a_global_function_fails_the_guard():
    global helper
    _, obs = _replayable(calls_helper, 1)
    original = helper
    try:
        helper = lambda x: x + 2  # noqa: E731
        assert not obs.check((1,), {})
    finally:
        helper = original
    assert obs.check((1,), {})


def reads_table_and_weights(x):
    total = 0.0
    for i, w in enumerate(WEIGHTS):
        total += w * i
    return x * TABLE.get("lr") + total + len(WEIGHTS) + max(WEIGHTS)


def test_contents_of_outside_containers_are_guarded():
    out, obs = _replayable(reads_table_and_weights, 1.0)
    assert out == 1.0 * 0.1 + 8.0 + 3 + 3.0
    WEIGHTS.append(4.0)
    try:
        assert not obs.check((1.0,), {})
    finally:
        WEIGHTS.pop()
    assert obs.check((1.0,), {})
    TABLE["lr"] = 0.2
    try:
        assert not obs.check((1.0,), {})
    finally:
        TABLE["lr"] = 0.1


def test_a_builtin_shadowed_later_fails_the_guard():
    def step(xs):
        return len(xs)

    xs = [1, 2]
    _, obs = _replayable(step, xs)
    assert obs.describe() == [f"len is the builtin (read at {_line(step, 1)})", "argument 0 "
                              "is the same list object", f"a list of 2 items read at "
                              f"{_line(step, 1)} is unchanged"]
    step.__globals__["len"] = lambda xs: 0
    try:
        assert not obs.check((xs,), {})
    finally:
        del step.__globals__["len"]
    assert obs.check((xs,), {})


# --- patterns that stay replayable -------------------------------------------------------------

@dataclasses.dataclass
class Batch:
    x: object
    scale: float = 1.0


def local_objects(x, n):
    out = []
    for i in range(n):
        out.append(x * (i + 1))
    table = {"a": out[0], "b": out[-1]}
    squares = [v * v for v in out]
    total = sum(v for v in squares)
    b = Batch(x, scale=2.0)
    b.scale = b.scale * 3
    label = f"{n:03d}-{len(out)}"
    return total + table["b"] * b.scale, label, math.sqrt(4.0), isinstance(x, float)


def test_objects_made_in_the_call_need_no_guards():
    out, obs = _replayable(local_objects, 2.0, 3)
    assert out == local_objects(2.0, 3)
    # only the names the code looks up (builtins, globals, the dataclass's default) are
    # guarded: nothing about the list, dict, dataclass instance or strings made here
    assert not [d for d in obs.describe() if any(w in d for w in ("list", "dict", "item",
                                                                 "argument", "Batch.x"))]
    assert f"class attribute Batch.scale is 1.0 (read at {_line(local_objects, 8)})" \
        in obs.describe()


def test_helper_function_gets_the_callers_provenance():
    def get_scale(c):
        return c.scale

    def step(x, cfg):
        return x * get_scale(cfg)

    cfg = Config(3.0)
    _, obs = _replayable(step, 2.0, cfg)
    cfg.scale = 1.0
    assert not obs.check((2.0, cfg), {})


# --- refusals --------------------------------------------------------------------------------

def test_print_refuses(capsys):
    def step(x):
        print("loss", x)
        return x

    assert _refused(step, 1) == (f"calls print() ({_line(step, 1)}), a C function that is "
                                 "not known to be side-effect free")
    assert capsys.readouterr().out == "loss 1\n"      # it still ran


@pytest.mark.parametrize("fn, reason", [
    (lambda x: x * random.random(), "calls random.Random.random() ({}), a C function that is "
     "not known to be side-effect free"),
    (lambda x: x * random.randint(1, 3), "calls random.Random.randint ({}); standard-library "
     "Python is not analysed"),
    (lambda x: x + time.time(), "calls time.time() ({}), a C function that is not known to "
     "be side-effect free"),
])
def test_python_randomness_and_time_refuse(fn, reason):
    assert _refused(fn, 1.0) == reason.format(_line(fn, 0))


def test_append_to_an_outside_list_refuses():
    def step(x):
        LOG.append(x)
        return x

    assert _refused(step, 1) == f"calls list.append on a list from outside the call " \
                                f"({_line(step, 1)})"
    assert LOG == [1]
    LOG.clear()


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.count = 0

    def forward(self, x):
        self.count += 1
        return self.fc(x)


def test_store_attr_refuses():
    x, y = _data()
    model = Counting()
    opt = optim.SGD(model.parameters(), lr=0.1)
    reason = _refused(train_step, model, nn.MSELoss(), opt, x, y)
    assert reason == (f"assigns the attribute .count of a Counting from outside the call "
                      f"({_line(Counting.forward, 1)})")
    assert model.count == 1


def test_global_statement_refuses():
    def step(x):
        global COUNTER
        COUNTER += 1
        return x

    assert _refused(step, 1) == f"assigns a global variable ({_line(step, 2)})"
    assert COUNTER == 1


def test_nonlocal_write_refuses():
    def make():
        calls = 0

        def step(x):
            nonlocal calls
            calls += 1
            return x
        return step

    step = make()
    assert _refused(step, 1) == (f"assigns the variable 'calls' of an enclosing function "
                                 f"(nonlocal, {_line(step, 2)})")


def test_user_generator_refuses():
    def items(n):
        for i in range(n):  # noqa: UP028 - a plain yield, as most generators
            yield i

    def step(n):
        return sum(items(n))

    def delegating(n):
        yield from range(n)

    assert _refused(step, 3) == ("runs the user generator test_user_generator_refuses."
                                 f"<locals>.items ({_line(items, 2)}); generators are not "
                                 "analysed")
    assert _refused(lambda n: list(delegating(n)), 3).startswith(
        "the opcode GET_YIELD_FROM_ITER is not analysed (")


class PropertyConfig:
    def __init__(self):
        self._scale = 2.0

    @property
    def scale(self):
        return self._scale


def test_user_property_refuses():
    def step(x, cfg):
        return x * cfg.scale

    assert _refused(step, 1.0, PropertyConfig()) == (
        f"reads the property PropertyConfig.scale ({_line(step, 1)}); a user property "
        "would run user code a replay cannot re-check")


def test_active_tracer_refuses():
    sys.settrace(lambda frame, event, arg: None)
    try:
        result, obs = observe(scaled, (2.0,), {})
        assert sys.gettrace() is not None          # left as it was
    finally:
        sys.settrace(None)
    assert result == 1.0
    assert obs.refusal == ("a Python tracer or profiler is active (a debugger or coverage); "
                           "the step's Python cannot be watched")


def test_attribute_of_an_unknown_receiver_refuses():
    def step(cfgs):
        return max(cfgs, key=id).scale

    assert _refused(step, [Config(1.0), Config(2.0)]) == (
        f"reads .scale of a value the analysis does not know ({_line(step, 1)})")


class Holder(nn.Module):
    def forward(self, x, cfg):
        return x * cfg.scale


def test_arguments_keep_their_provenance_through_library_calls():
    def made_here(model, x):
        return model(x, Config(2.0))      # made in the call: reading it needs no guard

    def from_a_list(model, x, box):
        return model(x, box[0])           # a guarded item of an argument

    _replayable(made_here, Holder(), 1.0)
    box = [Config(2.0)]
    _, obs = _replayable(from_a_list, Holder(), 1.0, box)
    box[0].scale = 3.0
    assert not obs.check((Holder(), 1.0, box), {})


def test_attribute_of_an_unpinned_object_refuses():
    def step(model, x, *cfgs):
        return model(x, cfgs[0])          # *args keep no provenance

    assert _refused(step, Holder(), 1.0, Config(2.0)) == (
        "reads .scale of a Config object that was not reached from an argument, a global "
        f"or a closure variable ({_line(Holder.forward, 1)})")


def _writes_item(x):
    TABLE["n"] = x


def _imports(x):
    import os  # noqa: F401


def _np_random(x):
    return x * np.random.rand()


def _catches(x):
    try:
        return x / 0
    except ZeroDivisionError:
        return x


def _calls_getattr(cfg, name="scale"):
    return getattr(cfg, name)


def _advances(it):
    return next(it)


@pytest.mark.parametrize("fn, arg, reason", [
    (_writes_item, 1, "assigns an item of a dict from outside the call ({1})"),
    (_imports, 1, "imports a module ({1})"),
    (_np_random, 1.0, "calls numpy.random.RandomState.rand ({1}), a "),
    (_catches, 1, "an exception raised at {2} is caught in user code; exception handling "
     "is not analysed"),
    (_calls_getattr, CFG_OBJ, "calls getattr() ({1}), a C function that is not known to "
     "be side-effect free"),
    (_advances, iter([1, 2]), "advances an iterator made before the call ({1})"),
])
def test_more_refusals(fn, arg, reason):
    lines = [_line(fn, k) for k in range(3)]
    assert _refused(fn, arg).startswith(reason.format(*lines))
    TABLE.pop("n", None)


# --- the analyser never changes what runs ---------------------------------------------------

def test_exceptions_propagate_and_tracers_are_removed():
    def step(x):
        return helper(x) / 0

    with pytest.raises(ZeroDivisionError):
        observe(step, (1,), {})
    assert sys.gettrace() is None and sys.getprofile() is None

    def raises_inside_library(model, x):
        def hook(module, args, output):
            raise LookupError("from a hook")
        model.register_forward_hook(hook)
        return model(x)

    x, _ = _data()
    with pytest.raises(LookupError, match="from a hook"):
        observe(raises_inside_library, (_mlp(), x), {})
    assert sys.gettrace() is None and sys.getprofile() is None


def test_refused_calls_still_run_completely():
    seen = []

    def step(x):
        for i in range(3):
            seen.append(i)        # refused at the first append; the rest runs untraced
        return x * 2

    result, obs = observe(step, (4,), {})
    assert result == 8 and seen == [0, 1, 2] and obs.refusal is not None


def test_results_and_effects_match_a_plain_call():
    def step(xs, cfg):
        out = [v * cfg.scale for v in xs]
        first, *rest = out
        acc = 0
        for (a, b), c in zip(((1, 2), (3, 4)), (cfg.scale, cfg.shift)):
            acc += a * b * c
        return sorted(out, reverse=True), {k: v for k, v in zip("abc", out)}, first, acc

    cfg = Config(1.5, 2.0)
    assert _replayable(step, [3, 1, 2], cfg)[0] == step([3, 1, 2], cfg)


# --- a realistic step ----------------------------------------------------------------------

@dataclasses.dataclass
class Hyper:
    clip: float = 1.0
    weights: tuple = (1.0, 0.5)


Affine = collections.namedtuple("Affine", "scale shift")


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.d = d

    def forward(self, x):
        h = nn.functional.relu(self.lin(x)) / math.sqrt(self.d)
        return self.norm(x + h)


class Stack(nn.Module):
    def __init__(self, d=8, n=3):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(n)])
        self.head = nn.Linear(d, 1)

    def forward(self, x):
        feats = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i % 2 == 0:
                feats.append(x)
        out = self.head(x).view(x.shape[0], -1)
        return out, feats


def full_step(model, opt, x, y, hp, affine):
    opt.zero_grad()
    out, feats = model(x)
    losses = {"mse": nn.functional.mse_loss(out, y)}
    losses["reg"] = sum(f.pow(2).mean() for f in feats) * hp.weights[1] + sum(
        p.pow(2).sum() for name, p in model.named_parameters() if "weight" in name) * 1e-4
    total = (losses["mse"] * hp.weights[0] + losses["reg"]) * affine.scale + affine.shift
    total.backward()
    nn.utils.clip_grad_norm_(model.parameters(), hp.clip)
    opt.step()
    return total.detach(), {k: v.detach() for k, v in losses.items()}


def test_a_realistic_step_is_replayable_with_guards_on_its_config():
    compgrad.manual_seed(0)
    model = Stack()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = compgrad.randn(16, 8), compgrad.randn(16, 1)
    hp, affine = Hyper(), Affine(1.0, 0.0)
    args = (model, opt, x, y, hp, affine)
    (total, losses), obs = _replayable(full_step, *args)
    assert sorted(losses) == ["mse", "reg"]
    described = obs.describe()
    assert f"Hyper.clip is 1.0 (read at {_line(full_step, 8)})" in described
    assert "class Stack has no attribute 'blocks'" in described
    hp.clip = 2.0
    assert not obs.check(args, {})
    hp.clip = 1.0
    assert obs.check(args, {})
    assert not obs.check(args[:5] + (Affine(2.0, 0.0),), {})   # another namedtuple


# --- more patterns ---------------------------------------------------------------------------

class Slotted:
    __slots__ = ("scale",)

    def __init__(self, scale):
        self.scale = scale


class ListLike(list):
    pass


def test_slots_and_namedtuple_fields_are_guarded():
    def step(x, cfg):
        return x * cfg.scale

    cfg = Slotted(2.0)
    _, obs = _replayable(step, 1.0, cfg)
    cfg.scale = 3.0
    assert not obs.check((1.0, cfg), {})
    _replayable(step, 1.0, Affine(2.0, 0.0))


OUTSIDE = ListLike([1, 2])


def _iadd_alias(x):
    items = CFG_OBJ.items
    items += [x]


INDIRECT = {
    "map_print": lambda x: list(map(print, [x])),
    "sorted_key_print": lambda x: sorted([x], key=print),
    "partial": lambda x: functools.partial(print, x)(),
    "setattr": lambda x: setattr(Config(1.0), "scale", x),
    "object_setattr": lambda x: object.__setattr__(CFG_OBJ, "scale", x),
    "list_subclass": lambda x: sum(OUTSIDE),
    "vars": lambda x: vars(CFG_OBJ),
    "deque": lambda x: collections.deque([x]),
    "nested_unpinned": lambda x: sum(sum(r) for r in [[1, 2], WEIGHTS]),
    "operator_call": lambda x: operator.call(print, x),
    "iadd_alias": _iadd_alias,
}


@pytest.mark.parametrize("case", sorted(INDIRECT))
def test_refusals_of_indirect_effects(case):
    CFG_OBJ.items = [0]
    _refused(INDIRECT[case], 1)


def test_unsupported_python_version_refuses(monkeypatch):
    class Version(tuple):
        major, minor = 3, 13

    monkeypatch.setattr(sys, "version_info", Version((3, 13, 0)))
    result, obs = observe(lambda x: x + 1, (1,), {})
    assert result == 2
    assert obs.refusal == "replay analysis supports Python 3.11 and 3.12, not 3.13"


def test_compgrad_property_setters_are_library_writes():
    def step(x):
        x.grad = None                   # Tensor.grad's setter: compgrad's own state
        y = (x * x).sum()
        y.backward()
        return y

    def tags(x):
        x.tag = "seen"
        return x

    _replayable(step, compgrad.randn(3).requires_grad_())
    assert _refused(tags, compgrad.randn(3)) == (f"assigns the attribute .tag of a Tensor "
                                                 f"from outside the call ({_line(tags, 1)})")


class Countdown:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return self

    def __next__(self):
        if self.n == 0:
            raise StopIteration
        self.n -= 1
        return self.n


def test_a_python_iterator_made_in_the_call():
    def step(n):
        return [v * 2 for v in Countdown(n)]

    out, obs = _replayable(step, 3)
    assert out == [4, 2, 0]


def test_a_module_made_in_the_call_may_be_written():
    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

    def step(x):
        return Small()(x)

    _replayable(step, compgrad.randn(3, 2))


def test_descriptions_are_equal_between_identical_calls():
    # replay.Plan.signature compares describe() of two traced calls
    compgrad.manual_seed(0)
    model = Stack()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    hp, affine = Hyper(), Affine(1.0, 0.0)
    first = observe(full_step, (model, opt, compgrad.randn(16, 8), compgrad.randn(16, 1),
                                hp, affine), {})[1]
    second = observe(full_step, (model, opt, compgrad.randn(16, 8), compgrad.randn(16, 1),
                                 hp, affine), {})[1]
    assert first.describe() == second.describe()
    assert all("0x" not in d for d in first.describe())
