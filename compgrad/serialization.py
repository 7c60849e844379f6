"""Checkpoints: ``compgrad.save`` and ``compgrad.load``, in a format that never runs code.

A checkpoint is a zip archive holding

* ``compgrad_checkpoint.json``: ``{"format": "compgrad-checkpoint", "version": 1,
  "tensors": [...], "root": node}``. ``tensors`` lists each saved tensor's dtype,
  shape, ``requires_grad``, device and kind (tensor or parameter); ``root`` is the
  saved object as a JSON tree whose tensor nodes refer to that list by index.
* ``tensors/<i>.npy``: tensor ``i``'s values, C-contiguous, little-endian, in
  NumPy's ``.npy`` format (a literal header, then raw bytes; no pickled objects).

Unlike ``torch.save`` there is no pickle anywhere, so loading an untrusted file
can at worst raise :class:`InvalidCheckpointError`: every JSON node, every dtype,
every shape and the byte size of every array are checked before anything is
built, and archive entry names are only compared with the expected ones (never
used as paths). ``save`` writes a temporary file beside the target and renames
it into place, so an interrupted save leaves the old checkpoint intact.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import keyword
import math
import os
import secrets
import zipfile
from typing import IO, Any

import numpy as np

from compgrad.device_arrays import to_device, to_host
from compgrad.tensor import Tensor
from ir import dtypes as _dtypes
from ir.types import Device

__all__ = ["save", "load", "InvalidCheckpointError", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "compgrad-checkpoint"
FORMAT_VERSION = 1
_MANIFEST = "compgrad_checkpoint.json"
# deep enough for any real state dict; bounds recursion on both sides
_MAX_DEPTH = 200
# the manifest is read whole: refuse absurd sizes before decompressing
_MAX_MANIFEST_BYTES = 1 << 30
_DTYPES_BY_NAME = {d.name: d for d in _dtypes.ALL_DTYPES}
_KEY_TYPES = (str, int, float, bool, type(None))


class InvalidCheckpointError(RuntimeError, ValueError):
    """The file is not a valid compgrad checkpoint (raised by :func:`load`).

    A ``RuntimeError`` (what ``torch.load`` raises for bad archives) and a
    ``ValueError`` (bad content), so either ``except`` catches it.
    """


def _invalid(why: str) -> InvalidCheckpointError:
    return InvalidCheckpointError(f"not a valid compgrad checkpoint: {why}")


# --- save --------------------------------------------------------------------------------

def _path_str(path: list) -> str:
    return "".join(f"[{p!r}]" for p in path) or "<root>"


class _Encoder:
    """Turns a Python object into a JSON tree plus the list of arrays it refers to."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self.meta: list[dict] = []
        self._tensor_ids: dict[int, int] = {}
        self._active: set[int] = set()  # containers being encoded, to catch cycles

    def encode(self, obj: Any, path: list) -> Any:
        if len(path) > _MAX_DEPTH:
            raise ValueError(f"cannot save object nested deeper than {_MAX_DEPTH} levels "
                             f"at {_path_str(path[:5])}...")
        if obj is None or obj is True or obj is False or type(obj) is str:
            return obj
        if type(obj) is int:
            # hex: power-of-two bases are exempt from Python's int/str digit limit
            return {"t": "int", "v": hex(obj)}
        if type(obj) is float:
            return {"t": "float", "v": obj.hex()}  # exact, and spells nan/inf
        if type(obj) is bytes:
            return {"t": "bytes", "v": base64.b64encode(obj).decode("ascii")}
        if isinstance(obj, Tensor):
            return self._tensor(obj, path)
        if isinstance(obj, _dtypes.DType):
            return {"t": "dtype", "v": obj.name}
        if isinstance(obj, Device):
            return {"t": "device", "v": str(obj)}
        if type(obj) in (list, tuple) or _is_namedtuple(obj) or _is_size(obj):
            return self._sequence(obj, path)
        if type(obj) in (dict, collections.OrderedDict):
            return self._mapping(obj, path)
        hint = " (save its .state_dict() instead)" if callable(
            getattr(obj, "state_dict", None)) else ""
        raise TypeError(f"cannot save object of type {type(obj).__qualname__} at "
                        f"{_path_str(path)}{hint}: compgrad checkpoints hold tensors, dicts, "
                        "lists, tuples and plain Python values (None, bool, int, float, str, "
                        "bytes) only")

    def _tensor(self, t: Tensor, path: list) -> dict:
        kind = _tensor_kind(t)
        if kind is None:
            raise TypeError(f"cannot save object of type {type(t).__qualname__} at "
                            f"{_path_str(path)}: only compgrad.Tensor and nn.Parameter tensors "
                            "can be saved")
        index = self._tensor_ids.get(id(t))
        if index is None:
            index = len(self.arrays)
            self._tensor_ids[id(t)] = index
            # a view is saved as its own values (as torch's per-tensor storage is not kept)
            # (np.ascontiguousarray would turn a 0-d array into 1-d)
            little = t.dtype.np_dtype.newbyteorder("<")
            self.arrays.append(np.asarray(to_host(t._data), dtype=little, order="C"))
            self.meta.append({"dtype": t.dtype.name, "shape": list(t._data.shape),
                              "requires_grad": bool(t.requires_grad),
                              "device": str(t.device), "kind": kind})
        return {"t": "tensor", "v": index}

    def _enter(self, obj: Any, path: list) -> None:
        if id(obj) in self._active:
            raise ValueError(f"cannot save a container that contains itself, at "
                             f"{_path_str(path)}")
        self._active.add(id(obj))

    def _sequence(self, obj, path: list) -> dict:
        self._enter(obj, path)
        items = [self.encode(v, [*path, i]) for i, v in enumerate(obj)]
        self._active.discard(id(obj))
        if _is_namedtuple(obj):
            return {"t": "namedtuple", "name": type(obj).__name__,
                    "fields": list(type(obj)._fields), "v": items}
        if _is_size(obj):
            return {"t": "size", "v": items}
        return {"t": "list" if type(obj) is list else "tuple", "v": items}

    def _mapping(self, obj: dict, path: list) -> dict:
        self._enter(obj, path)
        keys, values = [], []
        for k, v in obj.items():
            if not _valid_key(k):
                raise TypeError(f"cannot save dict key {k!r} of type {type(k).__qualname__} at "
                                f"{_path_str(path)}: keys must be str, int, float, bool, None "
                                "or tuples of those")
            keys.append(self.encode(k, [*path, "<key>"]))
            values.append(self.encode(v, [*path, k]))
        self._active.discard(id(obj))
        node = {"t": "dict" if type(obj) is dict else "odict", "k": keys, "v": values}
        metadata = getattr(obj, "_metadata", None)
        if type(obj) is collections.OrderedDict and metadata is not None:
            # nn.Module.state_dict() keeps per-module versions here, as in torch
            node["metadata"] = self.encode(metadata, [*path, "_metadata"])
        return node


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and type(obj) is not tuple and hasattr(type(obj), "_fields")


