"""The registry sweep on CUDA tensors (issue 8): every op's samples on the device.

For every registered op and each of its samples, the call on CUDA tensors (CuPy arrays)
gives the shapes, dtypes and values of the same call on CPU tensors, with its results on
the CUDA device; gradients of the ``grad=True`` samples match too. The ops an
implementation could not run on device arrays go through the host
(``compgrad.device_arrays``): that is allowed only for the ops and cases listed in
``_HOST_ALLOWED``, each with the reason, so a regression that sends ``add`` or ``softmax``
through the host fails. Every op with two or more tensor inputs refuses a
CPU tensor next to a CUDA one with PyTorch's error, from its type rule.

The ``gpu`` fixture runs each test on the NumPy-backed CuPy emulator (values are NumPy's,
so they must match exactly) and on real CuPy where a GPU is lent (GPU math differs in
the last bits: float tolerances).
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import device_arrays
from ir.opdef import REGISTRY, Sample
from tests.oracle import resolve, tolerances
from tests.support.fake_gpu import gpu  # noqa: F401 - the fixture

cg = compgrad
# the index samples' list indices warn as in PyTorch
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")
OPS = sorted(REGISTRY.values(), key=lambda op: op.name)
IDS = [op.name for op in OPS]

def _samples(op) -> list[Sample]:
    return [s for s in (op.samples() if op.samples is not None else ())
            if isinstance(s, Sample)]


def _arrays(value) -> list[np.ndarray]:
    """The NumPy arrays in a sample's (nested) arguments, in order."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    return []


# The ops allowed through the host, and when: nothing a CuPy array cannot do is left in
# any implementation but scatters that need CUDA atomics CuPy lacks. CuPy's ``ufunc.at``
# has add for int32, uint32, uint64 and the floats, maximum/minimum for int32, uint32,
# uint64, float32 and float64, and no multiply. Each entry: op -> (why, when: a
# predicate on the sample's target dtype and reduction).
_ATOMIC_ADD = {"int32", "uint32", "uint64", "float16", "float32", "float64"}
_ATOMIC_MAX = {"int32", "uint32", "uint64", "float32", "float64"}


def _reduction(sample: Sample) -> str | None:
    """The sample's ``reduce`` (a keyword, or scatter_reduce's positional string)."""
    return sample.kwargs.get("reduce") or next(
        (a for a in sample.args if isinstance(a, str)), None)


def _no_atomic_add(sample: Sample) -> bool:
    return _arrays(sample.args)[0].dtype.name not in _ATOMIC_ADD


def _scatter_needs_host(sample: Sample) -> bool:
    reduce = _reduction(sample)
    return reduce == "multiply" or (reduce == "add" and _no_atomic_add(sample))


def _scatter_reduce_needs_host(sample: Sample) -> bool:
    reduce = _reduction(sample)
    if reduce in ("amax", "amin"):
        return _arrays(sample.args)[0].dtype.name not in _ATOMIC_MAX
    return reduce == "prod" or _no_atomic_add(sample)


_HOST_ALLOWED = {
    "scatter_add": ("no atomic add for the target dtype (int64 among them)", _no_atomic_add),
    "index_add": ("no atomic add for the target dtype (int64 among them)", _no_atomic_add),
    "index_put": ("accumulate=True: no atomic add for the target dtype", _no_atomic_add),
    "scatter": ("reduce='multiply': no multiply.at; 'add': no atomic add for the dtype",
                _scatter_needs_host),
    "scatter_reduce": ("'prod': no multiply.at; the others: no atomic add/max/min for the "
                       "dtype (int64, and float16 for amax/amin)", _scatter_reduce_needs_host),
}

# Ops skipped by the sweep, with the reason.
_SKIP = {
    # its samples carry bodies typed for CPU values: a fused group of a CUDA program has a
    # CUDA-typed body (ir.interpret also reads its inputs with np.asarray)
    "fused": "samples hold CPU-typed bodies",
}

# Device-specific algorithms whose values match the reference to float tolerance even
# on the emulator (another association order of the same sums).
_DEVICE_TOLERANCE = {
    "logcumsumexp": (1e-6, 1e-6),   # a Hillis-Steele scan of logaddexp on the device
}

# Ops with two or more tensor arguments whose public function reads some tensor's values
# on the host (so it is no op input and may live anywhere), or that PyTorch lets mix
# devices: the mismatch check does not apply.
_MIXING_ALLOWED = {
    "index": "PyTorch indexes a CUDA tensor with CPU index tensors",
    "index_put": "PyTorch indexes a CUDA tensor with CPU index tensors",
    "index_constant": "a list index becomes a constant on the indexed tensor's device",
    "repeat_interleave": "tensor repeats are read on the host (they size the output)",
    "tensor_split": "tensor indices are read on the host (PyTorch wants them on the CPU)",
}


