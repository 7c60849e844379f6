"""The record of copies between host and devices: ``cp.transfers`` (a :class:`TransferCount`
snapshot) and ``cp.transfer_log`` (a :class:`TransferLog`, which can forbid copies)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

H2D, D2H = "host_to_device", "device_to_host"


@dataclass(frozen=True)
class TransferCount:
    """How many copies between host and devices a machine has made so far: a snapshot
    (``before = cp.transfers; ...; assert cp.transfers == before``)."""

    host_to_device: int
    device_to_host: int


@dataclass(frozen=True)
class Transfer:
    """One copy between the host and a device."""

    direction: str   # "host_to_device" or "device_to_host"
    nbytes: int
    what: str        # the call that copied


class TransferLog:
    """The copies between host and devices a fake machine made (``cp.transfer_log``), for
    tests that assert "no hidden round trip through the host": ``events`` says what copied,
    and ``with cp.transfer_log.forbid(): ...`` raises at the copy itself, with its
    traceback."""

    def __init__(self):
        self.events: list[Transfer] = []
        self._forbidden = 0

    @property
    def host_to_device(self) -> int:
        """The number of host-to-device copies since the last :meth:`reset`."""
        return sum(1 for e in self.events if e.direction == H2D)

    @property
    def device_to_host(self) -> int:
        """The number of device-to-host copies since the last :meth:`reset`."""
        return sum(1 for e in self.events if e.direction == D2H)

    def count(self) -> TransferCount:
        """The numbers of copies so far, each way."""
        return TransferCount(self.host_to_device, self.device_to_host)

    def reset(self) -> None:
        """Forget the copies recorded so far."""
        self.events.clear()

    @contextlib.contextmanager
    def forbid(self) -> Iterator[None]:
        """Raise AssertionError at any copy between host and device inside the block."""
        self._forbidden += 1
        try:
            yield
        finally:
            self._forbidden -= 1

    def record(self, direction: str, nbytes: int, what: str) -> None:
        """Log one copy (called by the emulator)."""
        self.events.append(Transfer(direction, int(nbytes), what))
        if self._forbidden:
            raise AssertionError(f"forbidden {direction.replace('_', '-')} copy of {nbytes} "
                                 f"bytes ({what})")
