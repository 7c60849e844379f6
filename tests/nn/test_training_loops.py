"""Whole training loops against PyTorch: the same code run with ``lib = compgrad`` and
``lib = torch`` from the same initial weights (torch's state_dict copied over) on the same
data, comparing losses, parameters, buffers and optimizer state step by step.

Covers gradient accumulation, frozen-backbone fine-tuning, a small CNN with batch norm
in train then eval mode, resuming from a checkpoint, and bad input (errors must match
PyTorch's and leave nothing half-updated).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import compgrad

from ._common import close, copy_state, to_np

torch = pytest.importorskip("torch")

N_IN, N_HID, N_OUT = 6, 8, 3


def _libs():
    return (torch, compgrad)


def _data(n: int, seed: int, shape: tuple[int, ...] = (N_IN,)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *shape)).astype(np.float32),
            rng.integers(0, N_OUT, n, dtype=np.int64))


def _mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(N_IN, N_HID), nn.ReLU(), nn.Linear(N_HID, N_OUT))


def _pair(build, seed: int = 0):
    """(torch model, compgrad model) with torch's initial weights in both."""
    torch.manual_seed(seed)
    theirs, ours = build(torch), build(compgrad)
    copy_state(theirs, ours)
    return theirs, ours


def _make_opt(lib, kind: str, params, **kw):
    if kind == "sgd":
        return lib.optim.SGD(params, lr=0.05, momentum=0.9, **kw)
    if kind == "adam":
        return lib.optim.Adam(params, lr=0.01, **kw)
    if kind == "adamw":
        return lib.optim.AdamW(params, lr=0.01, **kw)
    raise ValueError(kind)


def _params_np(model) -> dict[str, np.ndarray]:
    return {k: to_np(v) for k, v in model.state_dict().items()}


def _assert_states_close(a: dict, b: dict, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


# ------------------------------------------------------------------ gradient accumulation

def _accumulated_run(lib, model, kind: str, steps: int, micro: int, accumulate: bool):
    opt = _make_opt(lib, kind, model.parameters())
    loss_fn = lib.nn.CrossEntropyLoss()
    losses = []
    for step in range(steps):
        x, y = _data(4 * micro, seed=100 + step)
        opt.zero_grad()
        if accumulate:  # 4 micro-batches, each loss scaled by 1/4, one step
            total = 0.0
            for xs, ys in zip(np.split(x, 4), np.split(y, 4)):
                loss = loss_fn(model(lib.from_numpy(xs)), lib.from_numpy(ys)) / 4
                loss.backward()
                total += loss.item()
            losses.append(total)
        else:
            loss = loss_fn(model(lib.from_numpy(x)), lib.from_numpy(y))
            loss.backward()
            losses.append(loss.item())
        opt.step()
    return losses


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_gradient_accumulation_equals_big_batch(kind: str) -> None:
    runs = {}
    for accumulate in (True, False):
        theirs, ours = _pair(_mlp)
        t_losses = _accumulated_run(torch, theirs, kind, 5, 4, accumulate)
        c_losses = _accumulated_run(compgrad, ours, kind, 5, 4, accumulate)
        np.testing.assert_allclose(c_losses, t_losses, rtol=1e-5, atol=1e-6)
        _assert_states_close(_params_np(ours), _params_np(theirs))
        runs[accumulate] = (c_losses, _params_np(ours))
    # within compgrad: 4 accumulated micro-batches == one big batch
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5, atol=1e-6)
    _assert_states_close(runs[True][1], runs[False][1])


def test_gradient_accumulation_sums_grads() -> None:
    """Two backward passes without zero_grad add up (and zero_grad sets None by default)."""
    _, ours = _pair(_mlp)
    x, y = _data(4, seed=1)
    loss_fn = compgrad.nn.CrossEntropyLoss()
    loss_fn(ours(compgrad.from_numpy(x)), compgrad.from_numpy(y)).backward()
    once = [to_np(p.grad) for p in ours.parameters()]
    loss_fn(ours(compgrad.from_numpy(x)), compgrad.from_numpy(y)).backward()
    for g1, p in zip(once, ours.parameters()):
        np.testing.assert_allclose(to_np(p.grad), 2 * g1, rtol=1e-6, atol=1e-7)
    compgrad.optim.SGD(ours.parameters(), lr=0.1).zero_grad()
    assert all(p.grad is None for p in ours.parameters())