def _convert(value, device, leaves: list | None = None, cpu_at: int | None = None,
             counter: list | None = None):
    """``value`` with its arrays as tensors on ``device`` (a float array becomes a leaf
    that requires grad when ``leaves`` collects them; the array number ``cpu_at`` stays
    on the CPU); a ``device`` argument is pointed at ``device``."""
    counter = [0] if counter is None else counter
    if isinstance(value, np.ndarray):
        k = counter[0]
        counter[0] += 1
        rg = leaves is not None and value.dtype.kind == "f"
        t = cg.tensor(value, device="cpu" if k == cpu_at else device, requires_grad=rg)
        if rg:
            leaves.append(t)
        return t
    if isinstance(value, list):
        return [_convert(v, device, leaves, cpu_at, counter) for v in value]
    if isinstance(value, tuple):
        return tuple(_convert(v, device, leaves, cpu_at, counter) for v in value)
    if isinstance(value, dict):
        return {k: (device if k == "device" else _convert(v, device, leaves, cpu_at, counter))
                for k, v in value.items()}
    return value


def _call(op, sample: Sample, device: str, leaves: list | None = None,
          cpu_at: int | None = None):
    args = _convert(sample.args, device, leaves, cpu_at)
    kwargs = _convert(sample.kwargs, device, leaves, cpu_at, [len(_arrays(sample.args))])
    if not _arrays(sample.args) and not _arrays(sample.kwargs):
        kwargs.setdefault("device", device)   # a factory: make its result on the device
    if op.public.startswith("Tensor."):
        return getattr(args[0], op.public[len("Tensor."):])(*args[1:], **kwargs)
    return resolve(cg, op.public)(*args, **kwargs)


def _flat(result) -> list:
    if isinstance(result, (list, tuple)):
        return [x for r in result for x in _flat(r)]
    return [result]


def _values(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _assert_same(op, got, expected, where: str, exact: bool, compare_values: bool) -> None:
    got, expected = _flat(got), _flat(expected)
    assert len(got) == len(expected), f"{where}: {len(got)} results, CPU gives {len(expected)}"
    for k, (g, e) in enumerate(zip(got, expected)):
        at = f"{where} result {k}"
        if not isinstance(e, cg.Tensor):
            assert not isinstance(g, cg.Tensor) and g == e, f"{at}: {g!r} vs CPU {e!r}"
            continue
        assert isinstance(g, cg.Tensor), f"{at}: {type(g).__name__}, CPU gives a tensor"
        assert g.device.type == "cuda" and not isinstance(g._data, np.ndarray), \
            f"{at}: on {g.device} ({type(g._data).__name__})"
        assert g.dtype is e.dtype and tuple(g.shape) == tuple(e.shape), \
            f"{at}: {g.dtype}{list(g.shape)} vs CPU {e.dtype}{list(e.shape)}"
        if not compare_values:
            continue
        a, b = _values(g), _values(e)
        if exact:
            rtol, atol = _DEVICE_TOLERANCE.get(op.name, (0.0, 0.0))
        else:
            rtol, atol = tolerances(e.dtype.name)
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=at)
        else:
            np.testing.assert_array_equal(a, b, err_msg=at)


def _host_allowed(op_name: str, sample: Sample) -> bool:
    entry = _HOST_ALLOWED.get(op_name)
    return entry is not None and entry[1](sample)


@pytest.fixture
def host_ops(monkeypatch) -> dict:
    """A fresh record of the ops that ran through the host (the module's is global)."""
    record: dict[str, str] = {}
    monkeypatch.setattr(device_arrays, "HOST_OPS", record)
    return record


def _exact(cp) -> bool:
    return hasattr(cp, "transfer_log")   # the emulator computes with NumPy itself


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_op_on_cuda_tensors_matches_cpu(gpu, host_ops, op):  # noqa: F811 - the fixture
    if op.name in _SKIP:
        pytest.skip(_SKIP[op.name])
    exact = _exact(gpu)
    for i, sample in enumerate(_samples(op)):
        where = f"{op.name}[{i}] {sample.note}".rstrip()
        cg.manual_seed(0)
        expected = _call(op, sample, "cpu")
        host_ops.clear()
        cg.manual_seed(0)
        got = _call(op, sample, "cuda")
        _assert_same(op, got, expected, where, exact, op.kind.value != "random")
        unexpected = {name: why for name, why in host_ops.items()
                      if not _host_allowed(name, sample)}
        assert not unexpected, f"{where}: ran through the host: {unexpected}"


