"""The disk cache of generated kernel modules, safe to share between processes.

Generated source becomes a real ``.py`` file, so that Numba's ``cache=True``
keeps the compiled machine code across processes (NUMBA_NOTES.md, "Disk
caching"). The layout::

    <root>/<version tag>/kernel_<hash>.py             the source, named by its hash
    <root>/<version tag>/kernel_<hash>.manifest.json  sha256 of the source and of
                                                      Numba's files for it
    <NUMBA_CACHE_DIR or __pycache__ beside the source>/kernel_<hash>.*.nbi/.nbc

``<root>`` is ``$COMPGRAD_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/compgrad/kernels`` (``~/.cache/compgrad/kernels``). The version
tag names numba, llvmlite, numba-cuda (only when that package is installed, so
that CPU-only tags do not depend on it), numpy, compgrad (``importlib.metadata``,
"dev" when not installed) and Python, so an upgrade starts an empty directory. The file
name hashes the source together with those versions and the source of
:mod:`codegen.mathfns`: Numba's cache only checks the kernel file's own stamp,
not the helpers it inlined, so a change there must change the name.

Each module is registered in ``sys.modules`` under its file's stem before it
runs, in every process: Numba's cache records the module name and fails to
load (without recompiling) where it cannot import it. The module is executed
from the verified source bytes (no ``.pyc`` is read or written: those carry no
checksum of their contents either).

**Damaged cache files.** Numba's ``.nbi``/``.nbc`` files carry no checksum, and a
damaged one can raise on every run or crash the process (SIGSEGV/SIGABRT in
LLVM). So Numba never reads a file this module has not verified:

* The manifest lists every Numba file of the module with its size and sha256.
  Numba writes them when a function compiles for a new signature; the
  dispatchers' ``save_overload`` is wrapped so that, right after Numba has
  written, the files are hashed and the manifest rewritten, under the
  kernel's lock.
* Loading verifies before the first call (Numba reads its files lazily, at
  the first call with a signature): the source must hash to its name, and
  every Numba file of the module must be in the manifest with its recorded
  hash. Anything else (a truncated or garbled file, a file the manifest does
  not know, a missing or unreadable manifest) deletes all of the module's
  Numba files and manifest, so Numba compiles afresh and the wrapper records
  the new files. A damaged source is rewritten.

**Concurrency.** All writes are atomic (a temporary file in the same directory,
then ``os.replace``), and the steps that must see files and manifest together
(verify, record) hold a per-kernel lock file created with
``O_CREAT | O_EXCL`` (a stale lock, from a process that died holding it, is
broken after ``LOCK_STALE_S``). Compiling itself takes no lock: two
processes compiling the same kernel both succeed, and the later save wins.

Generated source must define its njit functions without explicit signatures
(lazily compiled), so that nothing is read from Numba's cache before the
verification.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["KernelCache", "CacheStats", "load_kernel", "kernel_cache", "default_cache_dir",
           "version_tag", "compile_counts", "LOCK_TIMEOUT_S", "LOCK_STALE_S"]

LOCK_TIMEOUT_S = 120.0   # give up waiting for another process's lock after this long
LOCK_STALE_S = 60.0      # a lock file older than this belongs to a process that died
_MODULE_PREFIX = "kernel_"
_NUMBA_SUFFIXES = (".nbi", ".nbc")


# --- versions and directories ---------------------------------------------------------------

def _dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``, None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _versions() -> dict[str, str]:
    """The versions a compiled kernel depends on (cached: they cannot change in a process).

    ``numba-cuda`` (the CUDA target, from the ``cuda`` extra) is named only when it is
    installed, so a machine without it keeps the tag it had before the CUDA backend."""
    import llvmlite
    import numba
    import numpy
    versions = {"numba": numba.__version__, "llvmlite": llvmlite.__version__}
    numba_cuda = _dist_version("numba-cuda")
    if numba_cuda is not None:
        versions["numba-cuda"] = numba_cuda
    versions.update(numpy=numpy.__version__, compgrad=_dist_version("compgrad") or "dev",
                    python=f"{sys.version_info[0]}.{sys.version_info[1]}")
    return versions


def version_tag(versions: dict[str, str] | None = None) -> str:
    """The directory name for these versions: ``numba-0.68.1_llvmlite-0.50.0_...``."""
    versions = dict(_versions()) if versions is None else versions
    return "_".join(f"{k}-{v}" for k, v in versions.items())


def default_cache_dir(versions: dict[str, str] | None = None) -> Path:
    """``$COMPGRAD_CACHE_DIR/<tag>``, else ``$XDG_CACHE_HOME`` (``~/.cache``)
    ``/compgrad/kernels/<tag>``."""
    root = os.environ.get("COMPGRAD_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "compgrad" / "kernels"
    return base / version_tag(versions)


@functools.cache
def _helpers_fingerprint() -> str:
    """sha256 of the helper modules kernels inline (their changes must change names)."""
    import codegen.mathfns
    return _sha256(Path(codegen.mathfns.__file__).read_bytes())


# --- files ------------------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"size": len(data), "sha256": _sha256(data)}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a
    part: a temporary file in the same directory, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``path`` as a lock file (``O_CREAT | O_EXCL``) for the ``with`` block."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                # a lock older than LOCK_STALE_S was left by a process that died
                if time.time() - path.stat().st_mtime > LOCK_STALE_S:
                    _remove(path)
                    continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for the kernel "
                                   f"cache lock {path}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        _remove(path)


# --- statistics ---------------------------------------------------------------------------------

@dataclass
class CacheStats:
    """What a :class:`KernelCache` did: modules imported, sources written, Numba cache
    entries rejected by verification (deleted, to be rebuilt), manifests written."""

    modules_loaded: int = 0
    sources_written: int = 0
    sources_repaired: int = 0
    entries_rejected: int = 0
    manifests_written: int = 0


def compile_counts(dispatcher) -> tuple[int, int]:
    """``(loaded from disk, compiled)``: Numba's cache hits and misses of a dispatcher, over
    all its signatures."""
    stats = dispatcher.stats
    return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())


# --- the cache ------------------------------------------------------------------------------------

class KernelCache:
    """Generated modules in one directory: :meth:`load` writes, verifies, imports."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.stats = CacheStats()
        # module name -> module: what this process already imported (a cache)
        self._modules: dict[str, ModuleType] = {}
        self._by_source: dict[str, ModuleType] = {}   # the same, by source text
        self._import_lock = threading.Lock()   # one import per module, whatever the threads

    def module_name(self, source: str) -> str:
        """``kernel_<hash>``: the hash of the source, the versions and the helpers."""
        h = hashlib.sha256()
        h.update(source.encode())
        h.update(json.dumps(_versions(), sort_keys=True).encode())
        h.update(_helpers_fingerprint().encode())
        return f"{_MODULE_PREFIX}{h.hexdigest()[:32]}"

    def source_path(self, source: str) -> Path:
        return self.directory / f"{self.module_name(source)}.py"

    def has_machine_code(self, source: str) -> bool:
        """Whether the manifest of ``source``'s module lists Numba files: an earlier process
        compiled it, so loading costs milliseconds, not a compile. Not a verification
        (:meth:`load` verifies before Numba reads them)."""
        try:
            manifest = json.loads(self._manifest_path(self.module_name(source)).read_text())
            return bool(manifest["numba_files"])
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def load(self, source: str, name: str) -> Callable:
        """The object ``name`` (an njit dispatcher) defined by ``source``, imported from the
        cache directory, with its Numba cache verified (see the module docstring)."""
        module = self.load_module(source)
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"generated module {module.__name__} ({module.__file__}) "
                                 f"defines no {name!r}") from None

    def load_module(self, source: str) -> ModuleType:
        """The module of ``source``, imported once per process."""
        module = self._by_source.get(source)
        if module is not None:
            return module   # without hashing the source again
        modname = self.module_name(source)
        module = self._modules.get(modname)
        if module is not None:
            self._by_source[source] = module
            return module
        with self._import_lock:
            module = sys.modules.get(modname)
            if module is None:
                module = self._load_new(modname, source)
            self._modules[modname] = self._by_source[source] = module
            return module

    def _load_new(self, modname: str, source: str) -> ModuleType:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{modname}.py"
        data = source.encode()
        with _file_lock(self._lock_path(modname)):
            repaired = self._ensure_source(path, data)
        module = self._import(modname, path, data)
        dispatchers = _cached_dispatchers(module)
        if dispatchers:
            numba_dir = Path(dispatchers[0]._cache.cache_path)
            with _file_lock(self._lock_path(modname)):
                self._verify(modname, path, numba_dir, purge=repaired)
            for d in dispatchers:
                self._record_after_save(d, modname, path, numba_dir)
        self.stats.modules_loaded += 1
        return module

    # -- steps ----------------------------------------------------------------------------------

    def _lock_path(self, modname: str) -> Path:
        return self.directory / f"{modname}.lock"

    def _manifest_path(self, modname: str) -> Path:
        return self.directory / f"{modname}.manifest.json"

    def _ensure_source(self, path: Path, data: bytes) -> bool:
        """Write the source if missing; rewrite it if it differs. True if it was damaged."""
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            _write_atomic(path, data)
            self.stats.sources_written += 1
            return False
        if current == data:
            return False
        _write_atomic(path, data)
        self.stats.sources_repaired += 1
        return True

    def _import(self, modname: str, path: Path, data: bytes) -> ModuleType:
        """Import the module file ``path`` holding ``data``, under the name ``modname``."""
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        # registered before it runs: Numba's cache refers to functions by module name
        sys.modules[modname] = module
        try:
            # compiled from the verified bytes, so that no .pyc (unchecked, like Numba's
            # files) is read or written; the code still names the real file for Numba
            exec(compile(data, str(path), "exec"), module.__dict__)
        except BaseException:
            del sys.modules[modname]
            raise
        return module

    def _numba_files(self, modname: str, numba_dir: Path) -> list[Path]:
        """Numba's index and data files for the module (and write leftovers)."""
        if not numba_dir.is_dir():
            return []
        return sorted(p for p in numba_dir.iterdir()
                      if p.name.startswith(f"{modname}.") and
                      (p.suffix in _NUMBA_SUFFIXES or ".tmp." in p.name))

    def _verify(self, modname: str, path: Path, numba_dir: Path, purge: bool) -> None:
        """Delete the module's Numba files unless the manifest vouches for every one."""
        files = self._numba_files(modname, numba_dir)
        if not files:
            return
        if not purge and self._manifest_matches(modname, path, numba_dir, files):
            return
        for f in files:
            _remove(f)
        _remove(self._manifest_path(modname))
        self.stats.entries_rejected += 1

    def _manifest_matches(self, modname: str, path: Path, numba_dir: Path,
                          files: list[Path]) -> bool:
        try:
            manifest = json.loads(self._manifest_path(modname).read_text())
            recorded = manifest["numba_files"]
            if manifest["source_sha256"] != _sha256(path.read_bytes()):
                return False
            if manifest["numba_dir"] != str(numba_dir) or \
                    set(recorded) != {f.name for f in files}:
                return False
            return all(_file_digest(f) == recorded[f.name] for f in files)
        except (OSError, ValueError, KeyError, TypeError):
            return False   # missing, unreadable or malformed: nothing is vouched for

    def _write_manifest(self, modname: str, path: Path, numba_dir: Path) -> None:
        files = [f for f in self._numba_files(modname, numba_dir) if ".tmp." not in f.name]
        manifest = {"module": modname, "source_sha256": _sha256(path.read_bytes()),
                    "numba_dir": str(numba_dir),
                    "numba_files": {f.name: _file_digest(f) for f in files}}
        _write_atomic(self._manifest_path(modname), json.dumps(manifest, indent=1).encode())
        self.stats.manifests_written += 1

    def _record_after_save(self, dispatcher, modname: str, path: Path, numba_dir: Path) -> None:
        """Wrap the dispatcher's cache so that each save by Numba is followed, under the
        kernel's lock, by a manifest of the files as they now are."""
        cache = dispatcher._cache
        save = cache.save_overload

        def save_and_record(sig, data):
            with _file_lock(self._lock_path(modname)):
                save(sig, data)
                self._write_manifest(modname, path, numba_dir)

        cache.save_overload = save_and_record


def _cached_dispatchers(module: ModuleType) -> list:
    """The module's own njit dispatchers that cache to disk."""
    from numba.core.caching import Cache
    from numba.core.dispatcher import Dispatcher
    return [v for v in vars(module).values()
            if isinstance(v, Dispatcher) and isinstance(v._cache, Cache)
            and v.py_func.__module__ == module.__name__]


# one KernelCache per directory for load_kernel (a cache of caches)
_CACHES: dict[Path, KernelCache] = {}


def kernel_cache(cache_dir: str | os.PathLike | None = None) -> KernelCache:
    """The process's :class:`KernelCache` of ``cache_dir`` (default: :func:`default_cache_dir`,
    read at each call)."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = _CACHES.get(directory)
    if cache is None:
        cache = _CACHES[directory] = KernelCache(directory)
    return cache


def load_kernel(source: str, name: str, *, cache_dir: str | os.PathLike | None = None):
    """The njit function ``name`` that ``source`` defines, loaded through the disk cache in
    ``cache_dir`` (default: :func:`default_cache_dir`, read at each call)."""
    return kernel_cache(cache_dir).load(source, name)
