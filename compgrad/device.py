"""Devices: ``compgrad.device`` and the check that a requested device exists."""

from __future__ import annotations

from ir.types import Device

__all__ = ["device", "check_device"]

device = Device


def check_device(dev) -> Device:
    """Normalise ``dev`` (``"cuda"`` names the current device's index); a CUDA device on
    a machine without one raises
    ``compgrad.cuda.CudaUnavailableError`` (a RuntimeError and an AssertionError)."""
    d = Device(dev) if not isinstance(dev, Device) else dev
    if d.type == "cuda":
        from compgrad import cuda
        if not cuda.is_available():
            # an AssertionError too, as PyTorch's CPU build raises ("not compiled with CUDA")
            raise cuda.CudaUnavailableError(
                "Found no NVIDIA driver on your system. compgrad cannot use device "
                f"'{d}' on this machine (compgrad.cuda.is_available() is False).")
        if d.index is None:   # a tensor's device always names its index, as in PyTorch
            return Device("cuda", cuda.current_device())
        if d.index >= cuda.device_count():
            raise RuntimeError(f"CUDA error: invalid device ordinal {d.index}")
    return d
