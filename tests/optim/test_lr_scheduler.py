"""Learning-rate schedulers against PyTorch: lr sequences, momentum, state dicts, errors."""

import copy
import math

import pytest

import compgrad
import compgrad.optim

torch = pytest.importorskip("torch")


class _Scale:
    """A callable object: its __dict__ goes into the state dict (PyTorch's convention)."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, epoch):
        return self.factor ** epoch


def _optimizer(lib, kind="SGD"):
    a = lib.ones(3, requires_grad=True)
    b = lib.ones(2, requires_grad=True)
    groups = [{"params": [a]}, {"params": [b], "lr": 0.05}]
    if kind == "Adam":
        return lib.optim.Adam(groups, lr=0.1)
    return lib.optim.SGD(groups, lr=0.1, momentum=0.9)


SCHEDULERS = {
    "StepLR": lambda L, o: L.StepLR(o, step_size=7),
    "StepLR-gamma": lambda L, o: L.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, milestones=[5, 12, 12, 20], gamma=0.3),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda L, o: L.CosineAnnealingLR(o, T_max=10),
    "CosineAnnealingLR-eta_min": lambda L, o: L.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    "LambdaLR": lambda L, o: L.LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-list": lambda L, o: L.LambdaLR(o, [lambda e: 1 / (e + 1), _Scale(0.9)]),
    "LinearLR": lambda L, o: L.LinearLR(o),
    "LinearLR-args": lambda L, o: L.LinearLR(o, start_factor=0.5, end_factor=0.1,
                                              total_iters=12),
    "OneCycleLR": lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=31),
    "OneCycleLR-linear": lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=31,
                                                   anneal_strategy="linear"),
    "OneCycleLR-three_phase": lambda L, o: L.OneCycleLR(o, max_lr=0.8, total_steps=35,
                                                        three_phase=True, pct_start=0.25),
    "OneCycleLR-epochs": lambda L, o: L.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=8,
                                                   div_factor=10.0, final_div_factor=100.0,
                                                   base_momentum=0.8, max_momentum=0.92),
    "OneCycleLR-no_momentum": lambda L, o: L.OneCycleLR(o, max_lr=0.3, total_steps=40,
                                                        cycle_momentum=False),
    "MultiplicativeLR": lambda L, o: L.MultiplicativeLR(o, lambda e: 0.97),
    "ConstantLR": lambda L, o: L.ConstantLR(o, factor=0.5, total_iters=4),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, total_iters=20, power=2.0),
    "CyclicLR": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
    "CyclicLR-triangular2": lambda L, o: L.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1,
                                                    step_size_up=3, step_size_down=5,
                                                    mode="triangular2"),
    "CyclicLR-exp_range": lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5,
                                                  mode="exp_range", gamma=0.95),
    "CosineAnnealingWarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=5),
    "CosineAnnealingWarmRestarts-mult": lambda L, o: L.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=0.001),
    "SequentialLR": lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.ExponentialLR(o, gamma=0.9)],
        milestones=[5]),
    "ChainedScheduler": lambda L, o: L.ChainedScheduler(
        [L.ConstantLR(o, factor=0.5, total_iters=6), L.ExponentialLR(o, gamma=0.95)]),
}

ADAM_OK = {"OneCycleLR", "OneCycleLR-three_phase", "CyclicLR", "CosineAnnealingLR", "StepLR"}


def _momentum(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


def _trace(lib, name, kind="SGD", steps=30):
    opt = _optimizer(lib, kind)
    sched = SCHEDULERS[name](lib.optim.lr_scheduler, opt)
    out = [(list(sched.get_last_lr()), [g["lr"] for g in opt.param_groups],
            [_momentum(g) for g in opt.param_groups])]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append((list(sched.get_last_lr()), [g["lr"] for g in opt.param_groups],
                    [_momentum(g) for g in opt.param_groups]))
    return opt, sched, out


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_sequence_matches_torch(name):
    copt, csched, ctrace = _trace(compgrad, name)
    topt, tsched, ttrace = _trace(torch, name)
    assert ctrace == ttrace  # the same Python-float arithmetic: equal, not just close
    assert getattr(csched, "last_epoch", None) == getattr(tsched, "last_epoch", None)
    if hasattr(tsched, "base_lrs"):
        assert csched.base_lrs == tsched.base_lrs
    for cg, tg in zip(copt.param_groups, topt.param_groups):
        assert sorted(cg) == sorted(tg)
        assert cg.get("initial_lr") == tg.get("initial_lr")


@pytest.mark.parametrize("name", sorted(ADAM_OK))
def test_lr_sequence_with_adam(name):
    assert _trace(compgrad, name, "Adam")[2] == _trace(torch, name, "Adam")[2]


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_state_dict_round_trip(name):
    opt, sched, _ = _trace(compgrad, name, steps=10)
    saved_sched = copy.deepcopy(sched.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    assert "optimizer" not in saved_sched
    rest = []
    for _ in range(20):
        opt.step()
        sched.step()
        rest.append(list(sched.get_last_lr()))

    opt2 = _optimizer(compgrad)
    sched2 = SCHEDULERS[name](compgrad.optim.lr_scheduler, opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    resumed = []
    for _ in range(20):
        opt2.step()
        sched2.step()
        resumed.append(list(sched2.get_last_lr()))
    assert resumed == rest


def test_state_dict_matches_torch_keys():
    for name in ("StepLR", "CosineAnnealingLR", "OneCycleLR", "LambdaLR-list"):
        c = _trace(compgrad, name, steps=3)[1].state_dict()
        t = _trace(torch, name, steps=3)[1].state_dict()
        assert sorted(c) == sorted(t)
        assert c["last_epoch"] == t["last_epoch"] and c["_last_lr"] == t["_last_lr"]
    lam = _trace(compgrad, "LambdaLR-list", steps=3)[1].state_dict()["lr_lambdas"]
    assert lam == [None, {"factor": 0.9}]


def test_closed_form_epoch_argument():
    for name in ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR"):
        results = []
        for lib in (compgrad, torch):
            opt = _optimizer(lib)
            sched = SCHEDULERS[name](lib.optim.lr_scheduler, opt)
            values = []
            for epoch in (3, 8, 15, 2):
                sched.step(epoch)
                values.append(sched.get_last_lr())
            results.append(values)
        assert results[0] == results[1]


def test_resume_with_last_epoch():
    for lib in (compgrad, torch):
        opt = _optimizer(lib)
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
        sched = lib.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, last_epoch=4)
        sched.step()
        if lib is compgrad:
            cvalues = sched.get_last_lr()
        else:
            assert cvalues == sched.get_last_lr()


def test_get_last_lr_and_base_lrs():
    opt = _optimizer(compgrad)
    sched = compgrad.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    assert sched.base_lrs == [0.1, 0.05]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
    assert sched.get_last_lr() == [0.1, 0.05] and sched.last_epoch == 0
    for _ in range(2):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.05, 0.025] and sched.last_epoch == 2
    assert isinstance(sched, compgrad.optim.lr_scheduler.LRScheduler)


METRICS = [1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6,
           0.6, 0.6, 0.6, 0.6, 0.49995, 0.49995, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]

PLATEAU = [
    {},
    {"patience": 2},
    {"patience": 1, "factor": 0.5, "cooldown": 2},
    {"mode": "max", "patience": 2},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 0},
    {"threshold_mode": "abs", "threshold": 0.05, "patience": 1},
    {"threshold": 0.1, "patience": 1, "min_lr": [0.01, 0.02]},
    {"patience": 0, "factor": 0.5, "min_lr": 0.02},
    {"patience": 0, "factor": 0.99, "eps": 1e-3},
]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=[str(k) for k in PLATEAU])
def test_reduce_lr_on_plateau(kwargs):
    traces = []
    for lib in (compgrad, torch):
        opt = _optimizer(lib)
        sched = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        trace = [sched.get_last_lr()]
        for metric in METRICS:
            opt.step()
            sched.step(metric if lib is compgrad else metric)
            trace.append((sched.get_last_lr(), sched.num_bad_epochs, sched.best,
                          sched.cooldown_counter, sched.last_epoch, sched.in_cooldown))
        traces.append(trace)
    assert traces[0] == traces[1]


def test_reduce_lr_on_plateau_tensor_metric_and_state_dict():
    opt = _optimizer(compgrad)
    sched = compgrad.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for metric in METRICS[:12]:
        sched.step(compgrad.tensor(metric))
    saved = copy.deepcopy(sched.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    rest = []
    for metric in METRICS[12:]:
        sched.step(metric)
        rest.append(sched.get_last_lr())
    opt2 = _optimizer(compgrad)
    sched2 = compgrad.optim.lr_scheduler.ReduceLROnPlateau(opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    resumed = []
    for metric in METRICS[12:]:
        sched2.step(metric)
        resumed.append(sched2.get_last_lr())
    assert resumed == rest
    assert math.isclose(opt2.param_groups[0]["lr"], rest[-1][0])


def _raises_like_torch(make):
    with pytest.raises(Exception) as texc:
        make(torch)
    with pytest.raises(type(texc.value)) as cexc:
        make(compgrad)
    assert str(cexc.value) == str(texc.value)


ERRORS = [
    lambda lib: lib.optim.lr_scheduler.StepLR(object(), step_size=2),
    lambda lib: lib.optim.lr_scheduler.ReduceLROnPlateau(object()),
    lambda lib: lib.optim.lr_scheduler.ReduceLROnPlateau(_optimizer(lib), factor=1.0),
    lambda lib: lib.optim.lr_scheduler.ReduceLROnPlateau(_optimizer(lib), mode="mean"),
    lambda lib: lib.optim.lr_scheduler.ReduceLROnPlateau(_optimizer(lib),
                                                          threshold_mode="ratio"),
    lambda lib: lib.optim.lr_scheduler.ReduceLROnPlateau(_optimizer(lib), min_lr=[0.1]),
    lambda lib: lib.optim.lr_scheduler.LinearLR(_optimizer(lib), start_factor=0),
    lambda lib: lib.optim.lr_scheduler.LinearLR(_optimizer(lib), end_factor=1.5),
    lambda lib: lib.optim.lr_scheduler.ConstantLR(_optimizer(lib), factor=2),
    lambda lib: lib.optim.lr_scheduler.LambdaLR(_optimizer(lib), [lambda e: 1.0]),
    lambda lib: lib.optim.lr_scheduler.OneCycleLR(_optimizer(lib), max_lr=1.0),
    lambda lib: lib.optim.lr_scheduler.OneCycleLR(_optimizer(lib), max_lr=1.0, total_steps=0),
    lambda lib: lib.optim.lr_scheduler.OneCycleLR(_optimizer(lib), max_lr=1.0, total_steps=10,
                                                  anneal_strategy="exp"),
    lambda lib: lib.optim.lr_scheduler.OneCycleLR(_optimizer(lib), max_lr=1.0, total_steps=10,
                                                  pct_start=1.5),
    lambda lib: lib.optim.lr_scheduler.OneCycleLR(_optimizer(lib), max_lr=[1.0], total_steps=10),
    lambda lib: lib.optim.lr_scheduler.OneCycleLR(
        lib.optim.Adagrad([lib.ones(2, requires_grad=True)]), max_lr=1.0, total_steps=10),
    lambda lib: lib.optim.lr_scheduler.CosineAnnealingLR(
        lib.optim.SGD([lib.ones(2, requires_grad=True)]), T_max=5, last_epoch=3),
    lambda lib: lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(_optimizer(lib), T_0=0),
]


@pytest.mark.parametrize("make", ERRORS)
def test_errors_like_torch(make):
    _raises_like_torch(make)


def test_one_cycle_too_many_steps():
    def make(lib):
        opt = _optimizer(lib)
        sched = lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
        for _ in range(4):
            opt.step()
            sched.step()
    _raises_like_torch(make)


def test_step_order_warning():
    opt = _optimizer(compgrad)
    sched = compgrad.optim.lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt = _optimizer(compgrad)
    sched = compgrad.optim.lr_scheduler.StepLR(opt, step_size=2)
    opt.step()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
