"""nn.Module, nn.Parameter and the containers, checked against torch.nn behaviour.

Most tests build the same model in both libraries (``_build(lib)``) and compare
what each one reports, so the expectations are PyTorch's, not ours.
"""

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import compgrad
from compgrad import nn

torch = pytest.importorskip("torch")

LIBS = pytest.mark.parametrize("lib", [compgrad, torch], ids=["compgrad", "torch"])


# --- models built the same way in both libraries -----------------------------------------

def _classes(lib):
    """Small custom modules written against ``lib`` (compgrad or torch)."""

    class Affine(lib.nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.weight = lib.nn.Parameter(lib.ones(n_out, n_in))
            self.bias = lib.nn.Parameter(lib.zeros(n_out))
            self.register_buffer("count", lib.zeros((), dtype=lib.int64))
            self.register_buffer("scratch", lib.zeros(2), persistent=False)

        def forward(self, x):
            return x @ self.weight.t() + self.bias

        def extra_repr(self):
            return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}"

    class Act(lib.nn.Module):
        def forward(self, x):
            return x * 2

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = lib.nn.Sequential(Affine(3, 4), Act(), Affine(4, 2))
            self.heads = lib.nn.ModuleList([Affine(2, 2), Act()])
            self.table = lib.nn.ModuleDict({"a": Affine(2, 1), "b": Act()})
            self.scale = lib.nn.Parameter(lib.ones(1))
            self.register_buffer("running", lib.zeros(2))

        def forward(self, x):
            x = self.body(x)
            for m in self.heads:
                x = m(x)
            return self.table["a"](x) * self.scale

    return Affine, Act, Net


def _names(pairs):
    return [n for n, _ in pairs]


def _shapes(pairs):
    return [(n, tuple(v.shape)) for n, v in pairs]


# --- registration ----------------------------------------------------------------------------

@LIBS
def test_attribute_assignment_registers_each_kind(lib):
    m = lib.nn.Module()
    m.w = lib.nn.Parameter(lib.zeros(2))
    m.sub = lib.nn.Module()
    m.register_buffer("b", lib.zeros(1))
    m.np_buf = lib.nn.Buffer(lib.zeros(1), persistent=False)
    m.plain = lib.zeros(3)  # a plain tensor is just an attribute
    m.number = 3
    assert list(m._parameters) == ["w"]
    assert list(m._modules) == ["sub"]
    assert list(m._buffers) == ["b", "np_buf"]
    assert "np_buf" in m._non_persistent_buffers_set
    assert "plain" in m.__dict__ and "number" in m.__dict__
    assert list(m.state_dict()) == ["w", "b"]


def _reassign_story(lib):
    """Move names between kinds; record where they live (and errors) after each step."""
    m = lib.nn.Module()
    out = []

    def where(name):
        return tuple(k for k in ("_parameters", "_buffers", "_modules")
                     if name in getattr(m, k)) + (("dict",) if name in m.__dict__ else ())

    def step(name, make):
        try:
            setattr(m, name, make())
            out.append((name, where(name)))
        except (TypeError, KeyError, AttributeError) as e:
            out.append((name, type(e).__name__, where(name)))

    step("x", lambda: 1)
    step("x", lambda: lib.nn.Parameter(lib.zeros(1)))
    step("x", lambda: None)  # stays a (None) parameter
    step("x", lambda: lib.nn.Module())  # TypeError: still a parameter name
    step("x", lambda: lib.nn.Buffer(lib.zeros(1)))
    del m.x
    step("x", lambda: lib.nn.Module())
    step("x", lambda: lib.nn.Buffer(lib.zeros(1)))  # TypeError: a module name
    step("x", lambda: lib.nn.Parameter(lib.zeros(1)))  # parameters take over any name
    step("y", lambda: 1)
    step("y", lambda: lib.nn.Buffer(lib.zeros(1)))  # KeyError: attribute exists
    step("z", lambda: lib.nn.Buffer(lib.zeros(1)))
    step("z", lambda: lib.ones(2))  # plain tensor on a buffer name replaces the buffer
    step("z", lambda: 3)
    step("z", lambda: lib.nn.Module())  # modules take over buffer names
    m.register_buffer("nb", lib.zeros(1), persistent=False)
    m.nb = lib.ones(1)  # keeps being non-persistent
    out.append("nb" in m._non_persistent_buffers_set)
    # reassigning keeps the registration order
    m.a = lib.nn.Parameter(lib.zeros(1))
    m.b = lib.nn.Parameter(lib.zeros(1))
    m.a = lib.nn.Parameter(lib.ones(1))
    m.c1, m.c2 = lib.nn.Module(), lib.nn.Module()
    m.c1 = lib.nn.Module()
    out += [list(m._parameters), list(m._modules), list(m._buffers)]
    return out


