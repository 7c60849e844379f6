"""compgrad.state_epoch: the changes a compiled replay must notice bump the counters,
and the watched containers behave as the plain ones."""

import copy
import io
import pickle

import pytest

import compgrad as torch
from compgrad import state_epoch
from compgrad.state_epoch import WatchedDict, WatchedStateDict


def _bumps(action) -> int:
    before = state_epoch.STRUCTURE[0]
    action()
    return state_epoch.STRUCTURE[0] - before


def _model():
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())


@pytest.mark.parametrize("action", [
    lambda m, o: setattr(m, "training", False),
    lambda m, o: m.eval(),
    lambda m, o: setattr(m[0], "scale", 2.0),
    lambda m, o: delattr(m[0], "bias"),
    lambda m, o: m.register_buffer("b", torch.zeros(1)),
    lambda m, o: m.add_module("extra", torch.nn.ReLU()),
    lambda m, o: m.register_forward_hook(lambda *a: None),
    lambda m, o: m[0].weight.register_hook(lambda g: g),
    lambda m, o: m.register_forward_hook(lambda *a: None).remove(),
    lambda m, o: setattr(m[0].weight, "data", torch.zeros(3, 2)),
    lambda m, o: o.state[m[0].weight].__setitem__("momentum_buffer", torch.zeros(3, 2)),
    lambda m, o: o.register_step_post_hook(lambda *a: None),
    lambda m, o: m.__delitem__(1),
], ids=["training", "eval", "attribute", "delattr", "buffer", "module", "forward hook",
        "tensor hook", "hook removed", "data", "optimizer state",
        "optimizer hook", "container delete"])
def test_changes_a_replay_depends_on_bump_the_structure_counter(action):
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    assert _bumps(lambda: action(m, opt)) > 0


def test_reads_and_steps_after_the_first_do_not_bump():
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(4, 2)
    m(x).sum().backward()
    opt.step()   # the first step makes the momentum buffers: bumps

    def steady():
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()
        _ = [p.grad for p in m.parameters()], m.training, opt.param_groups[0]["lr"]

    assert _bumps(steady) == 0


def test_watched_containers_copy_and_pickle_as_plain_ones():
    d = WatchedDict(a=1)
    assert copy.deepcopy(d) == {"a": 1} and type(pickle.loads(pickle.dumps(d))) is dict
    s = WatchedStateDict()
    s["k"]["x"] = 1
    assert type(s["k"]) is WatchedDict and dict(pickle.loads(pickle.dumps(s))) == {"k": {"x": 1}}
    for action in (lambda: d.update(b=2), lambda: d.pop("a"), lambda: d.setdefault("c", 3),
                   lambda: s.pop("k"), lambda: d.clear()):
        assert _bumps(action) == 1


def test_optimizer_state_survives_save_load_and_deepcopy():
    m = _model()
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(4, 2)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert all(type(v) is dict for v in sd["state"].values())
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    opt.load_state_dict(torch.load(buf))
    assert type(opt.state) is WatchedStateDict
    assert all(type(v) is WatchedDict for v in opt.state.values())
    assert type(copy.deepcopy(opt).state) is WatchedStateDict
