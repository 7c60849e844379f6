"""compgrad.save / compgrad.load: round trips, shared tensors, hostile files, atomic saves."""

import collections
import io
import json
import math
import os
import pickle
import zipfile

import numpy as np
import pytest

import compgrad
from compgrad.serialization import InvalidCheckpointError, load, save

NT = collections.namedtuple("NT", ["weight", "step"])


def roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    save(obj, buf)
    buf.seek(0)
    return load(buf, **load_kwargs)


def assert_same(a, b):
    """Structural equality with tensor values, dtypes, shapes and requires_grad."""
    assert type(a) is type(b) or (isinstance(a, tuple) and hasattr(a, "_fields")), (a, b)
    if isinstance(a, compgrad.Tensor):
        assert a.dtype is b.dtype and a.shape == b.shape
        assert a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


# --- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [compgrad.float16, compgrad.float32, compgrad.float64,
                                   compgrad.int8, compgrad.int16, compgrad.int32,
                                   compgrad.int64, compgrad.uint8, compgrad.bool_])
def test_tensor_dtypes(dtype):
    x = compgrad.tensor(np.arange(-3, 9).reshape(3, 4)).to(dtype)
    y = roundtrip(x)
    assert_same(x, y)
    assert y.is_contiguous() and y.is_leaf


def test_special_float_values_and_shapes():
    x = compgrad.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45])
    y = roundtrip(x)
    np.testing.assert_array_equal(np.signbit(x.numpy()), np.signbit(y.numpy()))
    assert_same(x, y)
    for t in (compgrad.tensor(3.5), compgrad.zeros(0), compgrad.zeros(2, 0, 3),
              compgrad.tensor(7, dtype=compgrad.int64), compgrad.ones(1, 1, 1, 1, 1)):
        assert_same(t, roundtrip(t))


def test_noncontiguous_and_views_saved_as_values():
    base = compgrad.arange(24.0).reshape(4, 6)
    views = {"t": base.T, "slice": base[:, ::2], "row": base[1], "exp": compgrad.tensor(
        [1.0, 2.0]).expand(3, 2)}
    out = roundtrip({"base": base, **views})
    for k, v in views.items():
        assert_same(v, out[k])
        assert out[k].is_contiguous()
    # independent storage: writing the loaded base leaves the loaded view alone
    out["base"].fill_(0)
    assert out["row"].sum().item() == base[1].sum().item()


def test_shared_tensor_loads_as_one_object():
    w = compgrad.randn(3, 3, requires_grad=True)
    out = roundtrip({"a": w, "b": [w, {"c": w}], "other": w.detach()})
    assert out["a"] is out["b"][0] is out["b"][1]["c"]
    assert out["other"] is not out["a"]
    assert out["a"].requires_grad and out["a"].is_leaf
    assert not out["other"].requires_grad


def test_requires_grad_flags_and_nonleaf():
    a = compgrad.ones(2, requires_grad=True)
    b = a * 2  # a non-leaf that requires grad loads as a leaf requiring grad, as torch
    out = roundtrip([a, b, compgrad.ones(2)])
    assert [t.requires_grad for t in out] == [True, True, False]
    assert all(t.is_leaf and t.grad_fn is None for t in out)


def test_nested_python_values():
    obj = {
        "none": None, "t": True, "f": False, "i": -12, "big": 2 ** 300 + 1, "neg": -(2 ** 70),
        "x": 0.1, "nan": float("nan"), "inf": float("-inf"), "s": "héllo\u2603\x00",
        "b": b"\x00\xff raw", "list": [1, [2, [3, []]]], "tup": (1, (2.5, "a"), ()),
        "nt": NT(weight=compgrad.ones(2), step=5), "dtype": compgrad.float16,
        "dev": compgrad.device("cpu"), "size": compgrad.Size([2, 3]),
        "keys": {1: "a", 2.5: "b", None: "c", False: "d", ("x", 1, (None,)): "e", "": "f"},
        "empty": {},
    }
    out = roundtrip(obj)
    assert_same(obj, out)
    assert type(out["nt"]).__name__ == "NT" and out["nt"].step == 5
    assert out["nt"]._fields == ("weight", "step")
    assert type(out["size"]) is compgrad.Size and type(out["tup"]) is tuple


