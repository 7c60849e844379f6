"""The kernel disk cache (codegen/cache.py): names, directories, the manifest that keeps
damaged Numba cache files from being loaded, and processes sharing one directory.

Processes are real subprocesses (tests/codegen/_cache_child.py) with
COMPGRAD_CACHE_DIR and NUMBA_CACHE_DIR in tmp_path, because Numba reads its cache
only when a fresh process first calls a function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from codegen import cache as cache_mod
from codegen.cache import KernelCache, compile_counts, default_cache_dir, load_kernel
from codegen.source import SourceBuilder, kernel_module
from tests.codegen import _cache_child

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, numba_dir: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COMPGRAD_CACHE_DIR"] = str(tmp_path / "compgrad")
    if numba_dir:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba")
    else:
        env.pop("NUMBA_CACHE_DIR", None)
    return env


def _child_cmd(kernels: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.codegen._cache_child", str(kernels), *extra]


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{err}"
    report = json.loads(out.strip().splitlines()[-1])
    assert report["ok"], report
    return report


def _child(tmp_path: Path, numba_dir: bool = True) -> dict:
    proc = subprocess.Popen(_child_cmd(tmp_path / "kernels"), cwd=ROOT,
                            env=_env(tmp_path, numba_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return _finish(proc)


def _module_name() -> str:
    return KernelCache(Path("unused")).module_name(_cache_child.SOURCE)


def _numba_files(numba_dir: Path, suffix: str) -> list[Path]:
    return sorted(numba_dir.glob(f"{_module_name()}.*{suffix}"))


# --- names and directories ------------------------------------------------------------------

def test_default_directory_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("COMPGRAD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    tag = cache_mod.version_tag()
    assert default_cache_dir() == tmp_path / "xdg" / "compgrad" / "kernels" / tag
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "compgrad" / "kernels" / tag
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / tag
    import llvmlite
    import numba
    for part in (f"numba-{numba.__version__}", f"llvmlite-{llvmlite.__version__}",
                 f"numpy-{np.__version__}", "compgrad-"):
        assert part in tag


def test_stale_version_tag_uses_another_directory_and_name(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path))
    source = "x = 1\n"
    now_dir = default_cache_dir()
    now_name = KernelCache(now_dir).module_name(source)
    old = dict(cache_mod._versions(), numba="0.50.0")
    monkeypatch.setattr(cache_mod, "_versions", lambda: old)
    assert default_cache_dir() != now_dir and "numba-0.50.0" in default_cache_dir().name
    assert KernelCache(default_cache_dir()).module_name(source) != now_name


@pytest.fixture
def fresh_versions():
    """``_versions`` read afresh during the test, and again after it."""
    cache_mod._versions.cache_clear()
    yield
    cache_mod._versions.cache_clear()


@pytest.mark.parametrize("numba_cuda", ["0.30.4", None])
def test_version_tag_names_numba_cuda_only_when_installed(monkeypatch, fresh_versions,
                                                           numba_cuda):
    real = cache_mod.importlib.metadata.version

    def version(name):
        if name != "numba-cuda":
            return real(name)
        if numba_cuda is None:
            raise cache_mod.importlib.metadata.PackageNotFoundError(name)
        return numba_cuda

    monkeypatch.setattr(cache_mod.importlib.metadata, "version", version)
    tag = cache_mod.version_tag()
    assert tag.startswith("numba-") and "_numpy-" in tag
    if numba_cuda is None:
        assert "numba-cuda" not in tag
    else:
        assert "_numba-cuda-0.30.4_" in tag


def test_name_hashes_the_source():
    cache = KernelCache(Path("unused"))
    a, b = cache.module_name("x = 1\n"), cache.module_name("x = 2\n")
    assert a != b and a == cache.module_name("x = 1\n")
    assert a.startswith("kernel_") and a.isidentifier()


# --- one process -------------------------------------------------------------------------------

_SOURCE_TEMPLATE = '''@njit(cache=True, error_model="numpy")
def scale(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * np.float32({factor})
'''


def test_load_writes_registers_and_records(tmp_path):
    source = kernel_module([_SOURCE_TEMPLATE.format(factor=3.0)], header=str(tmp_path))
    cache = KernelCache(tmp_path / "kernels")
    fn = cache.load(source, "scale")
    name = cache.module_name(source)
    path = tmp_path / "kernels" / f"{name}.py"
    assert path.read_text() == source
    assert sys.modules[name].scale is fn and sys.modules[name].__file__ == str(path)
    x = np.arange(4, dtype=np.float32)
    out = np.empty_like(x)
    fn(x, out)
    np.testing.assert_array_equal(out, x * 3)
    assert compile_counts(fn) == (0, 1)
    manifest = json.loads((tmp_path / "kernels" / f"{name}.manifest.json").read_text())
    assert manifest["module"] == name
    assert {Path(f).suffix for f in manifest["numba_files"]} == {".nbi", ".nbc"}
    assert cache.stats.sources_written == 1 and cache.stats.manifests_written == 1
    assert cache.load(source, "scale") is fn          # imported once per process
    assert cache.stats.modules_loaded == 1
    with pytest.raises(AttributeError, match="defines no 'nope'"):
        cache.load(source, "nope")


def test_load_kernel_uses_the_environment_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPGRAD_CACHE_DIR", str(tmp_path))
    source = kernel_module([_SOURCE_TEMPLATE.format(factor=5.0)], header=str(tmp_path))
    fn = load_kernel(source, "scale")
    assert Path(sys.modules[fn.py_func.__module__].__file__).parent == default_cache_dir()
    assert load_kernel(source, "scale") is fn


# --- processes ---------------------------------------------------------------------------------

def test_second_process_loads_from_disk(tmp_path):
    first = _child(tmp_path)
    assert (first["loaded"], first["compiled"]) == (0, 1)
    assert first["stats"]["manifests_written"] == 1
    second = _child(tmp_path)
    assert (second["loaded"], second["compiled"]) == (1, 0), second
    assert second["stats"]["entries_rejected"] == 0
    assert second["stats"]["sources_written"] == 0


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 16):   # same size, other bytes
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def test_damaged_cache_files_are_detected_and_rebuilt(tmp_path):
    """Each damage is caught before Numba reads the file; the process rebuilds, and its
    rebuilt files verify in the next process (which starts from that state)."""
    first = _child(tmp_path)
    numba_dir = Path(first["numba_dir"])
    kernels = tmp_path / "kernels"
    manifest = kernels / f"{_module_name()}.manifest.json"
    source = kernels / f"{_module_name()}.py"
    damages = {
        "truncated .nbc": lambda: _truncate(_numba_files(numba_dir, ".nbc")[0]),
        "flipped bytes in .nbc": lambda: _flip_bytes(_numba_files(numba_dir, ".nbc")[0]),
        "garbage .nbi": lambda: _garbage(_numba_files(numba_dir, ".nbi")[0]),
        "garbled manifest": lambda: manifest.write_text("{not json"),
        "file the manifest does not know": lambda: (numba_dir / (
            _numba_files(numba_dir, ".nbc")[0].name.replace(".1.nbc", ".7.nbc"))).write_bytes(
                b"\x80\x04junk"),
    }
    for what, damage in damages.items():
        damage()
        report = _child(tmp_path)
        assert report["stats"]["entries_rejected"] == 1, (what, report)
        assert (report["loaded"], report["compiled"]) == (0, 1), (what, report)
    # a garbled source is rewritten, and what Numba compiled from it is not trusted
    source.write_text(source.read_text().replace("np.float32(2.0)", "np.float32(9.0)"))
    report = _child(tmp_path)
    assert report["stats"]["sources_repaired"] == 1
    assert (report["loaded"], report["compiled"]) == (0, 1), report
    assert source.read_text() == _cache_child.SOURCE
    healthy = _child(tmp_path)
    assert (healthy["loaded"], healthy["compiled"]) == (1, 0), healthy
    assert healthy["stats"]["entries_rejected"] == 0


def test_two_processes_compiling_at_once_both_succeed(tmp_path):
    barrier = tmp_path / "barrier"   # both children finish importing, then start together
    barrier.mkdir()
    env = _env(tmp_path)
    procs = [subprocess.Popen(_child_cmd(tmp_path / "kernels", str(barrier), "2"), cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    reports = [_finish(p) for p in procs]
    assert all(r["loaded"] + r["compiled"] == 1 for r in reports), reports
    after = _child(tmp_path)
    assert (after["loaded"], after["compiled"]) == (1, 0), after
    assert after["stats"]["entries_rejected"] == 0
    assert not list((tmp_path / "kernels").glob("*.lock"))


def test_without_numba_cache_dir_files_go_beside_the_source(tmp_path):
    first = _child(tmp_path, numba_dir=False)
    pycache = tmp_path / "kernels" / "__pycache__"
    assert Path(first["numba_dir"]) == pycache
    manifest = json.loads((tmp_path / "kernels" / f"{_module_name()}.manifest.json").read_text())
    assert manifest["numba_dir"] == str(pycache)
    assert set(manifest["numba_files"]) == {p.name for p in _numba_files(pycache, "")}


# --- the lock and the source builder ------------------------------------------------------------

def test_lock_waits_times_out_and_breaks_stale_locks(tmp_path):
    lock = tmp_path / "k.lock"
    with cache_mod._file_lock(lock):
        assert lock.exists()
        with pytest.raises(TimeoutError, match="lock"):
            with cache_mod._file_lock(lock, timeout=0.05):
                pass
    assert not lock.exists()
    lock.write_text("12345")
    old = time.time() - cache_mod.LOCK_STALE_S - 10
    os.utime(lock, (old, old))
    with cache_mod._file_lock(lock, timeout=1.0):   # left by a process that died
        assert lock.read_text() == str(os.getpid())


def test_source_builder():
    b = SourceBuilder()
    b.line("# generated")
    with b.block("def f(x):"):
        with b.block("for i in range(3):"):
            b.line("x += i")
        b.line()
        b.line("return x")
    assert b.text() == textwrap.dedent("""\
        # generated
        def f(x):
            for i in range(3):
                x += i

            return x
        """)
    with pytest.raises(ValueError, match="ends with ':'"):
        with b.block("def g()"):
            pass
    module = kernel_module([b.text()], header="one\ntwo")
    assert module.startswith("# one\n# two\nimport math\n")
    scope: dict = {}
    exec(compile(module, "<module>", "exec"), scope)
    assert scope["f"](1) == 4