def test_reassignment_moves_between_kinds_like_torch():
    assert _reassign_story(compgrad) == _reassign_story(torch)


@LIBS
def test_assignment_type_errors(lib):
    m = lib.nn.Module()
    m.w = lib.nn.Parameter(lib.zeros(2))
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = lib.zeros(2)
    assert isinstance(m.w, lib.nn.Parameter)  # unchanged
    m.sub = lib.nn.Module()
    with pytest.raises(TypeError, match="child module 'sub'"):
        m.sub = lib.zeros(2)
    m.register_buffer("b", lib.zeros(1))
    with pytest.raises(TypeError, match="buffer 'b'"):
        m.b = 3
    with pytest.raises(TypeError):
        m.register_parameter("q", lib.zeros(1))
    with pytest.raises(KeyError):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError):
        m.register_buffer("", None)
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("w", lib.zeros(1))
    with pytest.raises(TypeError):
        m.add_module("c", 3)


@LIBS
def test_non_leaf_parameter_error(lib):
    m = lib.nn.Module()
    p = lib.nn.Parameter(lib.zeros(1))
    q = p * 2  # plain tensor: TypeError first
    with pytest.raises(TypeError):
        m.register_parameter("q", q)


@LIBS
def test_assigning_before_init(lib):
    class Early(lib.nn.Module):
        def __init__(self, what):
            if what == "param":
                self.p = lib.nn.Parameter(lib.zeros(1))
            elif what == "module":
                self.m = lib.nn.Module()
            elif what == "buffer":
                self.register_buffer("b", lib.zeros(1))
            else:
                self.x = 1  # plain attributes are fine
            super().__init__()

    for what, msg in [("param", "parameters"), ("module", "module"), ("buffer", "buffer")]:
        with pytest.raises(AttributeError, match=f"cannot assign {msg} before Module.__init__"):
            Early(what)
    assert Early("plain").x == 1


@LIBS
def test_getattr_and_delattr(lib):
    m = lib.nn.Module()
    m.w = lib.nn.Parameter(lib.zeros(1))
    m.register_buffer("b", lib.zeros(1))
    m.c = lib.nn.Module()
    assert {"w", "b", "c"} <= set(dir(m))
    del m.w, m.b, m.c
    assert not m._parameters and not m._buffers and not m._modules
    with pytest.raises(AttributeError, match="has no attribute 'w'"):
        m.w  # noqa: B018


def test_forward_missing_raises_not_implemented():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


# --- traversal -------------------------------------------------------------------------------

def _traversal(lib):
    _, _, Net = _classes(lib)
    net = Net()
    shared = lib.nn.Parameter(lib.zeros(3))
    net.body[0].shared = shared
    net.body[2].shared_again = shared  # same parameter twice: reported once
    return dict(
        params=_shapes(net.named_parameters()),
        params_dup=_names(net.named_parameters(remove_duplicate=False)),
        params_local=_names(net.named_parameters(recurse=False)),
        params_prefix=_names(net.named_parameters(prefix="model")),
        n_params=len(list(net.parameters())),
        buffers=_shapes(net.named_buffers()),
        buffers_local=_names(net.named_buffers(recurse=False)),
        children=_names(net.named_children()),
        n_children=len(list(net.children())),
        modules=[(n, type(m).__name__) for n, m in net.named_modules()],
        modules_prefix=_names(net.named_modules(prefix="root")),
        n_modules=len(list(net.modules())),
    )


