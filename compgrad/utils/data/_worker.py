"""What runs in a ``DataLoader`` worker process, as ``torch.utils.data._utils.worker``:
the worker loop, ``get_worker_info``, per-worker seeding, and the wrapper that carries an
exception (with the worker's traceback text) back to the main process."""

from __future__ import annotations

import os
import pickle
import queue
import random
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

# How long (seconds) a blocking queue read waits before checking that the other side of
# the conversation is still alive.
MP_STATUS_CHECK_INTERVAL = 5.0

# How often an idle worker checks whether it should stop (done_event, or a dead parent).
_POLL_INTERVAL = 0.1

# Set at interpreter exit, when queues and processes can no longer be shut down politely.
python_exit_status = False


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker: its ``id`` (0 ..
    ``num_workers - 1``), ``num_workers``, the ``seed`` its random generators (Python,
    compgrad) were seeded with, and its own copy of the ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """Information about the current ``DataLoader`` worker, or None in the main process.

    Use it in ``IterableDataset.__iter__`` or ``worker_init_fn`` to give each worker its
    own share of the data.
    """
    return _worker_info


@dataclass(frozen=True)
class _IterableDatasetStopIteration:
    """A worker's reply once its copy of an IterableDataset is exhausted."""

    worker_id: int


@dataclass(frozen=True)
class _ResumeIteration:
    """Sent to persistent workers at the start of a new epoch (and echoed back)."""

    seed: int | None = None


class KeyErrorMessage(str):
    """A str whose repr is itself: KeyError shows repr(message), which would put the
    worker's traceback on one line with escaped newlines."""

    def __repr__(self) -> str:
        return self


class ExceptionWrapper:
    """An exception caught in a worker, as its type and formatted traceback text, so it can
    cross to the main process and be raised there (``reraise``)."""

    def __init__(self, exc_info=None, where: str = "in background") -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        exc_type = exc_info[0]
        try:
            pickle.dumps(exc_type)
        except Exception:
            # a locally defined exception class cannot cross processes; say what it was
            exc_type = RuntimeError
        self.exc_type = exc_type
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self) -> None:
        """Raise the exception again, its message holding the original traceback."""
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = KeyErrorMessage(msg)
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            # the exception type needs other constructor arguments
            raise RuntimeError(msg) from None
        raise exception


def _generate_state(base_seed: int, worker_id: int) -> list[int]:
    """A NumPy seed (four 32-bit words) for a worker, mixed from the base seed and the
    worker id with NumPy's SeedSequence hashing, so workers' NumPy streams differ."""
    init_a, mult_a = 0x43B0D7E5, 0x931E8875
    init_b, mult_b = 0x8B51F9DD, 0x58F38DED
    mix_mult_l, mix_mult_r = 0xCA01F9DD, 0x4973F715
    xshift, mask32 = 16, 0xFFFFFFFF

    entropy = [worker_id, base_seed & mask32, base_seed >> 32, 0]
    hash_const_a = init_a

    def hash_(value: int) -> int:
        nonlocal hash_const_a
        value = (value ^ hash_const_a) & mask32
        hash_const_a = (hash_const_a * mult_a) & mask32
        value = (value * hash_const_a) & mask32
        return (value ^ (value >> xshift)) & mask32

    def mix(x: int, y: int) -> int:
        result = (((mix_mult_l * x) & mask32) - ((mix_mult_r * y) & mask32)) & mask32
        return (result ^ (result >> xshift)) & mask32

    pool = [hash_(e) for e in entropy]
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hash_(pool[i_src]))

    hash_const_b = init_b
    state = []
    for value in pool:
        value = (value ^ hash_const_b) & mask32
        hash_const_b = (hash_const_b * mult_b) & mask32
        value = (value * hash_const_b) & mask32
        state.append((value ^ (value >> xshift)) & mask32)
    return state


def _encode(data) -> Any:
    """Pickle a result in the worker, so that an unpicklable batch becomes an error the main
    process receives instead of an item the queue silently drops (which would hang it)."""
    from multiprocessing.reduction import ForkingPickler
    return bytes(ForkingPickler.dumps(data))


def _worker_loop(dataset_kind, dataset, index_queue, data_queue, done_event, auto_collation,
                 collate_fn, drop_last, base_seed, init_fn, worker_id, num_workers,
                 persistent_workers) -> None:
    """Serve ``(task_idx, index)`` requests from ``index_queue`` with ``(task_idx, batch)``
    replies on ``data_queue`` until told to stop (None) or the parent dies."""
    from compgrad.random import manual_seed
    from compgrad.utils.data._fetch import _DatasetKind

    try:
        seed = base_seed + worker_id
        random.seed(seed)
        manual_seed(seed)
        np.random.seed(_generate_state(base_seed, worker_id))

        global _worker_info
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                                  dataset=dataset)

        init_exception = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                  collate_fn, drop_last)
        except Exception:
            # reported as the reply to the first request, so it surfaces in order
            init_exception = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")

        iteration_end = False
        parent = os.getppid()
        while os.getppid() == parent:  # a reparented worker has lost its main process
            try:
                r = index_queue.get(timeout=_POLL_INTERVAL)
            except queue.Empty:
                if done_event.is_set():
                    # shutting down without our None: when the main process's iterator is
                    # collected as garbage, its queues' feeder threads may close first
                    break
                continue
            if isinstance(r, _ResumeIteration):
                data_queue.put((r, None))
                iteration_end = False
                fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                      collate_fn, drop_last)
                continue
            if r is None:
                break  # shutdown
            if done_event.is_set() or iteration_end:
                continue  # drain requests sent before the main process stopped
            idx, index = r
            if init_exception is not None:
                data, init_exception = init_exception, None
            else:
                try:
                    data = _encode(fetcher.fetch(index))
                except Exception as e:
                    if isinstance(e, StopIteration) and dataset_kind == _DatasetKind.Iterable:
                        data = _IterableDatasetStopIteration(worker_id)
                        iteration_end = True  # later requests are ignored until resumed
                    else:
                        data = ExceptionWrapper(
                            where=f"in DataLoader worker process {worker_id}")
            data_queue.put((idx, data))
            del data, idx, index, r
    except KeyboardInterrupt:
        pass  # the main process handles Ctrl-C
    if done_event.is_set():
        # don't block exit flushing results nobody will read
        data_queue.cancel_join_thread()
        data_queue.close()