def _is_size(obj) -> bool:
    from compgrad.size import Size
    return type(obj) is Size


def _valid_key(k) -> bool:
    if type(k) is tuple:
        return all(_valid_key(x) for x in k)
    return type(k) in _KEY_TYPES


def _parameter_class():
    from compgrad.nn.parameter import Parameter
    return Parameter


def _tensor_kind(t: Tensor) -> str | None:
    from compgrad.nn.parameter import Buffer, Parameter
    if type(t) is Tensor or type(t) is Buffer:
        return "tensor"  # a Buffer is only a marker for Module attributes, as in torch
    if type(t) is Parameter:
        return "parameter"
    return None


def _write_archive(stream: IO[bytes], manifest: bytes, arrays: list[np.ndarray]) -> None:
    # stored, not deflated: tensor bytes rarely compress and loading stays a plain copy
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_MANIFEST, manifest)
        for i, arr in enumerate(arrays):
            with zf.open(f"tensors/{i}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save(obj: Any, f, pickle_module=None, pickle_protocol: int = 2,
         _use_new_zipfile_serialization: bool = True) -> None:
    """Save ``obj`` (tensors in nested dicts, lists, tuples and plain values) to ``f``.

    ``f`` is a path (``str`` or ``os.PathLike``) or a binary file object. Writing to a
    path is atomic: the checkpoint goes to a temporary file in the same directory that
    replaces ``f`` only once complete. A tensor object that appears several times is
    stored once and loads as one shared tensor; other views are saved as independent
    tensors. ``pickle_module`` and ``pickle_protocol`` are accepted for PyTorch
    compatibility and ignored: the format has no pickle. Unsupported objects raise
    ``TypeError`` naming the type and where it is in ``obj``.
    """
    if pickle_module is not None:
        raise ValueError("compgrad.save does not use pickle; pickle_module is not supported")
    encoder = _Encoder()
    root = encoder.encode(obj, [])  # everything that can fail on obj fails before any I/O
    manifest = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION,
                           "tensors": encoder.meta, "root": root},
                          allow_nan=False, separators=(",", ":")).encode("utf-8")
    if isinstance(f, (str, bytes, os.PathLike)):
        _save_to_path(os.fspath(f), manifest, encoder.arrays)
    elif hasattr(f, "write"):
        if isinstance(f, io.TextIOBase):
            raise TypeError("compgrad.save needs a binary file object (open it with 'wb')")
        _write_archive(f, manifest, encoder.arrays)
    else:
        raise TypeError(f"save(): f must be a path or a binary file object, not "
                        f"{type(f).__name__}")