def test_traversal_matches_torch():
    ours, theirs = _traversal(compgrad), _traversal(torch)
    for key in theirs:
        assert ours[key] == theirs[key], key


@LIBS
def test_shared_submodule_reported_once(lib):
    m = lib.nn.Module()
    inner = lib.nn.Module()
    inner.w = lib.nn.Parameter(lib.zeros(1))
    m.a, m.b = inner, inner
    assert _names(m.named_modules()) == ["", "a"]
    assert _names(m.named_modules(remove_duplicate=False)) == ["", "a", "b"]
    assert _names(m.named_children()) == ["a"]
    assert _names(m.named_parameters()) == ["a.w"]
    assert list(m.state_dict()) == ["a.w", "b.w"]


@LIBS
def test_get_submodule_parameter_buffer(lib):
    _, _, Net = _classes(lib)
    net = Net()
    assert net.get_submodule("") is net
    assert net.get_submodule("body.2") is net.body[2]
    assert net.get_parameter("body.2.weight") is net.body[2].weight
    assert net.get_parameter("scale") is net.scale
    assert net.get_buffer("body.0.count") is net.body[0].count
    with pytest.raises(AttributeError):
        net.get_submodule("body.7")
    with pytest.raises(AttributeError):
        net.get_parameter("body.0.nothing")
    with pytest.raises(AttributeError):
        net.get_buffer("body.0.weight")


# --- modes, grads, conversions ------------------------------------------------------------

@LIBS
def test_train_eval_propagate(lib):
    _, _, Net = _classes(lib)
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.body.train(False)
    assert net.training and not net.body[1].training and net.heads[1].training
    with pytest.raises(ValueError):
        net.train("yes")


