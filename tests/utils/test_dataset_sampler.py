"""Datasets, random_split and samplers against torch.utils.data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import compgrad
import compgrad.utils.data as cdata
from tests.utils._common import norm

torch = pytest.importorskip("torch")
tdata = torch.utils.data


def _both(values):
    return compgrad.tensor(values), torch.tensor(values)


# --- datasets ------------------------------------------------------------------------------

def test_tensor_dataset_rows_and_len():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    ours = cdata.TensorDataset(compgrad.from_numpy(x), compgrad.from_numpy(y))
    theirs = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert len(ours) == len(theirs) == 6
    for i in (0, 3, -1):
        assert norm(ours[i]) == norm(theirs[i])
    assert norm(ours[1:4]) == norm(theirs[1:4])


def test_tensor_dataset_size_mismatch():
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        tdata.TensorDataset(torch.zeros(3), torch.zeros(4))
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        cdata.TensorDataset(compgrad.zeros(3), compgrad.zeros(4))


def test_dataset_base_getitem_not_implemented():
    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        cdata.Dataset()[0]


def test_iterable_dataset_is_abstract():
    with pytest.raises(TypeError):
        tdata.IterableDataset()
    with pytest.raises(TypeError):
        cdata.IterableDataset()


class _Range(cdata.Dataset):
    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.offset + i

    def __len__(self):
        return self.n


class _TRange(tdata.Dataset):
    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.offset + i

    def __len__(self):
        return self.n


def test_concat_dataset_matches_torch():
    ours = cdata.ConcatDataset([_Range(3), _Range(0), _Range(4, 100)])
    theirs = tdata.ConcatDataset([_TRange(3), _TRange(0), _TRange(4, 100)])
    assert ours.cumulative_sizes == theirs.cumulative_sizes == [3, 3, 7]
    assert len(ours) == len(theirs) == 7
    assert [ours[i] for i in range(-7, 7)] == [theirs[i] for i in range(-7, 7)]
    for lib in (ours, theirs):
        with pytest.raises(ValueError, match="absolute value of index should not exceed"):
            lib[-8]


def test_concat_dataset_errors_and_add():
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        cdata.ConcatDataset([])

    class Stream(cdata.IterableDataset):
        def __iter__(self):
            return iter([1, 2])

    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        cdata.ConcatDataset([Stream()])
    both = _Range(2) + _Range(2, 10)
    assert isinstance(both, cdata.ConcatDataset)
    assert [both[i] for i in range(4)] == [0, 1, 10, 11]
    chained = Stream() + Stream()
    assert isinstance(chained, cdata.ChainDataset)
    assert list(chained) == [1, 2, 1, 2]


def test_subset_and_stack_dataset():
    base = _Range(10)
    sub = cdata.Subset(base, [7, 2, 5])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [7, 2, 5]
    assert sub.__getitems__([2, 0]) == [5, 7]
    st = cdata.StackDataset(_Range(3), _Range(3, 10))
    assert st[1] == (1, 11) and len(st) == 3
    named = cdata.StackDataset(a=_Range(3), b=_Range(3, 10))
    assert named[2] == {"a": 2, "b": 12}
    assert named.__getitems__([0, 1]) == [{"a": 0, "b": 10}, {"a": 1, "b": 11}]
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        cdata.StackDataset(_Range(3), _Range(4))

    class BadSubset(cdata.Subset):
        def __getitem__(self, idx):
            return 0

    with pytest.raises(NotImplementedError, match="overrides __getitem__ but not __getitems__"):
        BadSubset(base, [0])


# --- random_split ----------------------------------------------------------------------------

@pytest.mark.parametrize("n, lengths", [
    (10, [3, 7]), (10, [0.3, 0.7]), (11, [0.5, 0.5]), (30, [0.3, 0.3, 0.4]),
    (7, [0.25, 0.25, 0.25, 0.25]), (5, [5, 0]),
])
def test_random_split_sizes_and_disjoint(n, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = cdata.random_split(_Range(n), lengths, generator=compgrad.Generator().manual_seed(0))
        theirs = tdata.random_split(_TRange(n), lengths,
                                    generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    seen = [i for s in ours for i in s.indices]
    assert sorted(seen) == list(range(n))  # disjoint and covering
    assert all(isinstance(s, cdata.Subset) for s in ours)


def test_random_split_reproducible():
    def split(seed):
        parts = cdata.random_split(range(20), [0.5, 0.5],
                                   generator=compgrad.Generator().manual_seed(seed))
        return [list(p.indices) for p in parts]

    assert split(3) == split(3)
    assert split(3) != split(4)
    compgrad.manual_seed(5)
    a = [list(p) for p in cdata.random_split(range(8), [4, 4])]
    compgrad.manual_seed(5)
    b = [list(p) for p in cdata.random_split(range(8), [4, 4])]
    assert a == b


def test_random_split_errors():
    for lib in (cdata, tdata):
        with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
            lib.random_split(range(10), [3, 3])
        with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
            lib.random_split(range(10), [1.5, -0.5])
        with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
            lib.random_split(range(1), [0.9, 0.1])


# --- samplers --------------------------------------------------------------------------------

def test_sequential_sampler():
    assert list(cdata.SequentialSampler(range(5))) == list(tdata.SequentialSampler(range(5)))
    assert len(cdata.SequentialSampler(range(5))) == 5


def test_random_sampler_reproducible_permutation():
    def order(seed, **kw):
        return list(cdata.RandomSampler(range(10), generator=compgrad.Generator().manual_seed(seed),
                                        **kw))

    first = order(1)
    assert sorted(first) == list(range(10))
    assert order(1) == first and order(2) != first
    long = order(1, num_samples=25)
    assert len(long) == 25
    assert sorted(long[:10]) == sorted(long[10:20]) == list(range(10))
    assert len(set(long[20:])) == 5
    drawn = order(1, replacement=True, num_samples=70)
    assert len(drawn) == 70 and all(0 <= i < 10 for i in drawn)
    assert order(1, replacement=True, num_samples=70) == drawn
    # without a generator, the order follows the default generator
    compgrad.manual_seed(11)
    a = list(cdata.RandomSampler(range(10)))
    compgrad.manual_seed(11)
    assert list(cdata.RandomSampler(range(10))) == a


def test_random_sampler_len_and_errors():
    assert len(cdata.RandomSampler(range(4))) == len(tdata.RandomSampler(range(4))) == 4
    assert len(cdata.RandomSampler(range(4), num_samples=9)) == 9
    for lib in (cdata, tdata):
        with pytest.raises(TypeError, match="replacement should be a boolean value"):
            lib.RandomSampler(range(3), replacement=1)
        with pytest.raises(ValueError, match="num_samples should be a positive integer value, "
                                             "but got num_samples=0"):
            lib.RandomSampler([])
        with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
            lib.RandomSampler(range(3), num_samples=-1)


def test_subset_random_and_weighted_samplers():
    g = compgrad.Generator().manual_seed(0)
    picked = list(cdata.SubsetRandomSampler([10, 20, 30, 40], generator=g))
    assert sorted(picked) == [10, 20, 30, 40]
    assert list(cdata.SubsetRandomSampler([10, 20, 30, 40],
                                          generator=compgrad.Generator().manual_seed(0))) == picked
    w = cdata.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 50,
                                    generator=compgrad.Generator().manual_seed(0))
    drawn = list(w)
    assert len(w) == 50 and len(drawn) == 50 and set(drawn) <= {1, 3}
    nor = list(cdata.WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False))
    assert sorted(nor) == [0, 1, 2]
    for lib in (cdata, tdata):
        with pytest.raises(ValueError, match="num_samples should be a positive integer"):
            lib.WeightedRandomSampler([1.0], 0)
        with pytest.raises(ValueError, match="replacement should be a boolean value"):
            lib.WeightedRandomSampler([1.0], 1, replacement=None)
        with pytest.raises(ValueError, match="weights should be a 1d sequence"):
            lib.WeightedRandomSampler([[1.0]], 1)


@pytest.mark.parametrize("n", [0, 1, 9, 10])
@pytest.mark.parametrize("batch_size", [1, 3, 5])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_matches_torch(n, batch_size, drop_last):
    ours = cdata.BatchSampler(cdata.SequentialSampler(range(n)), batch_size, drop_last)
    theirs = tdata.BatchSampler(tdata.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)
    # any iterable of indices will do
    assert list(cdata.BatchSampler(range(n), batch_size, drop_last)) == list(theirs)


def test_batch_sampler_errors():
    for lib in (cdata, tdata):
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="batch_size should be a positive integer"):
                lib.BatchSampler(range(3), bad, False)
        with pytest.raises(ValueError, match="drop_last should be a boolean value"):
            lib.BatchSampler(range(3), 2, 0)
