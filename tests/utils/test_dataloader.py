"""DataLoader in the main process (num_workers=0) against torch.utils.data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import compgrad
import compgrad.utils.data as cdata
from tests.utils._common import norm

torch = pytest.importorskip("torch")
tdata = torch.utils.data


def _datasets(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return (cdata.TensorDataset(compgrad.from_numpy(x), compgrad.from_numpy(y)),
            tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)))


@pytest.mark.parametrize("n", [0, 1, 7, 10])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 11])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sequential_batches_and_len(n, batch_size, drop_last):
    ours, theirs = _datasets(n)
    a = cdata.DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
    b = tdata.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    assert len(a) == len(b)
    assert norm(list(a)) == norm(list(b))


def test_no_batching():
    ours, theirs = _datasets(4)
    a = list(cdata.DataLoader(ours, batch_size=None))
    b = list(tdata.DataLoader(theirs, batch_size=None))
    assert norm(a) == norm(b) and len(a) == 4
    # numpy samples are converted (default_convert), plain values kept
    arrays = [np.full(2, i, np.float32) for i in range(3)]
    assert norm(list(cdata.DataLoader(arrays, batch_size=None))) == norm(
        list(tdata.DataLoader(arrays, batch_size=None)))
    assert len(cdata.DataLoader(arrays, batch_size=None)) == 3


def test_python_list_dataset_and_dict_samples():
    samples = [{"x": [float(i), float(i + 1)], "y": i, "name": f"s{i}"} for i in range(5)]
    a = list(cdata.DataLoader(samples, batch_size=2))
    b = list(tdata.DataLoader(samples, batch_size=2))
    assert norm(a) == norm(b)


def test_batch_sampler_and_sampler_arguments():
    ours, theirs = _datasets(10)
    batches = [[0, 5], [9], [1, 2, 3]]
    assert norm(list(cdata.DataLoader(ours, batch_sampler=batches))) == norm(
        list(tdata.DataLoader(theirs, batch_sampler=batches)))
    assert len(cdata.DataLoader(ours, batch_sampler=batches)) == 3
    order = [9, 0, 8, 1]
    assert norm(list(cdata.DataLoader(ours, sampler=order, batch_size=3))) == norm(
        list(tdata.DataLoader(theirs, sampler=order, batch_size=3)))


def test_custom_collate_fn_and_getitems():
    class Batched(cdata.Dataset):
        calls = 0

        def __getitems__(self, indices):
            Batched.calls += 1
            return [i * 10 for i in indices]

        def __getitem__(self, i):
            raise AssertionError("the loader should use __getitems__")

        def __len__(self):
            return 5

    out = list(cdata.DataLoader(Batched(), batch_size=2, collate_fn=lambda b: b))
    assert out == [[0, 10], [20, 30], [40]] and Batched.calls == 3


def test_shuffle_reproducible_with_generator():
    ours, _ = _datasets(20)

    def epoch(seed):
        loader = cdata.DataLoader(ours, batch_size=4, shuffle=True,
                                  generator=compgrad.Generator().manual_seed(seed))
        return [b[1].tolist() for b in loader]

    first = epoch(0)
    assert sorted(i for b in first for i in b) == list(range(20))
    assert epoch(0) == first and epoch(1) != first
    # two epochs of one loader differ; reseeding the default generator repeats them
    compgrad.manual_seed(3)
    loader = cdata.DataLoader(ours, batch_size=5, shuffle=True)
    e1 = [b[1].tolist() for b in loader]
    e2 = [b[1].tolist() for b in loader]
    assert e1 != e2
    compgrad.manual_seed(3)
    assert [b[1].tolist() for b in loader] == e1


class _Stream(cdata.IterableDataset):
    def __init__(self, n, with_len=True):
        self.n, self.with_len = n, with_len

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        if not self.with_len:
            raise TypeError("no len")
        return self.n


class _TStream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size", [None, 1, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_iterable_dataset(batch_size, drop_last):
    if batch_size is None and drop_last:
        pytest.skip("mutually exclusive")
    a = cdata.DataLoader(_Stream(7), batch_size=batch_size, drop_last=drop_last)
    b = tdata.DataLoader(_TStream(7), batch_size=batch_size, drop_last=drop_last)
    assert len(a) == len(b)
    assert norm(list(a)) == norm(list(b))


def test_iterable_dataset_len_warning_and_missing_len():
    class Liar(_Stream):
        def __len__(self):
            return 2

    loader = cdata.DataLoader(Liar(4), batch_size=None)
    assert len(loader) == 2
    with pytest.warns(UserWarning, match="was reported to be 2"):
        assert list(loader) == [0, 1, 2, 3]

    class NoLen(cdata.IterableDataset):
        def __iter__(self):
            return iter([1])

    with pytest.raises(TypeError):
        len(cdata.DataLoader(NoLen()))
    assert norm(list(cdata.DataLoader(NoLen()))) == norm([torch.tensor([1])])


def test_empty_dataset():
    ours, theirs = _datasets(0)
    assert len(cdata.DataLoader(ours)) == 0 and list(cdata.DataLoader(ours)) == []
    assert list(cdata.DataLoader(_Stream(0), batch_size=2)) == []
    for lib, ds in ((cdata, ours), (tdata, theirs)):
        with pytest.raises(ValueError, match="num_samples should be a positive integer value, "
                                             "but got num_samples=0"):
            lib.DataLoader(ds, shuffle=True)


ARG_ERRORS = [
    (dict(num_workers=-1), ValueError, "num_workers option should be non-negative"),
    (dict(timeout=-1), ValueError, "timeout option should be non-negative"),
    (dict(prefetch_factor=2), ValueError, "prefetch_factor option could only be specified"),
    (dict(num_workers=1, prefetch_factor=-1), ValueError, "prefetch_factor option should be "
                                                          "non-negative"),
    (dict(persistent_workers=True), ValueError, "persistent_workers option needs num_workers"),
    (dict(sampler=[0, 1], shuffle=True), ValueError,
     "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), ValueError,
     "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
     "drop_last"),
    (dict(batch_sampler=[[0]], shuffle=True), ValueError, "batch_sampler option is mutually"),
    (dict(batch_sampler=[[0]], sampler=[0]), ValueError, "batch_sampler option is mutually"),
    (dict(batch_sampler=[[0]], drop_last=True), ValueError, "batch_sampler option is mutually"),
    (dict(batch_size=None, drop_last=True), ValueError,
     "batch_size=None option disables auto-batching and is mutually exclusive with drop_last"),
    (dict(batch_size=0), ValueError, "batch_size should be a positive integer value"),
    (dict(multiprocessing_context="fork"), ValueError,
     "multiprocessing_context can only be used with multi-process loading"),
    (dict(num_workers=1, multiprocessing_context="nope"), ValueError,
     "multiprocessing_context option should specify a valid start method"),
    (dict(num_workers=1, multiprocessing_context=3), TypeError,
     "multiprocessing_context option should be a valid context"),
]


@pytest.mark.parametrize("kwargs, exc, match", ARG_ERRORS)
def test_argument_errors_match_torch(kwargs, exc, match):
    ours, theirs = _datasets(4)
    with pytest.raises(exc, match=match):
        tdata.DataLoader(theirs, **kwargs)
    with pytest.raises(exc, match=match):
        cdata.DataLoader(ours, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(shuffle=True), "expected unspecified shuffle option, but got shuffle=True"),
    (dict(sampler=[0]), "expected unspecified sampler option"),
    (dict(batch_sampler=[[0]]), "expected unspecified batch_sampler option"),
])
def test_iterable_dataset_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tdata.DataLoader(_TStream(3), **kwargs)
    with pytest.raises(ValueError, match=match):
        cdata.DataLoader(_Stream(3), **kwargs)


def test_attributes_frozen_after_init():
    ours, _ = _datasets(4)
    loader = cdata.DataLoader(ours, batch_size=2)
    assert loader.batch_size == 2 and loader.drop_last is False
    assert isinstance(loader.sampler, cdata.SequentialSampler)
    assert isinstance(loader.batch_sampler, cdata.BatchSampler)
    assert isinstance(cdata.DataLoader(ours, shuffle=True).sampler, cdata.RandomSampler)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after "
                                         "DataLoader is initialized"):
        loader.batch_size = 3
    loader.num_workers = 0  # other attributes may change


def test_pin_memory_is_accepted():
    ours, _ = _datasets(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = list(cdata.DataLoader(ours, batch_size=2, pin_memory=True))
    assert [b[1].tolist() for b in out] == [[0, 1], [2]]