# ------------------------------------------------------------ frozen-backbone fine-tuning

def _finetune_model(lib):
    nn = lib.nn
    backbone = nn.Sequential(nn.Linear(N_IN, N_HID), nn.ReLU(), nn.Linear(N_HID, N_HID),
                             nn.ReLU())
    return nn.Sequential(backbone, nn.Linear(N_HID, N_OUT))


def _finetune(lib, model, kind: str, all_params: bool, weight_decay: float, steps: int = 10):
    backbone, head = model[0], model[1]
    backbone.requires_grad_(False)
    params = model.parameters() if all_params else head.parameters()
    opt = _make_opt(lib, kind, params, weight_decay=weight_decay)
    loss_fn = lib.nn.CrossEntropyLoss()
    trajectory = []
    for step in range(steps):
        x, y = _data(8, seed=200 + step)
        opt.zero_grad()
        loss = loss_fn(model(lib.from_numpy(x)), lib.from_numpy(y))
        loss.backward()
        assert all(p.grad is None for p in backbone.parameters())
        assert all(p.grad is not None for p in head.parameters())
        opt.step()
        trajectory.append((loss.item(), {k: to_np(v) for k, v in head.state_dict().items()}))
    return trajectory


@pytest.mark.parametrize("kind,all_params,weight_decay", [
    ("sgd", False, 0.0),
    ("adam", False, 0.0),
    ("sgd", True, 0.0),
    ("sgd", True, 0.1),
    ("adam", True, 0.1),
    ("adamw", True, 0.1),
])
def test_frozen_backbone_finetuning(kind: str, all_params: bool, weight_decay: float) -> None:
    theirs, ours = _pair(_finetune_model)
    # "pretrained": move the backbone away from its initialisation (same in both)
    pre = {k: v + 0.25 for k, v in _params_np(theirs[0]).items()}
    theirs[0].load_state_dict({k: torch.from_numpy(v.copy()) for k, v in pre.items()})
    ours[0].load_state_dict({k: compgrad.from_numpy(v.copy()) for k, v in pre.items()})

    t_traj = _finetune(torch, theirs, kind, all_params, weight_decay)
    c_traj = _finetune(compgrad, ours, kind, all_params, weight_decay)

    after = _params_np(ours[0])
    for k, v in pre.items():  # frozen: bit-identical, even with weight decay
        assert after[k].dtype == v.dtype and np.array_equal(after[k], v), k
    assert all(not p.requires_grad for p in ours[0].parameters())
    for (cl, ch), (tl, th) in zip(c_traj, t_traj):
        np.testing.assert_allclose(cl, tl, rtol=1e-5, atol=1e-6)
        _assert_states_close(ch, th)
    # the head did learn something
    assert not np.allclose(c_traj[-1][1]["weight"], c_traj[0][1]["weight"])


def test_frozen_params_have_no_optimizer_state() -> None:
    """Frozen parameters passed to the optimizer get no state (as in torch)."""
    for lib in _libs():
        torch.manual_seed(0)
        model = _finetune_model(lib)
        model[0].requires_grad_(False)
        opt = lib.optim.Adam(model.parameters(), lr=0.01)
        x, y = _data(8, seed=3)
        lib.nn.CrossEntropyLoss()(model(lib.from_numpy(x)), lib.from_numpy(y)).backward()
        opt.step()
        assert len(opt.state) == 2  # head weight and bias only
        assert all(p not in opt.state for p in model[0].parameters())


# -------------------------------------------------------------------------- small CNN

def _cnn(lib):
    nn = lib.nn
    # no conv bias: batch norm removes it, so its gradient is rounding noise, which Adam
    # (dividing by sqrt(v)) would turn into full-size steps that differ between libraries
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, N_OUT))