def test_ordered_dict_type_order_and_metadata():
    sd = collections.OrderedDict([("z.weight", compgrad.ones(2)), ("a.bias", compgrad.zeros(1)),
                                  ("m", 3)])
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    out = roundtrip({"state": sd, "plain": {"b": 1, "a": 2}})
    assert type(out["state"]) is collections.OrderedDict
    assert type(out["plain"]) is dict and list(out["plain"]) == ["b", "a"]
    assert list(out["state"]) == ["z.weight", "a.bias", "m"]
    assert out["state"]._metadata == {"": {"version": 1}}
    assert_same(sd, out["state"])


def test_path_and_pathlike(tmp_path):
    obj = {"w": compgrad.randn(4, 5)}
    p = tmp_path / "ck.pt"
    save(obj, p)
    assert_same(obj, load(p))
    save(obj, str(p))
    assert_same(obj, load(str(p), weights_only=False))
    with open(p, "rb") as f:
        assert_same(obj, load(f))
    assert os.listdir(tmp_path) == ["ck.pt"]


def test_load_reads_from_current_position():
    buf = io.BytesIO()
    buf.write(b"header")
    save([1, 2], buf)
    buf.seek(6)
    assert load(buf) == [1, 2]


def test_map_location_variants():
    x = compgrad.arange(3.0)
    obj = {"x": x}
    for loc in ("cpu", compgrad.device("cpu"), {"cpu": "cpu"}):
        out = roundtrip(obj, map_location=loc)
        assert out["x"].device == compgrad.device("cpu")
        assert_same(x, out["x"])
    seen = []

    def hook(storage, location):
        seen.append(location)
        return storage

    assert_same(x, roundtrip(obj, map_location=hook)["x"])
    assert seen == ["cpu"]
    assert_same(x, roundtrip(obj, map_location=lambda s, loc: None)["x"])
    with pytest.raises(TypeError, match="map_location"):
        roundtrip(obj, map_location=5)