def _grad_loss(result, seed: int):
    """sum(out * cotangent) over the float results that require grad (None if none)."""
    rng = np.random.default_rng(seed)
    loss = None
    for out in _flat(result):
        if isinstance(out, cg.Tensor) and out.requires_grad and out.dtype.is_floating_point:
            cot = rng.standard_normal(tuple(out.shape)).astype(out.dtype.np_dtype)
            term = (out * cg.tensor(cot, device=out.device)).sum()
            loss = term if loss is None else loss + term
    return loss


def _grads(op, sample: Sample, device: str):
    """The gradients of the sample's float arguments on ``device`` (or the exception)."""
    leaves: list = []
    cg.manual_seed(0)
    try:
        loss = _grad_loss(_call(op, sample, device, leaves), seed=1)
        if loss is None:
            return None
        loss.backward()
    except Exception as exc:  # noqa: BLE001 - compared with the CPU's
        return exc
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("op", [op for op in OPS if op.differentiable],
                         ids=[op.name for op in OPS if op.differentiable])
def test_gradients_on_cuda_tensors_match_cpu(gpu, host_ops, op):  # noqa: F811 - the fixture
    if op.name in _SKIP:
        pytest.skip(_SKIP[op.name])
    exact = _exact(gpu)
    samples = [(i, s) for i, s in enumerate(_samples(op)) if s.grad]
    if not samples or op.kind.value == "random":
        pytest.skip("no gradient samples" if not samples else "random values differ")
    for i, sample in samples:
        where = f"grad of {op.name}[{i}] {sample.note}".rstrip()
        expected = _grads(op, sample, "cpu")
        host_ops.clear()
        got = _grads(op, sample, "cuda")
        unexpected = {name: why for name, why in host_ops.items()
                      if not _host_allowed(name, sample)}
        assert not unexpected, f"{where}: ran through the host: {unexpected}"
        if expected is None or isinstance(expected, Exception):
            assert type(got) is type(expected), f"{where}: {got!r} vs CPU {expected!r}"
            continue
        assert isinstance(got, list), f"{where}: {got!r}"
        for k, (g, e) in enumerate(zip(got, expected)):
            assert (g is None) == (e is None), f"{where} input {k}: {g} vs CPU {e}"
            if e is not None:
                _assert_same(op, g, e, f"{where} input {k}", exact, True)


def _mismatch_sample(op):
    """The first sample with two or more tensor arguments, one of them not 0-d (a 0-d
    CPU tensor may meet CUDA tensors, as in PyTorch), and that array's number."""
    for s in _samples(op):
        arrays = _arrays((s.args, s.kwargs))
        if len(arrays) >= 2:
            k = next((k for k, a in enumerate(arrays) if a.ndim > 0), None)
            if k is not None:
                return s, k
    return None, None


_TWO_TENSOR_OPS = [op for op in OPS if _mismatch_sample(op)[0] is not None]


@pytest.mark.parametrize("op", _TWO_TENSOR_OPS, ids=[op.name for op in _TWO_TENSOR_OPS])
def test_mixing_devices_raises_pytorchs_error(gpu, host_ops, op):  # noqa: F811 - the fixture
    if op.name in _MIXING_ALLOWED:
        pytest.skip(_MIXING_ALLOWED[op.name])
    sample, k = _mismatch_sample(op)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, "
                                           "but found at least two devices"):
        _call(op, sample, "cuda", cpu_at=k)
    assert not host_ops, "an implementation ran before the type rule refused the devices"


def test_a_cuda_tensor_takes_cpu_index_tensors(gpu):  # noqa: F811 - the fixture
    data = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    idx = np.array([2, 0, 2])
    x = cg.tensor(data, device="cuda")
    picked = x[cg.tensor(idx)]
    assert picked.device.type == "cuda"
    np.testing.assert_array_equal(_values(picked), data[idx])
    x[cg.tensor(idx), 1] = cg.tensor(-1.0)
    expected = data.copy()
    expected[idx, 1] = -1.0
    np.testing.assert_array_equal(_values(x), expected)
    with pytest.raises(RuntimeError, match=r"indices should be either on cpu or on the same "
                                           r"device as the indexed tensor \(cpu\)"):
        cg.tensor(data)[cg.tensor(idx, device="cuda")]
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        x[cg.tensor(idx)] = cg.ones(3, 4)
