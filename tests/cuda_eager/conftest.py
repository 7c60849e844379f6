"""The GPU fixtures for these tests: ``gpu`` (the CuPy emulator, then a real GPU when one
is lent) and ``fake_gpu`` (the emulator; ``indirect`` parametrisation gives more devices)."""

from tests.support.fake_gpu import fake_gpu, gpu  # noqa: F401 - fixtures
