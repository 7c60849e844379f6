"""The parent's end of the worker processes: start one per contestant, send requests, wait
for answers with a time limit, and kill and restart a worker that died or hung.

Requests and answers travel over two pipes (``multiprocessing.connection`` on inherited
file descriptors); the worker's stdout and stderr go to a log file whose tail is quoted when
the worker fails, so a broken contestant gives an error that says what happened instead of
a benchmark that hangs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.compiled import policy
from benchmarks.compiled.settings import REPO_ROOT

LOG_TAIL_CHARS = 2000
POLL_SLICE_S = 0.5  # how often a wait checks whether the worker is still alive


class ContestantError(Exception):
    """The contestant's program raised in its worker (which lives on); the message is
    ``"Type: message"`` and ``.traceback`` the worker's traceback."""

    def __init__(self, message: str, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = worker_traceback


class WorkerError(RuntimeError):
    """A worker died, did not answer in time, or could not be started (it is killed)."""


@dataclass(frozen=True)
class Timeouts:
    """How long the parent waits for an answer, in s: the start (library imports), a
    case's set-up (its first calls compile: torch.compile takes minutes on 2 cores), and
    any other request (a timed loop, warm-up, profile)."""

    start_s: float = 300.0
    setup_s: float = 1800.0
    call_s: float = 600.0


class Worker:
    """One contestant's process and the pipes to it."""

    def __init__(self, contestant: str, env: dict[str, str], log_path: Path,
                 preload: tuple[str, ...] = ()) -> None:
        self.contestant = contestant
        self.log_path = log_path
        parent_in, child_out = os.pipe()
        child_in, parent_out = os.pipe()
        argv = [sys.executable, "-m", "benchmarks.compiled.worker", contestant,
                str(child_in), str(child_out), *preload]
        try:
            with open(log_path, "ab") as log:
                self.process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT,
                                                stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                pass_fds=(child_in, child_out))
        except OSError:
            for fd in (parent_in, parent_out):
                os.close(fd)
            raise
        finally:
            os.close(child_in)  # the child's ends: closed here, so a dead child reads as EOF
            os.close(child_out)
        self.inbox = Connection(parent_in, writable=False)
        self.outbox = Connection(parent_out, readable=False)
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, command: str, timeout_s: float, **kwargs: Any) -> Any:
        """Send a request and return the worker's answer.

        Raises ``ContestantError`` where the contestant's code raised, ``WorkerError``
        (after killing the worker) where the worker is gone, dies or gives no answer within
        ``timeout_s``.
        """
        try:
            self.outbox.send((command, kwargs))
        except OSError as exc:  # BrokenPipeError: the worker is gone
            raise self._fail(f"could not send {command!r} ({exc})") from None
        deadline = time.monotonic() + timeout_s
        while not self.inbox.poll(min(POLL_SLICE_S, max(0.0, deadline - time.monotonic()))):
            if not self.alive:
                raise self._fail(f"exited with status {self.process.returncode} during "
                                 f"{command!r}")
            if time.monotonic() >= deadline:
                raise self._fail(f"gave no answer to {command!r} within {timeout_s:g} s")
        try:
            answer = self.inbox.recv()
        except (EOFError, OSError):
            self.process.wait(timeout=10)
            raise self._fail(f"exited with status {self.process.returncode} during "
                             f"{command!r}") from None
        if answer[0] == "error":
            raise ContestantError(answer[1], answer[2])
        return answer[1]

    def _fail(self, what: str) -> WorkerError:
        self.kill()
        return WorkerError(f"worker for {self.contestant!r} (pid {self.pid}) {what}; "
                           f"it was killed. Its output ends with:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """The last ``LOG_TAIL_CHARS`` characters of the worker's stdout and stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-LOG_TAIL_CHARS:] or "(nothing)"

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the worker to exit; kill it where it does not within ``timeout_s``."""
        if self.alive:
            try:
                self.call("exit", timeout_s)
                self.process.wait(timeout=timeout_s)
            except (WorkerError, ContestantError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """End the process (where it still runs) and close the pipes."""
        if self.alive:
            self.process.kill()
        self.process.wait()
        self.inbox.close()
        self.outbox.close()


class WorkerPool:
    """At most one live worker per contestant, started on demand and kept across cases.

    ``preload``: ``module:function`` specs every worker calls before serving;
    ``cache_dir``: where compgrad's, Numba's and Inductor's caches go (default: wherever
    the environment says); ``timeouts``: how long to wait for answers.
    """

    def __init__(self, preload: tuple[str, ...] = (), cache_dir: Path | None = None,
                 timeouts: Timeouts = Timeouts()) -> None:
        self.preload = tuple(preload)
        self.cache_dir = cache_dir
        self.timeouts = timeouts
        self._logs = tempfile.TemporaryDirectory(prefix="compgrad-bench-workers-")
        self.workers: dict[str, Worker] = {}
        self.started: dict[str, int] = {}  # contestant -> processes started (restarts + 1)

    def start(self, contestants: list[str]) -> dict[str, str]:
        """Start the missing workers together (their imports overlap), then greet each;
        the contestants whose worker failed to start, with the error."""
        fresh = []
        errors: dict[str, str] = {}
        for c in contestants:
            if c not in self.workers or not self.workers[c].alive:
                self.discard(c)  # a dead one: reaped, its pipes closed
                n = self.started[c] = self.started.get(c, 0) + 1
                log = Path(self._logs.name) / f"{c}-{n}.log"
                try:
                    self.workers[c] = Worker(c, policy.worker_env(c, self.cache_dir), log,
                                             self.preload)
                except OSError as exc:
                    errors[c] = f"could not start a worker for {c!r}: {exc}"
                    continue
                fresh.append(c)
        for c in fresh:
            try:
                self.workers[c].info = self.workers[c].call("hello", self.timeouts.start_s)
            except (WorkerError, ContestantError) as exc:
                self.discard(c)
                errors[c] = str(exc)
        return errors

    def get(self, contestant: str) -> Worker:
        """The contestant's live worker, started (and greeted) where there is none."""
        errors = self.start([contestant])
        if contestant in errors:
            raise WorkerError(errors[contestant])
        return self.workers[contestant]

    def discard(self, contestant: str) -> None:
        """Kill the contestant's worker (the next ``get`` starts a new one)."""
        worker = self.workers.pop(contestant, None)
        if worker is not None:
            worker.kill()

    def close(self) -> None:
        """End every worker and remove the logs."""
        for c in list(self.workers):
            self.workers.pop(c).close()
        self._logs.cleanup()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