@LIBS
def test_zero_grad(lib):
    _, _, Net = _classes(lib)
    net = Net()
    net(lib.ones(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    grads = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    for p, g in zip(net.parameters(), grads):
        assert p.grad is g  # zeroed in place
        assert float(p.grad.abs().sum()) == 0.0
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


@LIBS
def test_requires_grad_(lib):
    _, _, Net = _classes(lib)
    net = Net()
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    net.body.requires_grad_()
    assert [p.requires_grad for p in net.parameters()] == [False] + [True] * 4 + [False] * 4


@LIBS
@pytest.mark.parametrize("how", ["double", "to", "to_kw", "float_back"])
def test_dtype_conversion_keeps_parameter_identity(lib, how):
    Affine, _, _ = _classes(lib)
    m = lib.nn.Sequential(Affine(3, 2))
    m[0].register_buffer("ibuf", lib.zeros(2, dtype=lib.int32))
    params = list(m.parameters())
    m(lib.ones(1, 3)).sum().backward()
    if how == "double":
        out = m.double()
    elif how == "to":
        out = m.to(lib.float64)
    elif how == "to_kw":
        out = m.to(dtype=lib.float64)
    else:
        out = m.double().float()
    assert out is m
    want = lib.float32 if how == "float_back" else lib.float64
    assert [p is q for p, q in zip(m.parameters(), params)] == [True, True]
    assert all(p.dtype == want and p.grad.dtype == want for p in m.parameters())
    assert all(isinstance(p, lib.nn.Parameter) and p.requires_grad for p in m.parameters())
    assert m[0].scratch.dtype == want  # float buffers convert
    assert m[0].count.dtype == lib.int64  # integer buffers do not
    assert m[0].ibuf.dtype == lib.int32
    assert m(lib.ones(1, 3, dtype=want)).dtype == want


@LIBS
def test_to_rejects_integer_dtype(lib):
    with pytest.raises(TypeError, match="floating point"):
        lib.nn.Module().to(lib.int64)


@LIBS
def test_apply_visits_children_first(lib):
    _, _, Net = _classes(lib)
    seen = []
    net = Net()
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Net" and seen[:4] == ["Affine", "Act", "Affine", "Sequential"]


def test_apply_order_matches_torch():
    def order(lib):
        seen = []
        _classes(lib)[2]().apply(lambda m: seen.append(type(m).__name__))
        return seen

    assert order(compgrad) == order(torch)


# --- state dict -----------------------------------------------------------------------------

def test_state_dict_keys_and_order_match_torch():
    ours = _classes(compgrad)[2]().state_dict()
    theirs = _classes(torch)[2]().state_dict()
    assert _shapes(ours.items()) == _shapes(theirs.items())
    assert isinstance(ours, OrderedDict)
    assert "body.0.scratch" not in ours  # non-persistent


@LIBS
def test_state_dict_detached_unless_keep_vars(lib):
    _, _, Net = _classes(lib)
    net = Net()
    sd = net.state_dict()
    assert not sd["scale"].requires_grad and not isinstance(sd["scale"], lib.nn.Parameter)
    sd["scale"].fill_(5.0)  # detached but shares storage
    assert float(net.scale.sum()) == 5.0
    kv = net.state_dict(keep_vars=True)
    assert kv["scale"] is net.scale
    assert list(net.state_dict(prefix="p.")) == ["p." + k for k in sd]


@LIBS
def test_load_state_dict_roundtrip(lib):
    _, _, Net = _classes(lib)
    a, b = Net(), Net()
    with lib.no_grad():
        for p in a.parameters():
            p.uniform_()
    w_before = b.body[0].weight
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert b.body[0].weight is w_before  # copied in place
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(x.numpy(), y.numpy()), n


def _load_errors(lib):
    _, _, Net = _classes(lib)
    net = Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sd = {k: v.clone() + 1 for k, v in net.state_dict().items()}
    del sd["body.0.bias"], sd["scale"]
    sd["extra.weight"] = lib.zeros(1)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    changed = [k for k, v in net.state_dict().items() if not bool((v == before[k]).all())]
    res = net.load_state_dict(sd, strict=False)
    sd2 = {k: v.clone() for k, v in net.state_dict().items()}
    sd2["body.2.weight"] = lib.zeros(5, 5)
    sd2["body.0.weight"] = sd2["body.0.weight"] + 7
    with pytest.raises(RuntimeError) as info2:
        net.load_state_dict(sd2)
    unchanged = bool((net.body[0].weight != sd2["body.0.weight"]).all())
    return msg, changed, tuple(res.missing_keys), tuple(res.unexpected_keys), \
        str(info2.value), unchanged


def test_load_state_dict_errors_match_torch():
    ours, theirs = _load_errors(compgrad), _load_errors(torch)
    msg, changed, missing, unexpected, size_msg, unchanged = ours
    assert msg == theirs[0]
    assert changed == []  # torch copies the valid keys before raising; we change nothing
    assert (missing, unexpected) == theirs[2:4]
    assert size_msg == theirs[4].replace("torch.Size", "compgrad.Size") or \
        size_msg.replace("compgrad.", "torch.") == theirs[4]
    assert unchanged and not theirs[5]


@LIBS
def test_load_state_dict_strict_false_return(lib):
    m = lib.nn.Module()
    m.w = lib.nn.Parameter(lib.zeros(2))
    m.register_buffer("b", lib.zeros(1))
    res = m.load_state_dict({"w": lib.ones(2), "junk": lib.ones(1)}, strict=False)
    assert res.missing_keys == ["b"] and res.unexpected_keys == ["junk"]
    assert m.w.tolist() == [1.0, 1.0]
    assert tuple(res) == (["b"], ["junk"])


@LIBS
def test_load_state_dict_assign(lib):
    m = lib.nn.Module()
    m.w = lib.nn.Parameter(lib.zeros(2))
    m.register_buffer("b", lib.zeros(1))
    new_w, new_b = lib.ones(2, dtype=lib.float64), lib.ones(1)
    m.load_state_dict({"w": new_w, "b": new_b}, assign=True)
    assert isinstance(m.w, lib.nn.Parameter) and m.w.requires_grad
    assert m.w.dtype == lib.float64  # assign takes the checkpoint tensor as-is
    new_w.fill_(3.0)
    assert m.w.tolist() == [3.0, 3.0]  # shares storage with the checkpoint
    assert m.b is new_b or m.b.tolist() == [1.0]


def test_load_state_dict_cross_library():
    """A torch state_dict (converted to numpy) loads into the same compgrad model."""
    ours, theirs = _classes(compgrad)[2](), _classes(torch)[2]()
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict({k: compgrad.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    # float32 through two BLAS libraries: the suite's float32 tolerance
    np.testing.assert_allclose(ours(compgrad.tensor(x)).detach().numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-6)


# --- hooks ------------------------------------------------------------------------------------

def _hook_story(lib):
    _, Act, _ = _classes(lib)
    m = Act()
    log = []

    def pre1(mod, args):
        log.append(("pre1", float(args[0].sum())))
        return (args[0] + 1,)

    def pre2(mod, args):
        log.append(("pre2", float(args[0].sum())))

    def pre_kw(mod, args, kwargs):
        log.append(("pre_kw", sorted(kwargs)))
        return args, kwargs

    def post1(mod, args, out):
        log.append(("post1", float(out.sum())))
        return out * 10

    def post2(mod, args, out):
        log.append(("post2", float(out.sum())))

    def post_kw(mod, args, kwargs, out):
        log.append(("post_kw", float(out.sum())))

    handles = [m.register_forward_pre_hook(pre1), m.register_forward_pre_hook(pre2, prepend=True),
               m.register_forward_pre_hook(pre_kw, with_kwargs=True),
               m.register_forward_hook(post1), m.register_forward_hook(post2, prepend=True),
               m.register_forward_hook(post_kw, with_kwargs=True)]
    log.append(("out", float(m(lib.ones(2)).sum())))
    handles[0].remove()
    handles[3].remove()
    with handles[1]:
        pass  # context-manager exit removes
    log.append(("out", float(m(lib.ones(2)).sum())))
    return log


def test_forward_hooks_match_torch():
    assert _hook_story(compgrad) == _hook_story(torch)


@LIBS
def test_pre_hook_single_value_is_wrapped(lib):
    m = _classes(lib)[1]()
    m.register_forward_pre_hook(lambda mod, args: args[0] * 0 + 3)
    assert m(lib.ones(2)).tolist() == [6.0, 6.0]


# --- repr -------------------------------------------------------------------------------------

def test_repr_matches_torch():
    def build(lib):
        Affine, Act, Net = _classes(lib)
        net = Net()
        net.empty = lib.nn.Sequential()
        net.nothing = None
        return net

    assert repr(build(compgrad)) == repr(build(torch))


def test_repr_multiline_extra_repr_matches_torch():
    def build(lib):
        class Multi(lib.nn.Module):
            def extra_repr(self):
                return "a=1\nb=2"

        class Single(lib.nn.Module):
            def extra_repr(self):
                return "k=3"

        outer = Multi()
        outer.inner = lib.nn.Sequential(Single(), Multi())
        return lib.nn.ModuleList([outer, Single()])

    assert repr(build(compgrad)) == repr(build(torch))


# --- Parameter --------------------------------------------------------------------------------

def test_parameter_basics():
    t = compgrad.zeros(3)
    p = nn.Parameter(t)
    assert isinstance(p, compgrad.Tensor) and p.requires_grad and p.is_leaf
    t.fill_(2.0)
    assert p.tolist() == [2.0, 2.0, 2.0]  # shares storage
    assert not nn.Parameter(compgrad.zeros(1), requires_grad=False).requires_grad
    assert tuple(nn.Parameter().shape) == tuple(torch.nn.Parameter().shape)
    assert repr(p).startswith("Parameter containing:\n")
    tp = torch.nn.Parameter(torch.tensor([2.0, 2.0, 2.0]))
    assert repr(p) == repr(tp)
    for result in (p + 1, p * p, p[0], p.detach(), p.sum(), p.view(3), -p):
        assert type(result) is compgrad.Tensor
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])


def test_parameter_deepcopy_and_pickle():
    p = nn.Parameter(compgrad.tensor([1.0, 2.0]))
    p.grad = compgrad.tensor([0.5, 0.5])
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q.requires_grad and q is not p
    assert q.grad is not None and q.grad.tolist() == [0.5, 0.5]
    q.data.fill_(9.0)
    assert p.tolist() == [1.0, 2.0]
    r = pickle.loads(pickle.dumps(nn.Parameter(compgrad.ones(2), requires_grad=False)))
    assert type(r) is nn.Parameter and not r.requires_grad and r.tolist() == [1.0, 1.0]


def test_module_deepcopy_and_pickle_are_independent():
    net = _classes(compgrad)[2]()
    net.alias = net.body[0]  # shared submodule stays shared in the copy
    clone = copy.deepcopy(net)
    assert clone.alias is clone.body[0]
    assert all(type(p) is nn.Parameter for p in clone.parameters())
    with compgrad.no_grad():
        for p in clone.parameters():
            p.fill_(4.0)
    assert float(net.scale.sum()) == 1.0
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]
    x = compgrad.ones(2, 3)
    clone(x).sum().backward()
    assert all(p.grad is None for p in net.parameters())
    assert all(p.grad is not None for p in clone.parameters())


# --- a small end-to-end run -------------------------------------------------------------

def test_training_step_matches_torch():
    ours, theirs = _classes(compgrad)[2](), _classes(torch)[2]()
    rng = np.random.default_rng(1)
    sd = {k: rng.standard_normal(tuple(v.shape)).astype(np.float32) if v.is_floating_point()
          else v.numpy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict({k: compgrad.tensor(v) for k, v in sd.items()})
    theirs.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    x = rng.standard_normal((4, 3)).astype(np.float32)
    ours(compgrad.tensor(x)).pow(2).sum().backward()
    theirs(torch.tensor(x)).pow(2).sum().backward()
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=n)


def test_pickle_of_a_container_model_roundtrips():
    pl = nn.ParameterList([compgrad.ones(2)])
    model = nn.Sequential(OrderedDict(params=pl, blocks=nn.ModuleList([nn.Module()])))
    model.register_buffer("steps", compgrad.tensor(3))
    model.eval()
    back = pickle.loads(pickle.dumps(model))
    assert repr(back) == repr(model)
    assert not back.training and not back.params.training
    assert type(back.params[0]) is nn.Parameter and back.params[0].requires_grad
    assert back.steps.item() == 3 and list(back.state_dict()) == list(model.state_dict())


@LIBS
def test_none_entries_are_skipped(lib):
    m = lib.nn.Module()
    m.register_parameter("w", None)
    m.register_buffer("b", None)
    m.add_module("c", None)
    assert m.w is None and m.b is None and m.c is None
    assert list(m.parameters()) == [] and list(m.buffers()) == []
    assert list(m.children()) == [] and list(m.state_dict()) == []
    assert m.load_state_dict({}).missing_keys == []


@LIBS
def test_load_state_dict_rejects_non_tensor_and_non_mapping(lib):
    m = lib.nn.Module()
    m.w = lib.nn.Parameter(lib.zeros(2))
    with pytest.raises(RuntimeError, match='parameter named "w"'):
        m.load_state_dict({"w": [1.0, 2.0]})
    with pytest.raises(TypeError):
        m.load_state_dict([("w", lib.zeros(2))])