def _cnn_run(lib, model, steps: int = 5):
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = lib.nn.CrossEntropyLoss()
    model.train()
    losses = []
    for step in range(steps):
        x, y = _data(8, seed=300 + step, shape=(1, 8, 8))
        opt.zero_grad()
        loss = loss_fn(model(lib.from_numpy(x)), lib.from_numpy(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    x, _ = _data(5, seed=999, shape=(1, 8, 8))
    with lib.no_grad():
        out_eval = model(lib.from_numpy(x))
    return losses, out_eval


def test_small_cnn_train_then_eval() -> None:
    theirs, ours = _pair(_cnn)
    t_losses, t_out = _cnn_run(torch, theirs)
    c_losses, c_out = _cnn_run(compgrad, ours)
    np.testing.assert_allclose(c_losses, t_losses, rtol=1e-4, atol=1e-5)
    close(c_out, t_out, rtol=1e-4, atol=1e-5)
    assert not c_out.requires_grad
    bn_t, bn_c = theirs[1], ours[1]
    close(bn_c.running_mean, bn_t.running_mean)
    close(bn_c.running_var, bn_t.running_var)
    assert int(bn_c.num_batches_tracked.item()) == int(bn_t.num_batches_tracked.item()) == 5
    _assert_states_close(_params_np(ours), _params_np(theirs), rtol=1e-4, atol=1e-5)
    assert not ours.training and not bn_c.training


def test_cnn_eval_mode_does_not_touch_running_stats() -> None:
    _, ours = _pair(_cnn)
    ours.eval()
    before = _params_np(ours)
    x, _ = _data(4, seed=5, shape=(1, 8, 8))
    ours(compgrad.from_numpy(x))
    after = _params_np(ours)
    for k in before:
        assert np.array_equal(before[k], after[k]), k


# ----------------------------------------------------------------- checkpoint and resume

def _ckpt_model(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(N_IN, N_HID), nn.BatchNorm1d(N_HID), nn.ReLU(),
                         nn.Linear(N_HID, N_OUT))


def _train(lib, model, opt, steps: range):
    loss_fn = lib.nn.CrossEntropyLoss()
    model.train()
    losses = []
    for step in steps:
        x, y = _data(8, seed=400 + step)
        opt.zero_grad()
        loss = loss_fn(model(lib.from_numpy(x)), lib.from_numpy(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_checkpoint_resume_equals_uninterrupted(kind: str, tmp_path) -> None:
    theirs, ours = _pair(_ckpt_model)
    torch.manual_seed(0)
    fresh = _ckpt_model(compgrad)
    copy_state(theirs, fresh)

    # uninterrupted: 6 steps (and torch's, for reference)
    t_losses = _train(torch, theirs, _make_opt(torch, kind, theirs.parameters()), range(6))
    opt_full = _make_opt(compgrad, kind, ours.parameters())
    full_losses = _train(compgrad, ours, opt_full, range(6))
    np.testing.assert_allclose(full_losses, t_losses, rtol=1e-5, atol=1e-6)

    # interrupted: 3 steps, save, load into fresh objects, 3 more steps
    model = fresh
    opt = _make_opt(compgrad, kind, model.parameters())
    first = _train(compgrad, model, opt, range(3))
    path = tmp_path / "ckpt.pt"
    compgrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 3},
                  path)
    del model, opt
    ckpt = compgrad.load(path)
    assert ckpt["step"] == 3
    torch.manual_seed(123)  # different init: everything must come from the checkpoint
    model2 = _ckpt_model(compgrad)
    model2.load_state_dict(ckpt["model"])
    opt2 = _make_opt(compgrad, kind, model2.parameters())
    opt2.load_state_dict(ckpt["optimizer"])
    second = _train(compgrad, model2, opt2, range(3, 6))

    assert first + second == full_losses  # bit-identical continuation
    final, expected = _params_np(model2), _params_np(ours)
    for k in expected:
        assert np.array_equal(final[k], expected[k]), k
    s_full, s_resumed = opt_full.state_dict(), opt2.state_dict()
    assert s_resumed["param_groups"] == s_full["param_groups"]
    assert sorted(s_resumed["state"]) == sorted(s_full["state"])
    for i, st in s_full["state"].items():
        assert sorted(st) == sorted(s_resumed["state"][i])
        for key, value in st.items():  # momentum buffers, exp_avg(_sq), step: identical
            assert np.array_equal(to_np(s_resumed["state"][i][key]), to_np(value)), (i, key)


def test_checkpoint_loaded_tensors_are_independent(tmp_path) -> None:
    """Training the resumed model must not change the saved-then-loaded dict's tensors."""
    _, ours = _pair(_ckpt_model)
    opt = _make_opt(compgrad, "adam", ours.parameters())
    _train(compgrad, ours, opt, range(2))
    compgrad.save({"model": ours.state_dict(), "optimizer": opt.state_dict()},
                  tmp_path / "c.pt")
    ckpt = compgrad.load(tmp_path / "c.pt")
    snapshot = {k: to_np(v) for k, v in ckpt["model"].items()}
    model2 = _ckpt_model(compgrad)
    model2.load_state_dict(ckpt["model"])
    opt2 = _make_opt(compgrad, "adam", model2.parameters())
    opt2.load_state_dict(ckpt["optimizer"])
    _train(compgrad, model2, opt2, range(2, 4))
    for k, v in ckpt["model"].items():
        assert np.array_equal(to_np(v), snapshot[k]), k


# ------------------------------------------------------------------------- bad input

def _error(fn):
    """(exception type, message) raised by ``fn()``, or None."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - any exception is compared with torch's
        return type(exc), str(exc)
    return None


def _same_error(make) -> tuple[type, str]:
    """``make(lib)`` must raise the same exception type and message in both libraries."""
    t_err, c_err = _error(lambda: make(torch)), _error(lambda: make(compgrad))
    assert t_err is not None, "torch did not raise"
    assert c_err is not None, f"compgrad did not raise (torch: {t_err})"
    assert c_err[0] is t_err[0], (c_err, t_err)
    assert c_err[1] == t_err[1]
    return c_err


def test_optimizer_rejects_non_leaf() -> None:
    def make(lib):
        w = lib.ones(3, requires_grad=True)
        lib.optim.SGD([w * 2], lr=0.1)

    typ, msg = _same_error(make)
    assert typ is ValueError and msg == "can't optimize a non-leaf Tensor"


def test_optimizer_duplicate_parameter() -> None:
    # in one group: a warning (PyTorch keeps both entries and updates twice)
    results = {}
    for lib in _libs():
        w = lib.tensor([1.0, 2.0], requires_grad=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt = lib.optim.SGD([w, w], lr=0.1)
        results[lib] = [str(c.message) for c in caught if issubclass(c.category, UserWarning)]
        assert len(opt.param_groups[0]["params"]) == 2
        (w * w).sum().backward()
        opt.step()
        results[lib].append(to_np(w).tolist())
    assert results[compgrad] == results[torch]
    assert "duplicate parameters" in results[compgrad][0]

    # across groups: an error, naming the problem
    def make(lib):
        lin = lib.nn.Linear(2, 2)
        lib.optim.SGD([{"params": [lin.weight]}, {"params": [lin.weight, lin.bias]}], lr=0.1)

    typ, msg = _same_error(make)
    assert typ is ValueError and "more than one parameter group" in msg


def test_wrong_input_shape_leaves_model_unchanged() -> None:
    theirs, ours = _pair(lambda lib: lib.nn.Sequential(lib.nn.Linear(4, 3)))
    before = _params_np(ours)

    def make(lib):
        model = theirs if lib is torch else ours
        opt = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        opt.zero_grad()
        try:
            model(lib.zeros(32, 5)).sum().backward()
        finally:
            opt.step()  # no gradients: must be a no-op

    typ, msg = _same_error(make)
    assert typ is RuntimeError
    assert msg == "mat1 and mat2 shapes cannot be multiplied (32x5 and 4x3)"
    after = _params_np(ours)
    for k in before:
        assert np.array_equal(before[k], after[k]), k
    assert all(p.grad is None for p in ours.parameters())


def test_failed_closure_leaves_parameters_and_state_unchanged() -> None:
    _, ours = _pair(_mlp)
    opt = compgrad.optim.Adam(ours.parameters(), lr=0.1)
    # one ordinary step first, so there is optimizer state to protect
    x, y = _data(4, seed=7)
    compgrad.nn.CrossEntropyLoss()(ours(compgrad.from_numpy(x)),
                                   compgrad.from_numpy(y)).backward()
    opt.step()
    before = _params_np(ours)
    state_before = {k: to_np(v) for s in opt.state.values() for k, v in s.items()
                    if isinstance(v, compgrad.Tensor)}

    def closure():
        raise RuntimeError("closure failed")

    with pytest.raises(RuntimeError, match="closure failed"):
        opt.step(closure)
    after = _params_np(ours)
    for k in before:
        assert np.array_equal(before[k], after[k]), k
    state_after = {k: to_np(v) for s in opt.state.values() for k, v in s.items()
                   if isinstance(v, compgrad.Tensor)}
    for k in state_before:
        assert np.array_equal(state_before[k], state_after[k]), k


def test_second_backward_without_retain_graph_keeps_grads() -> None:
    def make(lib):
        torch.manual_seed(0)
        model = _mlp(lib)
        x, y = _data(4, seed=8)
        loss = lib.nn.CrossEntropyLoss()(model(lib.from_numpy(x)), lib.from_numpy(y))
        loss.backward()
        make.grads[lib] = (model, [to_np(p.grad) for p in model.parameters()])
        loss.backward()

    make.grads = {}
    typ, _ = _same_error(make)
    assert typ is RuntimeError
    model, grads = make.grads[compgrad]
    for g, p in zip(grads, model.parameters()):
        assert np.array_equal(to_np(p.grad), g)


@pytest.mark.parametrize("target_shape", [
    (8,),  # float class indices of the right shape: the dtype is the problem
    (7,), (8, 3), (8, 1), (7, 4),  # shape errors come first, as in PyTorch
])
def test_cross_entropy_float_targets_wrong_shape(target_shape: tuple[int, ...]) -> None:
    def make(lib):
        logits = lib.zeros(8, 4, requires_grad=True)
        lib.nn.CrossEntropyLoss()(logits, lib.zeros(*target_shape))

    _same_error(make)


def test_cross_entropy_long_targets_wrong_shape() -> None:
    for shape in [(7,), (8, 1)]:
        def make(lib, shape=shape):
            lib.nn.CrossEntropyLoss()(lib.zeros(8, 4), lib.zeros(*shape, dtype=lib.long))

        _same_error(make)


def test_dataloader_over_empty_dataset() -> None:
    for lib in _libs():
        data = lib.utils.data

        class Empty(data.Dataset):
            def __len__(self) -> int:
                return 0

            def __getitem__(self, index):
                raise IndexError(index)

        for kwargs in ({}, {"batch_size": 4}, {"batch_size": 4, "drop_last": True},
                       {"batch_size": None}):
            loader = data.DataLoader(Empty(), **kwargs)
            assert len(loader) == 0, (lib.__name__, kwargs)
            assert list(loader) == [], (lib.__name__, kwargs)
        rows = data.TensorDataset(lib.zeros(0, 3), lib.zeros(0, dtype=lib.long))
        loader = data.DataLoader(rows, batch_size=2)
        assert len(rows) == 0 and len(loader) == 0 and list(loader) == []

    def make(lib):
        class Empty(lib.utils.data.Dataset):
            def __len__(self) -> int:
                return 0

        lib.utils.data.DataLoader(Empty(), batch_size=4, shuffle=True)

    typ, msg = _same_error(make)  # shuffling nothing: PyTorch's RandomSampler refuses
    assert typ is ValueError and "num_samples" in msg