def _save_to_path(path, manifest: bytes, arrays: list[np.ndarray]) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    if isinstance(name, bytes):
        name = os.fsdecode(name)
        directory = os.fsdecode(directory)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Is a directory: {path!r}")
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    # os.open (not mkstemp) so the file gets the usual umask-derived permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            _write_archive(stream, manifest, arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- load --------------------------------------------------------------------------------

def load(f, map_location=None, pickle_module=None, *, weights_only: bool | None = True,
         mmap: bool | None = None, **pickle_load_args) -> Any:
    """Load an object saved with :func:`save`.

    ``f`` is a path or a binary file object. ``map_location`` moves tensors: a device or
    device string, a dict from saved location (``'cpu'``, ``'cuda:0'``) to target, or a
    callable ``(tensor, location) -> tensor or None`` as PyTorch's
    ``(storage, location)`` hook. ``weights_only`` is accepted for compatibility; the
    format never holds code, so both values load the same way. A file that is not a
    valid compgrad checkpoint (other formats, truncated or altered files) raises
    :class:`InvalidCheckpointError` and nothing is executed.
    """
    if pickle_module is not None:
        raise ValueError("compgrad.load does not use pickle; pickle_module is not supported")
    mapper = _location_mapper(map_location)
    if isinstance(f, (str, bytes, os.PathLike)):
        # read straight from the file: no whole-file copy in memory
        with open(f, "rb") as stream:
            return _Decoder(stream, mapper).run()
    if not hasattr(f, "read"):
        raise TypeError(f"load(): f must be a path or a binary file object, not "
                        f"{type(f).__name__}")
    # from the current position to the end, as torch.load reads a file object
    data = f.read()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("compgrad.load needs a binary file object (open it with 'rb')")
    return _Decoder(io.BytesIO(data), mapper).run()


def _location_mapper(map_location):
    """A function (tensor, saved location) -> tensor on the requested device."""
    if map_location is None:
        def default(t: Tensor, loc: str) -> Tensor:
            return _to_device(t, loc)
        return default
    if isinstance(map_location, (str, Device)):
        target = str(_check_device(map_location))

        def to_target(t: Tensor, loc: str) -> Tensor:
            return _to_device(t, target)
        return to_target
    if isinstance(map_location, dict):
        table = {str(k): str(v) for k, v in map_location.items()}

        def by_table(t: Tensor, loc: str) -> Tensor:
            return _to_device(t, table.get(loc, loc))
        return by_table
    if callable(map_location):
        def by_callable(t: Tensor, loc: str) -> Tensor:
            out = map_location(t, loc)
            if out is None:
                return _to_device(t, loc)
            if not isinstance(out, Tensor):
                raise TypeError(f"map_location callable must return a compgrad.Tensor or "
                                f"None, got {type(out).__name__}")
            return out
        return by_callable
    raise TypeError(f"map_location must be None, a device, a str, a dict or a callable, not "
                    f"{type(map_location).__name__}")


def _check_device(dev) -> Device:
    from compgrad.device import check_device
    return check_device(dev)


def _to_device(t: Tensor, loc: str) -> Tensor:
    dev = _check_device(loc)
    if dev != t.device:
        return Tensor._from_array(to_device(t._data, dev), dev)
    return t


