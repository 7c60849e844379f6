"""Optimizers against PyTorch: parameter trajectories, state, state dicts, errors."""

import copy

import numpy as np
import pytest

import compgrad
import compgrad.optim

torch = pytest.importorskip("torch")

SHAPES = [(3,), (2, 4), (), (5,)]  # the last one gets no gradient (its step is skipped)


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    xs = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ys = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    return ws, xs, ys


def _params(lib, ws, dtype=None):
    out = []
    for w in ws:
        t = lib.tensor(w if dtype is None else w.astype(dtype))
        t.requires_grad_(True)
        out.append(t)
    return out


def _loss(lib, params, xs, ys, sign=1.0):
    total = 0
    for w, x, y in zip(params[:-1], xs[:-1], ys[:-1]):
        x = lib.tensor(x, dtype=w.dtype)
        y = lib.tensor(y, dtype=w.dtype)
        total = total + ((w * x - y) ** 2).sum() + 0.1 * (w ** 3).sum()
    return total * sign


def _groups(params, group_kwargs):
    if group_kwargs is None:
        return params
    return [{"params": params[:2]}, {"params": params[2:], **group_kwargs}]


def _build(lib, name, kwargs, group_kwargs, ws):
    params = _params(lib, ws)
    opt = getattr(lib.optim, name)(_groups(params, group_kwargs), **kwargs)
    return params, opt


def _step(lib, params, opt, xs, ys, sign, set_to_none=True):
    opt.zero_grad(set_to_none=set_to_none)
    _loss(lib, params, xs, ys, sign).backward()
    opt.step()


def _assert_close(cg, th, rtol=2e-5, atol=2e-6):
    a = cg.detach().numpy() if hasattr(cg, "detach") else np.asarray(cg)
    b = th.detach().numpy()
    assert a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


CONFIGS = [
    ("SGD", {"lr": 0.01}, None),
    ("SGD", {}, None),
    ("SGD", {"lr": 0.01, "momentum": 0.9}, None),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "dampening": 0.5}, None),
    ("SGD", {"lr": 0.01, "momentum": 0.8, "nesterov": True}, None),
    ("SGD", {"lr": 0.01, "weight_decay": 0.1}, None),
    ("SGD", {"lr": 0.01, "maximize": True}, None),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.05, "nesterov": True},
     {"lr": 0.005, "momentum": 0.5, "nesterov": False, "dampening": 0.1}),
    ("SGD", {"lr": 0.01}, {"momentum": 0.9, "maximize": True}),
    ("Adam", {}, None),
    ("Adam", {"lr": 0.05}, None),
    ("Adam", {"lr": 0.05, "amsgrad": True}, None),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1}, None),
    ("Adam", {"lr": 0.05, "maximize": True}, None),
    ("Adam", {"lr": 0.03, "betas": (0.8, 0.9), "eps": 1e-3}, None),
    ("Adam", {"lr": 0.05, "decoupled_weight_decay": True, "weight_decay": 0.2}, None),
    ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.01},
     {"lr": 0.01, "betas": (0.5, 0.6), "amsgrad": False, "maximize": True}),
    ("AdamW", {}, None),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1}, None),
    ("AdamW", {"lr": 0.05, "amsgrad": True}, None),
    ("AdamW", {"lr": 0.05, "maximize": True, "weight_decay": 0}, None),
    ("AdamW", {"lr": 0.05}, {"weight_decay": 0.5, "betas": (0.7, 0.95)}),
    ("RMSprop", {}, None),
    ("RMSprop", {"lr": 0.01, "centered": True}, None),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}, None),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}, None),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9}, None),
    ("RMSprop", {"lr": 0.01, "maximize": True, "eps": 1e-4}, None),
    ("RMSprop", {"lr": 0.01}, {"lr": 0.003, "centered": True, "momentum": 0.7}),
    ("Adagrad", {}, None),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}, None),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1}, None),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5}, None),
    ("Adagrad", {"lr": 0.1, "eps": 1e-3, "maximize": True}, None),
    ("Adagrad", {"lr": 0.1}, {"lr": 0.3, "lr_decay": 0.1, "weight_decay": 0.2}),
]


def _id(config):
    name, kwargs, groups = config
    text = name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())
    return text + ("-groups" if groups is not None else "")


