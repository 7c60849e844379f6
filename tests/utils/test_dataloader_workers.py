"""DataLoader with worker processes (num_workers > 0): same batches as in-process loading,
worker seeding and worker_init_fn, get_worker_info, error propagation, clean shutdown."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import compgrad
import compgrad.utils.data as cdata
from tests.utils._common import norm


def _dataset(n=13):
    x = compgrad.arange(n * 3, dtype=compgrad.float32).reshape(n, 3)
    return cdata.TensorDataset(x, compgrad.arange(n))


def _alive(iterator) -> list:
    return [w for w in iterator._workers if w.is_alive()]


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=None),
    dict(batch_size=3, in_order=True, prefetch_factor=1),
])
def test_workers_give_same_batches_as_main_process(kwargs):
    ds = _dataset()
    expected = norm(list(cdata.DataLoader(ds, **{k: v for k, v in kwargs.items()
                                                  if k != "prefetch_factor"})))
    loader = cdata.DataLoader(ds, num_workers=2, **kwargs)
    it = iter(loader)
    assert norm(list(it)) == expected
    assert not _alive(it)  # shut down once exhausted


def test_workers_with_shuffle_follow_the_generator():
    ds = _dataset(12)

    def order(num_workers):
        loader = cdata.DataLoader(ds, batch_size=5, shuffle=True, num_workers=num_workers,
                                  generator=compgrad.Generator().manual_seed(7))
        return [b[1].tolist() for b in loader]

    assert order(2) == order(0)


class _RandomDraws(cdata.Dataset):
    """Samples that record the worker and its random streams."""

    def __getitem__(self, i):
        info = cdata.get_worker_info()
        return {"index": i, "worker": -1 if info is None else info.id,
                "seed": -1 if info is None else info.seed,
                "compgrad": float(compgrad.rand(()).item()),
                "python": random.random(), "numpy": float(np.random.rand())}

    def __len__(self):
        return 6


def test_worker_seeding_is_deterministic_and_distinct():
    def run():
        loader = cdata.DataLoader(_RandomDraws(), batch_size=None, num_workers=2,
                                  generator=compgrad.Generator().manual_seed(1))
        return list(loader)

    a, b = run(), run()
    assert [s["index"] for s in a] == list(range(6))
    assert [s["worker"] for s in a] == [0, 1, 0, 1, 0, 1]  # round-robin, in order
    assert a == b  # same generator seed, same worker seeds and draws
    w0, w1 = a[0], a[1]
    assert w1["seed"] == w0["seed"] + 1
    for key in ("compgrad", "python", "numpy"):
        assert w0[key] != w1[key]
    assert cdata.get_worker_info() is None  # in the main process


def _init_fn(worker_id):
    info = cdata.get_worker_info()
    assert info.id == worker_id and info.num_workers == 2
    # split the stream between the workers, as PyTorch's docs show
    ds = info.dataset
    per_worker = math.ceil((ds.end - ds.start) / info.num_workers)
    ds.start = ds.start + worker_id * per_worker
    ds.end = min(ds.start + per_worker, ds.end)


class _RangeStream(cdata.IterableDataset):
    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(range(self.start, self.end))


def test_worker_init_fn_and_iterable_dataset():
    loader = cdata.DataLoader(_RangeStream(3, 10), batch_size=None, num_workers=2,
                              worker_init_fn=_init_fn)
    assert [int(v) for v in loader] == [3, 7, 4, 8, 5, 9, 6]
    # without splitting, each worker yields the whole stream
    loader = cdata.DataLoader(_RangeStream(0, 3), batch_size=2, num_workers=2)
    assert sorted(v for b in loader for v in b.tolist()) == [0, 0, 1, 1, 2, 2]


class _Failing(cdata.Dataset):
    def __getitem__(self, i):
        if i == 5:
            raise KeyError(f"bad sample {i}")
        if i == 7:
            raise ValueError(f"broken sample {i}")
        return i

    def __len__(self):
        return 9


def test_worker_errors_are_reraised_with_traceback():
    it = iter(cdata.DataLoader(_Failing(), batch_size=2, num_workers=2))
    assert next(it).tolist() == [0, 1]
    assert next(it).tolist() == [2, 3]
    with pytest.raises(KeyError) as info:
        next(it)
    text = str(info.value)
    assert "Caught KeyError in DataLoader worker process 0" in text
    assert "bad sample 5" in text and "Traceback" in text and "__getitem__" in text
    # the iterator goes on after an error, as PyTorch's does
    with pytest.raises(ValueError, match="Caught ValueError in DataLoader worker process 1"):
        next(it)
    assert next(it).tolist() == [8]
    with pytest.raises(StopIteration):
        next(it)
    assert not _alive(it)


def _bad_init(worker_id):
    raise RuntimeError(f"init failed in {worker_id}")


def test_worker_init_fn_error_and_shutdown_on_delete():
    it = iter(cdata.DataLoader(_dataset(), batch_size=2, num_workers=2,
                               worker_init_fn=_bad_init))
    with pytest.raises(RuntimeError, match="init failed in 0"):
        next(it)
    workers = list(it._workers)
    del it
    import gc
    gc.collect()
    for w in workers:
        w.join(timeout=5)
        assert not w.is_alive()


def test_unpicklable_batch_is_an_error_not_a_hang():
    loader = cdata.DataLoader(list(range(4)), batch_size=2, num_workers=1, timeout=20,
                              collate_fn=lambda batch: (lambda: batch))
    with pytest.raises(Exception, match="in DataLoader worker process 0"):
        next(iter(loader))


def test_persistent_workers_serve_several_epochs():
    ds = _dataset(7)
    loader = cdata.DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=True)
    expected = norm(list(cdata.DataLoader(ds, batch_size=3)))
    assert norm(list(loader)) == expected
    it = loader._iterator
    pids = [w.pid for w in it._workers]
    assert norm(list(loader)) == expected
    assert loader._iterator is it and [w.pid for w in it._workers] == pids
    assert len(_alive(it)) == 2
    it._shutdown_workers()
    assert not _alive(it)


def test_partial_iteration_then_shutdown():
    it = iter(cdata.DataLoader(_dataset(40), batch_size=2, num_workers=2))
    assert next(it)[1].tolist() == [0, 1]
    it._shutdown_workers()
    assert not _alive(it)


class _Slow(cdata.Dataset):
    def __getitem__(self, i):
        import time
        time.sleep(0.5)
        return i

    def __len__(self):
        return 2


def test_timeout():
    it = iter(cdata.DataLoader(_Slow(), num_workers=1, timeout=0.1))
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.1 seconds"):
        next(it)
    it._shutdown_workers()
    assert not _alive(it)


class _Dies(cdata.Dataset):
    def __getitem__(self, i):
        import os
        os._exit(3)

    def __len__(self):
        return 2


def test_dead_worker_is_reported(monkeypatch):
    from compgrad.utils.data import dataloader
    monkeypatch.setattr(dataloader, "MP_STATUS_CHECK_INTERVAL", 0.1)
    it = iter(cdata.DataLoader(_Dies(), num_workers=1))
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited "
                                           "unexpectedly"):
        next(it)
    it._shutdown_workers()