class _Decoder:
    """Validates an archive and rebuilds the saved object from it."""

    def __init__(self, stream: IO[bytes], mapper):
        self.stream = stream
        self.mapper = mapper
        self.tensors: list[Tensor] = []

    def run(self) -> Any:
        head = self.stream.read(4)
        self.stream.seek(0)
        if not head:
            raise _invalid("the file is empty")
        if not head.startswith(b"PK"):
            raise _invalid("the file is not a zip archive (it may be from another library or "
                           "not a checkpoint at all)")
        try:
            zf = zipfile.ZipFile(self.stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            raise _invalid(f"the zip archive is unreadable or truncated ({e})") from None
        with zf:
            manifest = self._manifest(zf)
            self._check_entries(zf, len(manifest["tensors"]))
            for i, meta in enumerate(manifest["tensors"]):
                self.tensors.append(self._tensor(zf, i, meta))
        return self._node(manifest["root"], 0)

    def _read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _invalid(f"entry {info.filename!r} uses an unsupported compression")
        if info.flag_bits & 0x1:
            raise _invalid(f"entry {info.filename!r} is encrypted")
        if info.file_size > limit:
            raise _invalid(f"entry {info.filename!r} is {info.file_size} bytes, more than "
                           f"the {limit} expected")
        try:
            with zf.open(info) as member:
                raw = member.read(limit + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise _invalid(f"entry {info.filename!r} is corrupted or truncated ({e})") from None
        if len(raw) != info.file_size:
            raise _invalid(f"entry {info.filename!r} has {len(raw)} bytes, its header says "
                           f"{info.file_size}")
        return raw

    def _manifest(self, zf: zipfile.ZipFile) -> dict:
        try:
            info = zf.getinfo(_MANIFEST)
        except KeyError:
            if any(n.endswith("data.pkl") for n in zf.namelist()):
                raise _invalid(f"no {_MANIFEST} entry; this looks like a PyTorch (pickle) "
                               "checkpoint, which compgrad does not load since unpickling "
                               "can run arbitrary code") from None
            raise _invalid(f"no {_MANIFEST} entry in the zip archive") from None
        raw = self._read(zf, info, _MAX_MANIFEST_BYTES)
        try:
            manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
            raise _invalid(f"{_MANIFEST} is not valid JSON ({type(e).__name__}: "
                           f"{str(e)[:200]})") from None
        if not isinstance(manifest, dict):
            raise _invalid(f"{_MANIFEST} must hold a JSON object")
        if manifest.get("format") != FORMAT_NAME:
            raise _invalid(f"format name is {manifest.get('format')!r}, expected "
                           f"{FORMAT_NAME!r}")
        version = manifest.get("version")
        if type(version) is not int:
            raise _invalid(f"format version must be an integer, got {version!r}")
        if version != FORMAT_VERSION:
            raise _invalid(f"format version {version} is not supported (this compgrad reads "
                           f"version {FORMAT_VERSION}); upgrade compgrad")
        extra = set(manifest) - {"format", "version", "tensors", "root"}
        if extra or "root" not in manifest:
            raise _invalid(f"{_MANIFEST} has keys {sorted(manifest)}, expected format, "
                           "version, tensors, root")
        if not isinstance(manifest.get("tensors"), list):
            raise _invalid("'tensors' must be a list")
        return manifest

    def _check_entries(self, zf: zipfile.ZipFile, count: int) -> None:
        expected = {_MANIFEST} | {f"tensors/{i}.npy" for i in range(count)}
        names = zf.namelist()
        if len(names) != len(set(names)):
            raise _invalid("the archive has duplicate entry names")
        unexpected = sorted(set(names) - expected)
        if unexpected:
            raise _invalid(f"unexpected archive entries {unexpected[:5]!r}")
        missing = sorted(expected - set(names))
        if missing:
            raise _invalid(f"missing archive entries {missing[:5]!r}")

    def _tensor(self, zf: zipfile.ZipFile, i: int, meta) -> Tensor:
        where = f"tensors[{i}]"
        if not isinstance(meta, dict) or set(meta) != {"dtype", "shape", "requires_grad",
                                                       "device", "kind"}:
            raise _invalid(f"{where} must be an object with keys dtype, shape, requires_grad, "
                           "device, kind")
        dtype = _DTYPES_BY_NAME.get(meta["dtype"]) if isinstance(meta["dtype"], str) else None
        if dtype is None:
            raise _invalid(f"{where} has dtype {meta['dtype']!r}, not one of compgrad's "
                           f"{sorted(_DTYPES_BY_NAME)}")
        shape = meta["shape"]
        if not isinstance(shape, list) or len(shape) > 64 or not all(
                type(s) is int and s >= 0 for s in shape):
            raise _invalid(f"{where} has shape {shape!r}; expected a list of at most 64 "
                           "non-negative integers")
        if type(meta["requires_grad"]) is not bool:
            raise _invalid(f"{where}.requires_grad must be true or false")
        if meta["requires_grad"] and not dtype.is_floating_point:
            raise _invalid(f"{where} requires grad but has dtype {dtype.name}")
        if meta["kind"] not in ("tensor", "parameter"):
            raise _invalid(f"{where}.kind must be 'tensor' or 'parameter'")
        loc = meta["device"]
        try:
            if not isinstance(loc, str):
                raise TypeError
            loc = str(Device(loc))
        except (TypeError, ValueError, RuntimeError):
            raise _invalid(f"{where} has device {loc!r}") from None
        nbytes = math.prod(shape) * dtype.itemsize  # exact: Python ints
        arr = self._array(zf, f"tensors/{i}.npy", dtype, tuple(shape), nbytes)
        t = Tensor._from_array(arr)
        t = self.mapper(t, loc)
        if meta["kind"] == "parameter":
            return _parameter_class()(t, requires_grad=meta["requires_grad"])
        if meta["requires_grad"]:
            t.requires_grad_(True)
        return t

    def _array(self, zf: zipfile.ZipFile, name: str, dtype, shape: tuple, nbytes: int):
        info = zf.getinfo(name)
        # the header is at most 64 KiB (NumPy's own limit); bytes beyond that must match
        # the declared shape exactly, so a huge declared shape never allocates anything
        raw = self._read(zf, info, nbytes + 65536 + 16)
        stream = io.BytesIO(raw)
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                hdr_shape, fortran, descr = np.lib.format.read_array_header_1_0(stream)
            elif version in ((2, 0), (3, 0)):
                hdr_shape, fortran, descr = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, SyntaxError, TypeError, EOFError, OverflowError) as e:
            raise _invalid(f"{name} is not a valid .npy array ({e})") from None
        if descr.hasobject or descr != dtype.np_dtype.newbyteorder("<"):
            raise _invalid(f"{name} holds {descr}, but the manifest says {dtype.name}")
        if fortran and len(shape) > 1:
            raise _invalid(f"{name} is in Fortran order; compgrad writes C order")
        if tuple(hdr_shape) != shape:
            raise _invalid(f"{name} has shape {list(hdr_shape)}, but the manifest says "
                           f"{list(shape)}")
        body = memoryview(raw)[stream.tell():]  # no copy of the payload
        if len(body) != nbytes:
            raise _invalid(f"{name} has {len(body)} data bytes, expected {nbytes} for shape "
                           f"{list(shape)} and dtype {dtype.name}")
        arr = np.frombuffer(body, dtype=descr).reshape(shape)
        return arr.astype(dtype.np_dtype, copy=True)  # native order, writeable, owns memory

    def _node(self, node, depth: int):
        if depth > _MAX_DEPTH:
            raise _invalid(f"the object tree is nested deeper than {_MAX_DEPTH} levels")
        if node is None or type(node) in (bool, str):
            return node
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise _invalid(f"object node {_short(node)} must be null, a bool, a string or "
                           "an object with a string 't'")
        tag = node["t"]
        handler = _NODE_HANDLERS.get(tag)
        if handler is None:
            raise _invalid(f"unknown object node type {tag!r}")
        allowed, fn = handler
        if not set(node) <= allowed or not (allowed - {"metadata"}) <= set(node):
            raise _invalid(f"{tag!r} node has keys {sorted(node)}, expected "
                           f"{sorted(allowed)}")
        return fn(self, node, depth)

    def _items(self, node, depth: int) -> list:
        if not isinstance(node["v"], list):
            raise _invalid(f"{node['t']!r} node needs a list 'v'")
        return [self._node(v, depth + 1) for v in node["v"]]

    # one method per node type; each validates its own payload
    def _int(self, node, depth):
        v = node["v"]
        if not isinstance(v, str) or len(v) > 1 << 20:
            raise _invalid("'int' node needs a hex string")
        try:
            return int(v, 16)
        except ValueError:
            raise _invalid(f"'int' node has a bad value {_short(v)}") from None

    def _float(self, node, depth):
        v = node["v"]
        if not isinstance(v, str) or len(v) > 64:
            raise _invalid("'float' node needs a float.hex() string")
        try:
            return float.fromhex(v)
        except (ValueError, OverflowError):
            raise _invalid(f"'float' node has a bad value {_short(v)}") from None

    def _bytes(self, node, depth):
        v = node["v"]
        try:
            if not isinstance(v, str):
                raise ValueError
            return base64.b64decode(v.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise _invalid("'bytes' node needs a base64 string") from None

    def _tensor_ref(self, node, depth):
        v = node["v"]
        if type(v) is not int or not 0 <= v < len(self.tensors):
            raise _invalid(f"tensor reference {_short(v)} is not an index into the "
                           f"{len(self.tensors)} saved tensors")
        return self.tensors[v]

    def _dtype(self, node, depth):
        d = _DTYPES_BY_NAME.get(node["v"]) if isinstance(node["v"], str) else None
        if d is None:
            raise _invalid(f"'dtype' node has unknown dtype {_short(node['v'])}")
        return d

    def _device(self, node, depth):
        try:
            if not isinstance(node["v"], str):
                raise TypeError
            return Device(node["v"])
        except (TypeError, ValueError, RuntimeError):
            raise _invalid(f"'device' node has a bad device {_short(node['v'])}") from None

    def _list(self, node, depth):
        return self._items(node, depth)

    def _tuple(self, node, depth):
        return tuple(self._items(node, depth))

    def _size(self, node, depth):
        from compgrad.size import Size
        items = self._items(node, depth)
        if not all(type(x) is int for x in items):
            raise _invalid("'size' node must hold integers")
        return Size(items)

    def _namedtuple(self, node, depth):
        name, fields = node["name"], node["fields"]
        # the class is rebuilt from checked identifiers only (namedtuple's own code path)
        if not _identifier(name) or not isinstance(fields, list) or not all(
                _identifier(x) and not x.startswith("_") for x in fields) or len(
                set(fields)) != len(fields):
            raise _invalid(f"'namedtuple' node has a bad name or fields: {_short(name)}, "
                           f"{_short(fields)}")
        items = self._items(node, depth)
        if len(items) != len(fields):
            raise _invalid(f"'namedtuple' node has {len(items)} values for {len(fields)} "
                           "fields")
        return collections.namedtuple(name, fields)(*items)

    def _dict(self, node, depth):
        keys, values = node["k"], node["v"]
        if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(
                values):
            raise _invalid(f"{node['t']!r} node needs lists 'k' and 'v' of equal length")
        out = {} if node["t"] == "dict" else collections.OrderedDict()
        for k, v in zip(keys, values):
            key = self._node(k, depth + 1)
            if not _valid_key(key):
                raise _invalid(f"dict key of type {type(key).__name__} is not allowed")
            out[key] = self._node(v, depth + 1)
        if "metadata" in node:
            if node["t"] != "odict":
                raise _invalid("only 'odict' nodes carry metadata")
            out._metadata = self._node(node["metadata"], depth + 1)
        return out


_NODE_HANDLERS = {
    "int": ({"t", "v"}, _Decoder._int),
    "float": ({"t", "v"}, _Decoder._float),
    "bytes": ({"t", "v"}, _Decoder._bytes),
    "tensor": ({"t", "v"}, _Decoder._tensor_ref),
    "dtype": ({"t", "v"}, _Decoder._dtype),
    "device": ({"t", "v"}, _Decoder._device),
    "list": ({"t", "v"}, _Decoder._list),
    "tuple": ({"t", "v"}, _Decoder._tuple),
    "size": ({"t", "v"}, _Decoder._size),
    "namedtuple": ({"t", "v", "name", "fields"}, _Decoder._namedtuple),
    "dict": ({"t", "k", "v"}, _Decoder._dict),
    "odict": ({"t", "k", "v", "metadata"}, _Decoder._dict),
}


def _identifier(x) -> bool:
    return isinstance(x, str) and x.isidentifier() and not keyword.iskeyword(x)


def _reject_constant(name: str):
    raise ValueError(f"JSON constant {name} is not allowed")


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."