@pytest.mark.parametrize("config", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_trajectory_matches_torch(config):
    name, kwargs, group_kwargs = config
    ws, xs, ys = _arrays()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    cparams, copt = _build(compgrad, name, kwargs, group_kwargs, ws)
    tparams, topt = _build(torch, name, kwargs, group_kwargs, ws)
    before = [p._data for p in cparams]
    for _ in range(20):
        _step(compgrad, cparams, copt, xs, ys, sign)
        _step(torch, tparams, topt, xs, ys, sign)
        for c, t in zip(cparams, tparams):
            _assert_close(c, t)
    # updated in place: same tensors, same storage
    assert all(p._data is b for p, b in zip(cparams, before))
    assert all(p.is_leaf and p.requires_grad for p in cparams)
    # the parameter without a gradient never moved
    np.testing.assert_array_equal(cparams[-1].detach().numpy(), ws[-1])
    # same state, under the same names, with the same dtypes
    for c, t in zip(cparams, tparams):
        cs, ts = copt.state.get(c, {}), topt.state.get(t, {})
        assert sorted(cs) == sorted(ts)
        for key in ts:
            if isinstance(ts[key], torch.Tensor):
                assert cs[key].shape == tuple(ts[key].shape)
                _assert_close(cs[key], ts[key], rtol=1e-4, atol=1e-6)
            else:
                assert cs[key] == ts[key]
    assert [sorted(g) for g in copt.param_groups] == [sorted(g) for g in topt.param_groups]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float64_params(name):
    ws, xs, ys = _arrays(1)
    kwargs = {"lr": 0.01, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.01}
    cparams = _params(compgrad, ws, np.float64)
    tparams = _params(torch, ws, np.float64)
    copt = getattr(compgrad.optim, name)(cparams, **kwargs)
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for _ in range(5):
        _step(compgrad, cparams, copt, xs, ys, 1.0)
        _step(torch, tparams, topt, xs, ys, 1.0)
    for c, t in zip(cparams, tparams):
        _assert_close(c, t, rtol=1e-12, atol=1e-12)
        for key, value in topt.state.get(t, {}).items():
            assert copt.state[c][key].dtype.torch_name == {
                torch.float32: "Float", torch.float64: "Double"}[value.dtype]


@pytest.mark.parametrize("config", [c for c in CONFIGS if c[2] is not None] + [
    ("SGD", {"lr": 0.01, "momentum": 0.9}, None), ("Adam", {"amsgrad": True}, None),
    ("RMSprop", {"centered": True, "momentum": 0.9}, None), ("Adagrad", {"lr_decay": 0.1}, None),
], ids=_id)
def test_state_dict_round_trip(config):
    name, kwargs, group_kwargs = config
    ws, xs, ys = _arrays(2)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    params, opt = _build(compgrad, name, kwargs, group_kwargs, ws)
    for _ in range(10):
        _step(compgrad, params, opt, xs, ys, sign)
    saved = copy.deepcopy(opt.state_dict())
    saved_values = [p.detach().numpy().copy() for p in params]

    # the same format as PyTorch's
    tparams, topt = _build(torch, name, kwargs, group_kwargs, ws)
    for _ in range(10):
        _step(torch, tparams, topt, xs, ys, sign)
    tsaved = topt.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [
        g["params"] for g in tsaved["param_groups"]]
    assert [sorted(g) for g in saved["param_groups"]] == [
        sorted(g) for g in tsaved["param_groups"]]
    assert sorted(saved["state"]) == sorted(tsaved["state"])
    for idx, entry in tsaved["state"].items():
        assert sorted(saved["state"][idx]) == sorted(entry)

    for _ in range(10):
        _step(compgrad, params, opt, xs, ys, sign)

    fresh, opt2 = _build(compgrad, name, kwargs, group_kwargs, [v for v in saved_values])
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["params"][0] is fresh[0]
    for _ in range(10):
        _step(compgrad, fresh, opt2, xs, ys, sign)
    for a, b in zip(fresh, params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    # loaded state is a copy: the saved dict is untouched by the continued run
    for idx, entry in opt2.state_dict()["state"].items():
        for key, value in entry.items():
            if key != "step" and isinstance(value, compgrad.Tensor):
                assert value is not saved["state"][idx][key]


def test_load_torch_state_dict_values():
    # a PyTorch state dict converted to compgrad tensors loads and continues identically
    ws, xs, ys = _arrays(3)
    tparams, topt = _build(torch, "Adam", {"lr": 0.05, "amsgrad": True}, {"lr": 0.01}, ws)
    for _ in range(5):
        _step(torch, tparams, topt, xs, ys, 1.0)
    tsd = topt.state_dict()
    converted = {
        "state": {i: {k: compgrad.tensor(v.numpy()) for k, v in s.items()}
                  for i, s in tsd["state"].items()},
        "param_groups": copy.deepcopy(tsd["param_groups"]),
    }
    cparams, copt = _build(compgrad, "Adam", {"lr": 0.05, "amsgrad": True}, {"lr": 0.01},
                           [p.detach().numpy() for p in tparams])
    copt.load_state_dict(converted)
    for _ in range(5):
        _step(compgrad, cparams, copt, xs, ys, 1.0)
        _step(torch, tparams, topt, xs, ys, 1.0)
    for c, t in zip(cparams, tparams):
        _assert_close(c, t)


def test_zero_grad():
    ws, xs, ys = _arrays()
    params = _params(compgrad, ws)
    opt = compgrad.optim.SGD(params, lr=0.1)
    _loss(compgrad, params, xs, ys).backward()
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad  # zeroed in place
    assert not params[0].grad.numpy().any()
    assert params[-1].grad is None
    _loss(compgrad, params, xs, ys).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()  # no gradients: nothing moves
    np.testing.assert_array_equal(params[0].detach().numpy(), ws[0])


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_closure(name):
    ws, xs, ys = _arrays(4)
    results = []
    for lib in (compgrad, torch):
        params = _params(lib, ws)
        opt = getattr(lib.optim, name)(params, lr=0.05)
        calls = []

        def closure(lib=lib, params=params, opt=opt, calls=calls):
            opt.zero_grad()
            loss = _loss(lib, params, xs, ys)
            assert lib.is_grad_enabled()
            loss.backward()
            calls.append(1)
            return loss

        losses = []
        with lib.no_grad():  # step re-enables grad for the closure
            for _ in range(5):
                losses.append(float(opt.step(closure)))
        assert len(calls) == 5
        assert opt.step() is None
        results.append((losses, [p.detach().numpy() for p in params]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_step_leaves_grad_mode_and_records_nothing():
    ws, xs, ys = _arrays()
    params = _params(compgrad, ws)
    opt = compgrad.optim.Adam(params, lr=0.1)
    _loss(compgrad, params, xs, ys).backward()
    opt.step()
    assert compgrad.is_grad_enabled()
    assert all(p.grad_fn is None for p in params)
    assert all(v.grad_fn is None for v in opt.state[params[0]].values())
    assert opt.state[params[0]]["step"].dtype is compgrad.float32
    assert opt.state[params[0]]["step"].shape == ()


def test_param_group_structure():
    ws, _, _ = _arrays()
    for lib in (compgrad, torch):
        params = _params(lib, ws)
        opt = lib.optim.SGD(iter(params[:2]), lr=0.1, momentum=0.5)
        assert len(opt.param_groups) == 1
        assert isinstance(opt.param_groups[0]["params"], list)
        opt.add_param_group({"params": params[2], "lr": 0.5})
        assert opt.param_groups[1]["params"] == [params[2]] or \
            opt.param_groups[1]["params"][0] is params[2]
        assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.5
        assert opt.defaults["lr"] == 0.1
    # named parameters
    params = _params(compgrad, ws)
    opt = compgrad.optim.SGD([("a", params[0]), ("b", params[1])], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["a", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["a", "b"]


def test_step_hooks():
    params = _params(compgrad, _arrays()[0])
    opt = compgrad.optim.SGD(params, lr=0.1)
    seen = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    opt.step()
    h1.remove()
    opt.step()
    assert seen == ["pre", "post", "post"]


def test_state_keyed_by_tensor():
    params = _params(compgrad, _arrays()[0])
    opt = compgrad.optim.SGD(params, lr=0.1, momentum=0.9)
    params[0].grad = compgrad.ones(3)
    opt.step()
    assert list(opt.state.keys()) == [params[0]]
    assert opt.state[params[0]]["momentum_buffer"].tolist() == [1.0, 1.0, 1.0]


def _raises_like_torch(make, replace=()):
    with pytest.raises(Exception) as texc:
        make(torch)
    with pytest.raises(type(texc.value)) as cexc:
        make(compgrad)
    expected = str(texc.value)
    for a, b in replace:
        expected = expected.replace(a, b)
    assert str(cexc.value) == expected


def _p(lib, requires_grad=True):
    return lib.ones(3, requires_grad=requires_grad)


ERRORS = [
    lambda lib: lib.optim.SGD([_p(lib)], lr=-0.1),
    lambda lib: lib.optim.SGD([_p(lib)], lr=0.1, momentum=-0.5),
    lambda lib: lib.optim.SGD([_p(lib)], lr=0.1, weight_decay=-1),
    lambda lib: lib.optim.SGD([_p(lib)], lr=0.1, nesterov=True),
    lambda lib: lib.optim.SGD([_p(lib)], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda lib: lib.optim.Adam([_p(lib)], lr=-1.0),
    lambda lib: lib.optim.Adam([_p(lib)], betas=(1.0, 0.999)),
    lambda lib: lib.optim.Adam([_p(lib)], betas=(0.9, -0.1)),
    lambda lib: lib.optim.Adam([_p(lib)], eps=-1e-8),
    lambda lib: lib.optim.Adam([_p(lib)], weight_decay=-0.1),
    lambda lib: lib.optim.AdamW([_p(lib)], betas=(0.9, 1.5)),
    lambda lib: lib.optim.RMSprop([_p(lib)], alpha=-0.5),
    lambda lib: lib.optim.RMSprop([_p(lib)], momentum=-0.5),
    lambda lib: lib.optim.RMSprop([_p(lib)], eps=-0.5),
    lambda lib: lib.optim.Adagrad([_p(lib)], lr_decay=-0.5),
    lambda lib: lib.optim.Adagrad([_p(lib)], initial_accumulator_value=-0.5),
    lambda lib: lib.optim.Adagrad([_p(lib)], eps=-0.5),
    lambda lib: lib.optim.SGD([], lr=0.1),
    lambda lib: lib.optim.SGD([_p(lib) * 2], lr=0.1),
    lambda lib: lib.optim.SGD([_p(lib), 3.0], lr=0.1),
    lambda lib: lib.optim.Adam([{"params": {_p(lib)}}]),
    lambda lib: lib.optim.SGD([("a", _p(lib)), _p(lib)], lr=0.1),
]


@pytest.mark.parametrize("make", ERRORS)
def test_errors_like_torch(make):
    _raises_like_torch(make)


def test_bare_tensor_error():
    with pytest.raises(TypeError, match="^params argument given to the optimizer should be an "
                                        "iterable of Tensors or dicts, but got "
                                        "compgrad.FloatTensor$"):
        compgrad.optim.SGD(_p(compgrad), lr=0.1)
    _raises_like_torch(lambda lib: lib.optim.SGD(_p(lib), lr=0.1), [("torch.", "compgrad.")])


def test_duplicate_group_error():
    def make(lib):
        p = _p(lib)
        opt = lib.optim.SGD([p], lr=0.1)
        opt.add_param_group({"params": [p]})
    _raises_like_torch(make)

    def make_second(lib):
        p = _p(lib)
        lib.optim.Adam([{"params": [p]}, {"params": p, "lr": 0.1}])
    _raises_like_torch(make_second)


@pytest.mark.parametrize("kind", ["count", "size"])
def test_load_state_dict_errors(kind):
    def make(lib):
        a, b = _p(lib), _p(lib)
        src = lib.optim.SGD([a, b], lr=0.1) if kind == "size" else \
            lib.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
        dst = lib.optim.SGD([_p(lib)], lr=0.1)
        dst.load_state_dict(src.state_dict())
    _raises_like_torch(make)


def test_load_state_dict_restores_hyperparameters():
    params = _params(compgrad, _arrays()[0])
    opt = compgrad.optim.SGD(params, lr=0.1, momentum=0.9)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.5
    opt2 = compgrad.optim.SGD(params, lr=0.1)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.5 and opt2.param_groups[0]["momentum"] == 0.9
    assert opt2.param_groups[0]["params"][0] is params[0]


def test_repr_and_deepcopy():
    params = _params(compgrad, _arrays()[0])
    opt = compgrad.optim.Adam(params, lr=0.1)
    text = repr(opt)
    assert text.startswith("Adam (\nParameter Group 0\n") and "    lr: 0.1\n" in text
    clone = copy.deepcopy(opt)
    assert clone.param_groups[0]["lr"] == 0.1