@pytest.mark.skipif(compgrad.cuda.is_available(), reason="needs a machine without a GPU")
def test_map_location_cuda_without_gpu():
    with pytest.raises(RuntimeError, match="cuda"):
        roundtrip({"x": compgrad.ones(2)}, map_location="cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        roundtrip({"x": compgrad.ones(2)}, map_location={"cpu": "cuda:0"})


def test_parameter_roundtrip_when_available():
    parameter = pytest.importorskip("compgrad.nn.parameter")
    p = parameter.Parameter(compgrad.ones(3))
    out = roundtrip({"p": p, "again": p})
    assert type(out["p"]) is parameter.Parameter and out["p"] is out["again"]
    assert out["p"].requires_grad


# --- unsupported objects ---------------------------------------------------------------------

class Foo:
    pass


@pytest.mark.parametrize("obj, path", [
    ({"model": {"x": Foo()}}, "['model']['x']"),
    ([1, (2, Foo())], "[1][1]"),
    ({"f": print}, "['f']"),
    ({"s": {1, 2}}, "['s']"),
    ({"a": np.zeros(2)}, "['a']"),
])
def test_unsupported_objects_name_type_and_path(obj, path):
    with pytest.raises(TypeError) as info:
        save(obj, io.BytesIO())
    msg = str(info.value)
    assert "cannot save object of type" in msg and path in msg


def test_bad_key_and_cycle():
    with pytest.raises(TypeError, match="key"):
        save({"d": {frozenset(): 1}}, io.BytesIO())
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        save({"l": loop}, io.BytesIO())
    deep = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        save(deep, io.BytesIO())


def test_bad_f_arguments():
    with pytest.raises(TypeError):
        save([1], 12)
    with pytest.raises(TypeError):
        load(12)
    with pytest.raises(TypeError, match="binary"):
        save([1], io.StringIO())
    with pytest.raises(FileNotFoundError):
        load("/nonexistent/dir/x.pt")


# --- atomic save ---------------------------------------------------------------------------

def test_failed_save_leaves_old_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "ck.pt"
    save({"w": compgrad.ones(3)}, p)
    before = p.read_bytes()
    with pytest.raises(TypeError):
        save({"w": compgrad.zeros(3), "bad": Foo()}, p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ck.pt"]

    # a failure halfway through writing the archive
    from compgrad import serialization
    real = np.lib.format.write_array
    calls = []

    def failing_write(fp, arr, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            fp.write(b"partial")
            raise OSError("disk full")
        return real(fp, arr, **kwargs)

    monkeypatch.setattr(serialization.np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save({"a": compgrad.zeros(100), "b": compgrad.zeros(100)}, p)
    monkeypatch.undo()
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ck.pt"]
    assert_same({"w": compgrad.ones(3)}, load(p))


def test_save_keeps_usual_permissions(tmp_path):
    p = tmp_path / "ck.pt"
    save([1], p)
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(p).st_mode & 0o777) == (0o666 & ~umask)


# --- hostile files ---------------------------------------------------------------------------

def good_bytes(obj=None):
    buf = io.BytesIO()
    save({"w": compgrad.arange(6.0).reshape(2, 3), "n": 1} if obj is None else obj, buf)
    return buf.getvalue()


def expect_invalid(data, match=""):
    with pytest.raises(InvalidCheckpointError, match="not a valid compgrad checkpoint") as info:
        load(io.BytesIO(data))
    assert match in str(info.value)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)
    return info.value


def rezip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def entries_of(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def with_manifest(mutate) -> bytes:
    entries = entries_of(good_bytes())
    manifest = json.loads(entries["compgrad_checkpoint.json"])
    mutate(manifest)
    entries["compgrad_checkpoint.json"] = json.dumps(manifest).encode()
    return rezip(entries)


def test_random_bytes_and_empty():
    rng = np.random.default_rng(0)
    expect_invalid(b"", "empty")
    for n in (1, 10, 1000):
        expect_invalid(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    expect_invalid(b"PK" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())


def test_truncated_at_many_lengths():
    data = good_bytes()
    for n in sorted({1, 2, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 50,
                     len(data) - 22, len(data) - 1}):
        expect_invalid(data[:n])


def test_flipped_bytes_never_load_wrong_silently():
    data = good_bytes()
    for pos in range(0, len(data), 7):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        try:
            out = load(io.BytesIO(bytes(bad)))
        except InvalidCheckpointError:
            continue
        # zip CRCs catch payload damage; a load that passes must be the original content
        assert_same({"w": compgrad.arange(6.0).reshape(2, 3), "n": 1}, out)


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_files_are_refused(tmp_path):
    expect_invalid(pickle.dumps({"a": 1}), "not a zip")
    expect_invalid(pickle.dumps(Boom()), "not a zip")
    # a torch-style archive with data.pkl inside
    expect_invalid(rezip({"archive/data.pkl": pickle.dumps(Boom()), "archive/version": b"3"}),
                   "PyTorch")
    # our manifest plus a smuggled pickle entry
    entries = entries_of(good_bytes())
    entries["tensors/1.npy"] = pickle.dumps(Boom())
    expect_invalid(rezip(entries), "unexpected archive entries")


def test_real_torch_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, p)
    expect_invalid(p.read_bytes(), "PyTorch")


def test_npy_with_object_dtype_or_pickle_is_refused():
    entries = entries_of(good_bytes())
    buf = io.BytesIO()
    np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)
    entries["tensors/0.npy"] = buf.getvalue()
    expect_invalid(rezip(entries), "tensors/0.npy")


@pytest.mark.parametrize("mutate, match", [
    (lambda m: m.update(format="torch"), "format name"),
    (lambda m: m.pop("format"), "format name"),
    (lambda m: m.update(version=99), "version 99"),
    (lambda m: m.update(version="1"), "version"),
    (lambda m: m.update(extra=1), "keys"),
    (lambda m: m.update(tensors={}), "'tensors'"),
    (lambda m: m["tensors"][0].update(dtype="object"), "dtype"),
    (lambda m: m["tensors"][0].update(dtype="complex64"), "dtype"),
    (lambda m: m["tensors"][0].update(dtype="float64"), "manifest says float64"),
    (lambda m: m["tensors"][0].update(shape=[3, 2]), "shape"),
    (lambda m: m["tensors"][0].update(shape=[2, -3]), "shape"),
    (lambda m: m["tensors"][0].update(shape=[2, 3.0]), "shape"),
    (lambda m: m["tensors"][0].update(shape=[10 ** 6, 10 ** 6, 10 ** 6]), "manifest says"),
    (lambda m: m["tensors"][0].update(shape=[2 ** 62] * 2), "manifest says"),
    (lambda m: m["tensors"][0].update(requires_grad="yes"), "requires_grad"),
    (lambda m: m["tensors"][0].update(device="tpu"), "device"),
    (lambda m: m["tensors"][0].update(kind="module"), "kind"),
    (lambda m: m["tensors"][0].pop("kind"), "keys"),
    (lambda m: m["tensors"].append(m["tensors"][0]), "missing archive entries"),
    (lambda m: m["tensors"].clear(), "unexpected archive entries"),
    (lambda m: m.update(root={"t": "tensor", "v": 5}), "tensor reference"),
    (lambda m: m.update(root={"t": "tensor", "v": True}), "tensor reference"),
    (lambda m: m.update(root={"t": "object", "v": "os.system"}), "unknown object node"),
    (lambda m: m.update(root=[1, 2]), "object node"),
    (lambda m: m.update(root=3), "object node"),
    (lambda m: m.update(root={"t": "int", "v": 3}), "hex string"),
    (lambda m: m.update(root={"t": "int", "v": "0xzz"}), "bad value"),
    (lambda m: m.update(root={"t": "float", "v": 1.5}), "float"),
    (lambda m: m.update(root={"t": "bytes", "v": "@@@"}), "base64"),
    (lambda m: m.update(root={"t": "list", "v": {}}), "list"),
    (lambda m: m.update(root={"t": "list", "v": [], "x": 1}), "keys"),
    (lambda m: m.update(root={"t": "dict", "k": ["a"], "v": []}), "equal length"),
    (lambda m: m.update(root={"t": "dict", "k": [{"t": "list", "v": []}], "v": [1]}), "key"),
    (lambda m: m.update(root={"t": "dict", "k": [], "v": [], "metadata": None}), "metadata"),
    (lambda m: m.update(root={"t": "namedtuple", "name": "os.system", "fields": [], "v": []}),
     "namedtuple"),
    (lambda m: m.update(root={"t": "namedtuple", "name": "N", "fields": ["__class__"],
                              "v": [1]}), "namedtuple"),
    (lambda m: m.update(root={"t": "namedtuple", "name": "N", "fields": ["a"], "v": []}),
     "values"),
    (lambda m: m.update(root={"t": "dtype", "v": "object"}), "dtype"),
    (lambda m: m.update(root={"t": "device", "v": "../etc"}), "device"),
    (lambda m: m.update(root={"t": "size", "v": [{"t": "float", "v": "0x1p0"}]}), "size"),
])
def test_tampered_manifest(mutate, match):
    expect_invalid(with_manifest(mutate), match)


def test_deeply_nested_json_is_refused():
    nested = {"t": "list", "v": []}
    for _ in range(300):
        nested = {"t": "list", "v": [nested]}
    expect_invalid(with_manifest(lambda m: m.update(root=nested)), "deeper")
    raw = ("[" * 100000 + "]" * 100000).encode()
    entries = entries_of(good_bytes())
    entries["compgrad_checkpoint.json"] = raw
    expect_invalid(rezip(entries), "JSON")


def test_non_json_manifest_and_nan_constants():
    entries = entries_of(good_bytes())
    for raw in (b"\xff\xfe", b"{not json", b'{"format": NaN}', b"[]", b'"str"'):
        entries["compgrad_checkpoint.json"] = raw
        expect_invalid(rezip(entries))


def test_missing_manifest_and_path_traversal_names():
    entries = entries_of(good_bytes())
    manifest = entries.pop("compgrad_checkpoint.json")
    expect_invalid(rezip(entries), "no compgrad_checkpoint.json")
    for evil in ("../../evil.npy", "/etc/passwd", "tensors/../../x.npy", "tensors/0.npy/.."):
        bad = dict(entries, **{"compgrad_checkpoint.json": manifest, evil: b"x"})
        expect_invalid(rezip(bad), "unexpected archive entries")
    # nothing is ever written to disk on load
    assert not os.path.exists("evil.npy")


def test_duplicate_entries_refused():
    entries = entries_of(good_bytes())
    buf = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        zf.writestr("tensors/0.npy", entries["tensors/0.npy"])
    expect_invalid(buf.getvalue(), "duplicate")


def test_npy_payload_size_and_header_mismatches():
    entries = entries_of(good_bytes())
    good = entries["tensors/0.npy"]
    for bad in (good[:-4], good + b"\x00" * 8, good[:5], b"\x93NUMPY\x09\x00" + good[8:],
                good.replace(b"'descr': '<f4'", b"'descr': '<i4'"),
                good.replace(b"'fortran_order': False", b"'fortran_order': True "),
                good.replace(b"(2, 3)", b"(3, 2)"),
                good.replace(b"'descr': '<f4'", b"'descr': '>f4'")):
        expect_invalid(rezip(dict(entries, **{"tensors/0.npy": bad})))


def test_huge_declared_npy_header_does_not_allocate():
    entries = entries_of(good_bytes())
    manifest = json.loads(entries["compgrad_checkpoint.json"])
    manifest["tensors"][0]["shape"] = [2 ** 20, 2 ** 20]
    entries["compgrad_checkpoint.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (2 ** 20, 2 ** 20)})
    entries["tensors/0.npy"] = buf.getvalue() + b"\x00" * 24
    expect_invalid(rezip(entries), "data bytes")


def test_unknown_compression_or_encryption_flag():
    data = bytearray(good_bytes())
    # set the encryption bit in every central-directory header of the manifest entry
    idx = data.find(b"PK\x01\x02")
    data[idx + 8] |= 0x1
    with pytest.raises(InvalidCheckpointError):
        load(io.BytesIO(bytes(data)))


@pytest.mark.skipif(compgrad.cuda.is_available(), reason="needs a machine without a GPU")
def test_saved_cuda_tensor_needs_map_location_without_gpu():
    x = compgrad.Tensor._from_array(np.arange(3.0, dtype=np.float32), compgrad.device("cuda:0"))
    buf = io.BytesIO()
    save({"x": x}, buf)
    with pytest.raises(RuntimeError, match="cuda"):
        load(io.BytesIO(buf.getvalue()))
    for loc in ("cpu", {"cuda:0": "cpu"}, lambda storage, location: storage):
        out = load(io.BytesIO(buf.getvalue()), map_location=loc)
        assert out["x"].device == compgrad.device("cpu")
        np.testing.assert_array_equal(out["x"].numpy(), [0.0, 1.0, 2.0])


def test_module_state_dict_roundtrip_and_module_refused():
    linear = pytest.importorskip("compgrad.nn.modules.linear")
    m = linear.Linear(3, 2)
    sd = roundtrip(m.state_dict())
    assert list(sd) == list(m.state_dict())
    m2 = linear.Linear(3, 2)
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(m2.weight.detach().numpy(), m.weight.detach().numpy())
    with pytest.raises(TypeError, match=r"type Linear at \['model'\] \(save its .state_dict"):
        save({"model": m}, io.BytesIO())
