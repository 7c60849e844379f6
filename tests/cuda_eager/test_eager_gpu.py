"""Eager CUDA tensors (issue 8): CuPy arrays behind ``device='cuda'`` tensors.

Run against the NumPy-backed CuPy emulator of ``tests/support`` (which raises where CuPy
raises: implicit conversion to NumPy, NumPy/CuPy mixes, functions CuPy lacks) on machines
without a GPU, and against real CuPy on a GPU. Each test compares with the same
computation on CPU tensors, which the rest of the suite checks against PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

import compgrad
from compgrad import device_arrays, nn

cg = compgrad


def _values(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _pair(*shape, seed=0, requires_grad=False):
    """The same values as a CPU tensor and a CUDA tensor."""
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    cpu = cg.tensor(data, requires_grad=requires_grad)
    dev = cg.tensor(data, device="cuda", requires_grad=requires_grad)
    return cpu, dev


# --- placement -------------------------------------------------------------------------------

def test_to_cuda_holds_a_device_array_and_cpu_copies_back(gpu):
    x = cg.arange(6.0).reshape(2, 3)
    y = x.to("cuda")
    assert y.device == cg.device("cuda:0") and y.is_cuda
    assert isinstance(y._data, gpu.ndarray)
    back = y.cpu()
    assert back.device.type == "cpu" and isinstance(back._data, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert x.cuda().device == y.device
    assert y.to("cuda") is y   # already there: no copy


def test_bare_cuda_names_the_current_device(gpu):
    a = cg.zeros(2, device="cuda")
    b = cg.ones(2, device="cuda:0")
    assert a.device == b.device == cg.device("cuda", 0)
    assert str(a.device) == "cuda:0"
    (a + b).sum()   # no device mismatch between 'cuda' and 'cuda:0'


def test_factories_make_values_on_the_device(gpu):
    for t in (cg.zeros(3, 2, device="cuda"), cg.ones(4, device="cuda"),
              cg.full((2, 2), 7.5, device="cuda"), cg.arange(5, device="cuda"),
              cg.randn(3, device="cuda"), cg.eye(3, device="cuda"),
              cg.zeros_like(cg.zeros(2, device="cuda"))):
        assert t.device.type == "cuda" and isinstance(t._data, gpu.ndarray)
    np.testing.assert_array_equal(_values(cg.full((2, 2), 7.5, device="cuda")),
                                  np.full((2, 2), 7.5, np.float32))


def test_a_seed_gives_the_same_numbers_on_every_device(gpu):
    cg.manual_seed(123)
    on_cpu = cg.randn(5)
    cg.manual_seed(123)
    on_gpu = cg.randn(5, device="cuda")
    np.testing.assert_array_equal(_values(on_cpu), _values(on_gpu))


def test_numpy_and_array_protocol_refuse_a_cuda_tensor(gpu):
    y = cg.ones(3, device="cuda")
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        y.numpy()
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        np.asarray(y)
    np.testing.assert_array_equal(y.numpy(force=True), np.ones(3, np.float32))


def test_repr_item_and_tolist(gpu):
    y = cg.tensor([1.0, 2.0], device="cuda")
    assert repr(y) == "tensor([1., 2.], device='cuda:0')"
    assert y.sum().item() == 3.0 and y.tolist() == [1.0, 2.0]
    assert float(y[1]) == 2.0 and bool(y[0])


# --- ops -------------------------------------------------------------------------------------

OPS = {
    "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub_scalar": lambda a, b: a - 2.5,
    "div": lambda a, b: a / (b.abs() + 1), "exp": lambda a, b: a.exp(),
    "tanh": lambda a, b: a.tanh(), "relu": lambda a, b: cg.relu(a),
    "sum": lambda a, b: a.sum(), "sum_dim": lambda a, b: a.sum(1),
    "mean": lambda a, b: a.mean(0), "amax": lambda a, b: a.amax(1),
    "matmul": lambda a, b: a @ b.T, "where": lambda a, b: cg.where(a > 0, a, b),
    "softmax": lambda a, b: cg.softmax(a, 1), "transpose": lambda a, b: a.t().contiguous(),
    "index": lambda a, b: a[1:, ::2], "cat": lambda a, b: cg.cat([a, b], 0),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_on_the_device_match_the_cpu(gpu, name):
    a, da = _pair(4, 3, seed=1)
    b, db = _pair(4, 3, seed=2)
    expected = OPS[name](a, b)
    got = OPS[name](da, db)
    assert got.device.type == "cuda" and isinstance(got._data, gpu.ndarray)
    assert got.dtype is expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(_values(got), _values(expected), rtol=1e-6, atol=1e-6)


CORE_OPS = ["add", "mul", "sub", "div", "exp", "tanh", "relu", "sum", "mean", "amax", "mm",
            "matmul", "where"]


def test_elementwise_reductions_and_products_stay_on_the_device(gpu):
    device_arrays.HOST_OPS.clear()
    a, da = _pair(4, 3, seed=1)
    _, db = _pair(4, 3, seed=2)
    before = gpu.transfers if hasattr(gpu, "transfers") else None
    for name in ("add", "mul", "div", "exp", "tanh", "relu", "sum", "sum_dim", "mean",
                 "amax", "matmul", "where"):
        OPS[name](da, db)
    assert not set(device_arrays.host_fallbacks()) & set(CORE_OPS), \
        device_arrays.host_fallbacks()
    if before is not None:
        assert gpu.transfers == before, "an op copied through the host"


def test_mixing_devices_raises_pytorchs_error(gpu):
    a = cg.ones(3)
    b = cg.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        a + b
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        cg.ones(2, 3) @ cg.ones(3, 2, device="cuda")


def test_a_zero_dim_cpu_tensor_meets_cuda_tensors(gpu):
    scale = cg.tensor(2.0)
    y = cg.ones(3, device="cuda") * scale
    assert y.device.type == "cuda"
    np.testing.assert_array_equal(_values(y), np.full(3, 2.0, np.float32))


def test_copy_crosses_devices(gpu):
    dst = cg.zeros(3, device="cuda")
    dst.copy_(cg.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(_values(dst), [1.0, 2.0, 3.0])
    host = cg.zeros(3)
    host.copy_(dst * 2)
    np.testing.assert_array_equal(host.numpy(), [2.0, 4.0, 6.0])


def test_in_place_ops_write_device_storage(gpu):
    x = cg.ones(2, 3, device="cuda")
    view = x[0]
    view.mul_(3.0)
    x.add_(cg.ones(3, device="cuda"))
    np.testing.assert_array_equal(_values(x), [[4, 4, 4], [2, 2, 2]])
    assert x._version[0] == 2


def test_in_place_on_an_expanded_view_raises_as_on_the_cpu(gpu):
    x = cg.ones(1, 3, device="cuda").expand(4, 3)
    with pytest.raises(RuntimeError, match="unsupported operation"):
        x.add_(1.0)


def test_an_op_cupy_cannot_run_goes_through_the_host(gpu):
    # sort and unique call NumPy functions on the host side of their implementations
    x = cg.tensor([3.0, 1.0, 2.0, 1.0], device="cuda")
    values, indices = cg.sort(x)
    np.testing.assert_array_equal(_values(values), [1.0, 1.0, 2.0, 3.0])
    assert values.device.type == "cuda" and indices.device.type == "cuda"
    assert isinstance(values._data, gpu.ndarray)
    np.testing.assert_array_equal(_values(cg.unique(x)), [1.0, 2.0, 3.0])


# --- autograd, nn, optim ---------------------------------------------------------------------

def test_backward_on_the_device_matches_the_cpu(gpu):
    a, da = _pair(5, 4, seed=3, requires_grad=True)
    w, dw = _pair(3, 4, seed=4, requires_grad=True)
    for x, m in ((a, w), (da, dw)):
        loss = cg.tanh(x @ m.T).pow(2).mean()
        loss.backward()
    for cpu, dev in ((a, da), (w, dw)):
        assert dev.grad.device.type == "cuda" and isinstance(dev.grad._data, gpu.ndarray)
        np.testing.assert_allclose(_values(dev.grad), cpu.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_moving_to_the_device_is_differentiable(gpu):
    x = cg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.cuda() * 3).sum()
    y.backward()
    assert x.grad.device.type == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert type(x.cuda().grad_fn).__name__ == "ToDeviceBackward0"


def test_grad_of_another_device_is_refused(gpu):
    p = cg.zeros(2, device="cuda", requires_grad=True)
    with pytest.raises(RuntimeError, match="different device"):
        p.grad = cg.zeros(2)


def _train(device: str, optimizer_cls, steps: int = 3, **opt_kwargs):
    cg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    opt = optimizer_cls(model.parameters(), **opt_kwargs)
    rng = np.random.default_rng(5)
    x = cg.tensor(rng.standard_normal((10, 6)).astype(np.float32), device=device)
    y = cg.tensor(rng.integers(0, 3, 10), device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("optimizer_cls,kwargs", [
    (cg.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (cg.optim.Adam, {"lr": 0.01}),
])
def test_a_training_loop_on_the_device_matches_the_cpu(gpu, optimizer_cls, kwargs):
    cpu_model, cpu_losses = _train("cpu", optimizer_cls, **kwargs)
    gpu_model, gpu_losses = _train("cuda", optimizer_cls, **kwargs)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    for (name, p), q in zip(cpu_model.named_parameters(), gpu_model.parameters()):
        assert q.device.type == "cuda" and isinstance(q._data, gpu.ndarray), name
        np.testing.assert_allclose(_values(q), p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_module_to_keeps_parameter_identity(gpu):
    model = nn.Linear(3, 2)
    weight = model.weight
    model.to("cuda")
    assert model.weight is weight and weight.device.type == "cuda"
    model.cpu()
    assert model.weight is weight and weight.device.type == "cpu"


def test_save_and_load_a_cuda_state_dict(gpu, tmp_path):
    model = nn.Linear(3, 2).cuda()
    path = tmp_path / "ckpt.cg"
    cg.save(model.state_dict(), path)
    on_gpu = cg.load(path)
    on_cpu = cg.load(path, map_location="cpu")
    assert on_gpu["weight"].device.type == "cuda"
    assert on_cpu["weight"].device.type == "cpu"
    np.testing.assert_array_equal(on_cpu["weight"].numpy(), _values(model.weight))


def test_memory_statistics_see_device_tensors(gpu):
    before = cg.cuda.memory_allocated()
    x = cg.zeros(1024, 256, device="cuda")
    assert cg.cuda.memory_allocated() >= before + x.numel() * 4
    assert cg.cuda.max_memory_allocated() >= cg.cuda.memory_allocated()


# --- compile ---------------------------------------------------------------------------------

def test_a_compiled_step_on_the_device_gives_eager_values(gpu):
    def step(model, opt, x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    results = {}
    for mode in ("eager", "compiled"):
        cg.manual_seed(1)
        model = nn.Linear(4, 2).cuda()
        opt = cg.optim.SGD(model.parameters(), lr=0.1)
        x = cg.ones(8, 4, device="cuda")
        y = cg.zeros(8, 2, device="cuda")
        fn = step if mode == "eager" else cg.compile(step)
        losses = [fn(model, opt, x, y).item() for _ in range(3)]
        results[mode] = (losses, _values(model.weight))
        if mode == "compiled":
            report = fn.explain()
            assert report.calls == 3 and report.program_notes, str(report)
            assert "CUDA device" in str(report)
    np.testing.assert_allclose(results["compiled"][0], results["eager"][0], rtol=1e-6)
    np.testing.assert_allclose(results["compiled"][1], results["eager"][1], rtol=1e-6)


@pytest.mark.parametrize("fake_gpu", [2], indirect=True)
def test_two_devices(fake_gpu):
    a = cg.ones(3, device="cuda:0")
    b = a.to("cuda:1")
    assert b.device == cg.device("cuda:1") and b._data.device.id == 1
    with pytest.raises(RuntimeError, match="cuda:0 and cuda:1"):
        a + b
    np.testing.assert_array_equal(_values(b * 2), [2.0, 2.0, 2.0])
    assert (b * 2).device == cg.device("cuda:1")
    with cg.cuda.device(1):
        c = cg.zeros(2, device="cuda")
    assert c.device == cg.device("cuda:1")


def test_in_place_writes_into_views_backpropagate_as_on_the_cpu(gpu):
    grads = {}
    for device in ("cpu", "cuda"):
        w = cg.ones(3, 4, device=device, requires_grad=True)
        x = w * 2
        x[1].mul_(3)
        x[:, 0].add_(1)
        x.t()[2].zero_()
        x.sum().backward()
        grads[device] = _values(w.grad)
    np.testing.assert_array_equal(grads["cuda"], grads["cpu"])


LAYERS = {
    "conv2d": (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 5)),
    "batchnorm": (lambda: nn.BatchNorm1d(4), (6, 4)),
    "layernorm": (lambda: nn.LayerNorm(4), (3, 4)),
    "gelu_linear": (lambda: nn.Sequential(nn.Linear(4, 5), nn.GELU()), (3, 4)),
    "maxpool": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), (1, 1, 6, 6)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_on_the_device_match_the_cpu(gpu, name):
    make, shape = LAYERS[name]
    cg.manual_seed(3)
    cpu_layer = make()
    dev_layer = make().to("cuda")
    dev_layer.load_state_dict(cpu_layer.state_dict())
    x_cpu, x_dev = _pair(*shape, seed=7, requires_grad=True)
    outs = []
    for layer, x in ((cpu_layer, x_cpu), (dev_layer, x_dev)):
        out = layer(x)
        (out * out).sum().backward()
        outs.append(out)
    np.testing.assert_allclose(_values(outs[1]), _values(outs[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_values(x_dev.grad), _values(x_cpu.grad), rtol=1e-5, atol=1e-5)
    for (pname, p), q in zip(cpu_layer.named_parameters(), dev_layer.parameters()):
        assert q.grad.device.type == "cuda", pname
        np.testing.assert_allclose(_values(q.grad), _values(p.grad), rtol=1e-5, atol=1e-5)
    for (bname, b), c in zip(cpu_layer.named_buffers(), dev_layer.buffers()):
        assert c.device.type == "cuda", bname
        np.testing.assert_allclose(_values(c), _values(b), rtol=1e-6, atol=1e-6)


def test_a_failing_gpu_runtime_falls_back_to_running_node_by_node(gpu, monkeypatch):
    from codegen import cuda_runtime

    class Broken:
        def __init__(self, graph, **kwargs):
            pass

        def run(self, args):
            raise RuntimeError("NVVM is not available")

    monkeypatch.setattr(cuda_runtime, "cuda_program_available", lambda: True)
    monkeypatch.setattr(cuda_runtime, "CudaProgram", Broken)
    fn = cg.compile(lambda a, b: (a * b).sum(1))
    a, b = cg.ones(3, 4, device="cuda"), cg.full((3, 4), 2.0, device="cuda")
    np.testing.assert_array_equal(_values(fn(a, b)), [8.0, 8.0, 8.0])
    np.testing.assert_array_equal(_values(fn(a, b)), [8.0, 8.0, 8.0])
    notes = fn.explain().program_notes
    assert any("the GPU runtime failed: RuntimeError: NVVM is not available" in n
               for n in notes.values()), notes


def test_random_ops_in_a_compiled_gpu_step_draw_what_eager_draws(gpu):
    def step(x):
        return nn.functional.dropout(x * 2, p=0.5, training=True).sum(0)

    results = []
    for fn in (step, cg.compile(step)):
        cg.manual_seed(11)
        x = cg.ones(6, 5, device="cuda")
        results.append([_values(fn(x)) for _ in range(3)])
    for eager, compiled in zip(*results):
        np.testing.assert_array_equal(compiled, eager)
    # the same seed gives the same mask on the CPU too
    cg.manual_seed(11)
    np.testing.assert_array_equal(_values(step(cg.ones(6, 5))), results[0][0])


def test_explain_counts_the_gpu_runtimes_kernels(gpu, monkeypatch):
    from codegen import cuda_runtime
    from codegen.runtime import KernelStats
    from compgrad.compile.on_device import run_graph_on_device

    class Stub:   # the GPU runtime's contract, computing node by node
        def __init__(self, graph, **kwargs):
            self.graph = graph
            self.stats = KernelStats(kernels=3)

        def run(self, args):
            return run_graph_on_device(self.graph, args)

    monkeypatch.setattr(cuda_runtime, "cuda_program_available", lambda: True)
    monkeypatch.setattr(cuda_runtime, "CudaProgram", Stub)
    fn = cg.compile(lambda a: (a * 3).sum())
    assert fn(cg.ones(4, device="cuda")).item() == 12.0
    report = fn.explain()
    assert report.kernel_count == 3
    assert list(report.program_notes.values()) == ["generated CUDA kernels (codegen.cuda_runtime)"]
