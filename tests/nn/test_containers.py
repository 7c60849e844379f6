"""nn.Sequential, ModuleList, ModuleDict, ParameterList and ParameterDict vs torch.nn."""

from collections import OrderedDict

import pytest

import compgrad
from tests.nn.test_module import LIBS, _classes, _names, _shapes

torch = pytest.importorskip("torch")


# --- Sequential -----------------------------------------------------------------------------

def _seq_story(lib):
    _, Act, _ = _classes(lib)
    mods = [Act() for _ in range(5)]
    s = lib.nn.Sequential(*mods[:3])
    out = [len(s), s[0] is mods[0], s[-1] is mods[2]]
    sl = s[1:]
    out += [type(sl).__name__, _names(sl.named_children()), sl[0] is mods[1]]
    s.append(mods[3])
    s.insert(0, mods[4])
    out += [_names(s.named_children()), [mods.index(m) for m in s]]
    s.insert(-1, Act())
    out.append(len(s))
    popped = s.pop(1)
    out += [mods.index(popped), _names(s.named_children()), [type(m).__name__ for m in s]]
    del s[0]
    out += [_names(s.named_children()), len(s)]
    del s[1:3]
    out += [_names(s.named_children())]
    s.extend([Act(), Act()])
    out.append(_names(s.named_children()))
    t = s + lib.nn.Sequential(Act())
    out += [type(t).__name__, len(t), t is not s]
    s[0] = mods[0]
    out.append(s[0] is mods[0])
    od = lib.nn.Sequential(OrderedDict([("first", Act()), ("second", Act())]))
    out += [_names(od.named_children()), od.first is od[0]]
    out.append(od(lib.ones(1)).tolist())
    for bad in (5, -6):
        try:
            s[bad]
        except IndexError:
            out.append("IndexError")
    return out


def test_sequential_matches_torch():
    assert _seq_story(compgrad) == _seq_story(torch)


@LIBS
def test_sequential_errors(lib):
    s = lib.nn.Sequential(lib.nn.Module())
    with pytest.raises(IndexError):
        s.insert(5, lib.nn.Module())
    with pytest.raises(ValueError):
        s + lib.nn.ModuleList()
    with pytest.raises(TypeError):
        lib.nn.Sequential(3)


# --- ModuleList / ModuleDict ----------------------------------------------------------------

def _modulelist_story(lib):
    Affine, Act, _ = _classes(lib)
    ml = lib.nn.ModuleList([Affine(2, 2), Act()])
    out = [len(ml), _names(ml.named_children()), _names(ml.named_parameters())]
    ml.append(Affine(1, 1))
    ml.extend([Act()])
    ml += [Act()]
    ml.insert(1, Affine(3, 3))
    out += [len(ml), [type(m).__name__ for m in ml]]
    out += [type(ml[1:3]).__name__, len(ml[1:3]), ml[-1] is ml[len(ml) - 1]]
    popped = ml.pop(0)
    out += [type(popped).__name__, _names(ml.named_children())]
    del ml[0]
    out.append([type(m).__name__ for m in ml])
    ml[0] = Affine(4, 4)
    out.append(tuple(ml[0].weight.shape))
    out.append(len(ml + lib.nn.ModuleList([Act()])))
    out.append(_names(ml.named_parameters()))
    try:
        ml.extend(3)
    except TypeError:
        out.append("TypeError")
    return out


def test_modulelist_matches_torch():
    assert _modulelist_story(compgrad) == _modulelist_story(torch)


def _moduledict_story(lib):
    Affine, Act, _ = _classes(lib)
    md = lib.nn.ModuleDict({"b": Affine(2, 2), "a": Act()})
    out = [list(md), list(md.keys()), len(md), "a" in md, "z" in md]
    md["c"] = Affine(1, 1)
    md.update([("d", Act())])
    md.update(OrderedDict(e=Act()))
    out += [list(md), [type(v).__name__ for v in md.values()],
            [k for k, _ in md.items()], _names(md.named_parameters())]
    out.append(type(md.pop("a")).__name__)
    del md["b"]
    out.append(list(md))
    try:
        md.update([("x", Act(), 3)])
    except ValueError:
        out.append("ValueError")
    md.clear()
    out.append(len(md))
    return out


def test_moduledict_matches_torch():
    assert _moduledict_story(compgrad) == _moduledict_story(torch)


# --- ParameterList / ParameterDict ----------------------------------------------------------

def _paramcontainers_story(lib):
    pl = lib.nn.ParameterList([lib.nn.Parameter(lib.zeros(2)), lib.ones(3)])
    pl.append(lib.nn.Parameter(lib.zeros(1, 2)))
    pl.extend([lib.zeros(4)])
    out = [len(pl), [tuple(p.shape) for p in pl], [type(p).__name__ for p in pl],
           _names(pl.named_parameters()), type(pl[1:]).__name__, len(pl[1:])]
    p = lib.nn.Parameter(lib.zeros(7))
    pl[0] = p
    out.append(pl[0] is p and pl[-4] is p)
    pd = lib.nn.ParameterDict({"w": lib.nn.Parameter(lib.zeros(2)), "v": lib.ones(1)})
    pd["u"] = lib.zeros(3)
    pd.update({"t": lib.zeros(1)})
    out += [list(pd), list(pd.keys()), len(pd), "w" in pd, _names(pd.named_parameters()),
            [type(v).__name__ for v in pd.values()]]
    out.append(tuple(pd.pop("w").shape))
    del pd["v"]
    out.append(list(pd))
    parent = lib.nn.Module()
    parent.pl, parent.pd = pl, pd
    out.append(_shapes(parent.named_parameters()))
    out.append(list(parent.state_dict()))
    out.append(repr(parent))
    return out


def test_parameter_containers_match_torch():
    ours, theirs = _paramcontainers_story(compgrad), _paramcontainers_story(torch)
    assert ours[:-1] == theirs[:-1]
    assert ours[-1].replace("compgrad.", "torch.") == theirs[-1]


def test_modulelist_repr_compresses_repeats_like_torch():
    def build(lib):
        class Leaf(lib.nn.Module):
            def __init__(self, k):
                super().__init__()
                self.k = k

            def extra_repr(self):
                return f"k={self.k}"

        inner = lib.nn.ModuleList([Leaf(1), Leaf(1)])
        return lib.nn.ModuleList([Leaf(1), Leaf(1), Leaf(1), Leaf(2), inner, Leaf(2),
                                  lib.nn.ModuleList()])

    assert repr(build(compgrad)) == repr(build(torch))
