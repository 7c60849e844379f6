"""``compgrad.Tensor``: a NumPy array with PyTorch's behaviour.

The class owns storage, views, version counters, Python conversions and
operators. Math lives in ``ir.ops``: methods are thin wrappers over those
functions, bound in ``compgrad._methods`` from each op family's ``METHODS`` and
``INPLACE`` tables.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from compgrad.device_arrays import address, is_writeable, place, to_host
from compgrad.size import Size
from compgrad.state_epoch import STRUCTURE
from ir import dtypes, ops
from ir.dispatch import current_interpreter
from ir.dtypes import DType, can_cast
from ir.types import CPU, Device, TensorType, broadcast_shapes, shape_str

__all__ = ["Tensor", "INPLACE_HOOKS", "VIEW_HOOKS"]


def _active_trace():
    """The @compile trace recording ops in this context, or None when running eagerly."""
    return getattr(current_interpreter(), "trace", None)

# Autograd's rules for in-place writes, installed by compgrad.autograd: each is called
# as hook(tensor, value) before the write (it may refuse it) and may return a callable
# to run once the write is done.
INPLACE_HOOKS: list = []
# Checks of a view whose base was written since the view was made (its requires_grad
# follows the base's): hook(view) -> bool, installed by compgrad.autograd (eager views)
# and compgrad.compile (recorded views).
VIEW_HOOKS: list = []

OVERLAP_MESSAGE = ("unsupported operation: more than one element of the written-to tensor refers "
                   "to a single memory location. Please clone() the tensor before performing the "
                   "operation.")

_NP_TO_DTYPE = {d.np_dtype: d for d in dtypes.ALL_DTYPES}


def _writeable_alias(view: Tensor) -> np.ndarray | None:
    """A writeable array over the same memory as ``view``'s read-only data (NumPy marks
    every broadcast view read-only, even one that repeats no element), or None where
    elements repeat or the base is not one writeable C-contiguous block."""
    arr, root = view._data, view._base._data if view._base is not None else None
    if root is None or not isinstance(root, np.ndarray) or not root.flags.writeable \
            or not root.flags.c_contiguous \
            or any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape)):
        return None
    offset = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    item = arr.itemsize
    if arr.size == 0 or offset % item or any(st % item for st in arr.strides):
        return None
    start = root.reshape(-1)[offset // item:]
    return np.lib.stride_tricks.as_strided(start, arr.shape, arr.strides, writeable=True)


_INTERNED_TYPES: dict[tuple, TensorType] = {}


def _interned_type(arr: np.ndarray, device: Device) -> TensorType:
    """The one TensorType object for this shape, dtype and device: the type memo's and
    the recorders' dict lookups then match by identity instead of comparing fields."""
    key = (arr.shape, arr.dtype, device)
    t = _INTERNED_TYPES.get(key)
    if t is None:
        if len(_INTERNED_TYPES) > 100_000:
            _INTERNED_TYPES.clear()
        t = _INTERNED_TYPES[key] = TensorType(arr.shape, _NP_TO_DTYPE[arr.dtype], device)
    return t


class Tensor:
    """A multi-dimensional array with autograd metadata, like ``torch.Tensor``.

    ``Tensor(data)`` builds a float32 tensor from data and ``Tensor(2, 3)`` an
    uninitialised one of that shape, as in PyTorch; prefer ``compgrad.tensor``.
    """

    __slots__ = ("_data", "_device", "_version", "_base", "_type_cache", "_requires_grad",
                 "grad_fn", "__weakref__", "__dict__")

    # Set on few tensors: class-level defaults keep construction cheap (an instance
    # gets its own value in __dict__ only when one is assigned).
    _grad = None
    _output_nr = 0
    _accumulator = None
    _hooks = None
    _post_acc_hooks = None
    _detached = False
    _view_version = None

    # NumPy scalars on the left (np.float64(2) * t) defer to Tensor's reflected operators
    __array_priority__ = 1000

    # Set while @compile records this tensor: its pending state in the trace. A
    # recorded tensor has no ``_data`` yet; reading it computes the pending graph.
    _lazy = None

    def __getattr__(self, name: str):
        # only reached when normal lookup fails: ``_data`` of a recorded tensor
        if name == "_data":
            lazy = self._lazy
            if lazy is not None:
                return lazy.force(self)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    # --- construction --------------------------------------------------------------------

    def __init__(self, *args, dtype=None, device=None):
        if len(args) == 1 and not isinstance(args[0], numbers.Integral):
            data = args[0]
            arr = data._data.astype(np.float32) if isinstance(data, Tensor) else np.array(
                data, dtype=np.float32)
        else:
            from ir.types import check_shape
            arr = np.empty(check_shape(args), dtype=np.float32)
        if device is None:
            self._init(arr, CPU)
        else:
            from compgrad.device import check_device
            dev = check_device(device)
            self._init(place(arr, dev), dev)

    def _init(self, arr: np.ndarray, device: Device, version=None, base=None) -> None:
        # (compgrad._eager's apply sets these same fields inline for an op's fresh result)
        self._data = arr
        self._device = device
        self._version = [0] if version is None else version
        self._base = base
        self._type_cache = None
        self._requires_grad = False
        self.grad_fn = None

    @classmethod
    def _from_array(cls, arr: np.ndarray, device: Device = CPU) -> Tensor:
        """Wrap ``arr`` (no copy) as a new tensor with its own storage."""
        t = cls.__new__(cls)
        t._init(arr, device)
        return t

    @classmethod
    def _view_of(cls, base: Tensor, arr: np.ndarray) -> Tensor:
        """A tensor over ``arr``, a NumPy view into ``base``'s storage."""
        t = cls.__new__(cls)
        root = base._base if base._base is not None else base
        t._init(arr, base._device, base._version, root)
        return t

    # --- metadata ------------------------------------------------------------------------

    @property
    def _type(self) -> TensorType:
        t = self._type_cache
        if t is None:
            t = self._type_cache = _interned_type(self._data, self._device)
        return t

    # Metadata reads go through the type, never the data: a tensor recorded by
    # @compile has a type but no data until its value is needed.

    @property
    def shape(self) -> Size:
        return Size(self._type.shape)

    def size(self, dim: int | None = None):
        """The shape, or the size of one dim."""
        shape = self._type.shape
        if dim is None:
            return Size(shape)
        from ir.types import normalize_dim
        if not shape:
            normalize_dim(dim, 0)
            raise IndexError("dimension specified as " + str(dim) + " but tensor has no "
                             "dimensions")
        return shape[normalize_dim(dim, len(shape))]

    @property
    def dtype(self) -> DType:
        return self._type.dtype

    @property
    def device(self) -> Device:
        return self._device

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    @property
    def ndim(self) -> int:
        return len(self._type.shape)

    def dim(self) -> int:
        return len(self._type.shape)

    ndimension = dim

    def numel(self) -> int:
        return self._type.numel

    nelement = numel

    def element_size(self) -> int:
        return self._type.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self._type.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self._type.numel * self._type.dtype.itemsize

    def stride(self, dim: int | None = None):
        """Strides in elements, as PyTorch reports them."""
        item = self._data.itemsize
        strides = tuple(s // item for s in self._data.strides)
        if dim is None:
            return strides
        from ir.types import normalize_dim
        return strides[normalize_dim(dim, self._data.ndim)]

    def is_contiguous(self, memory_format=None) -> bool:
        return bool(self._data.flags.c_contiguous)

    def storage_offset(self) -> int:
        if self._base is None:
            return 0
        root = self._base._data
        delta = address(self._data) - address(root)
        return delta // self._data.itemsize

    def data_ptr(self) -> int:
        return address(self._data)

    def untyped_storage_ptr(self) -> int:
        root = self._base if self._base is not None else self
        return root.data_ptr()

    def is_floating_point(self) -> bool:
        return self.dtype.category == dtypes.CATEGORY_FLOAT

    def is_complex(self) -> bool:
        return False

    def is_signed(self) -> bool:
        return self.dtype.is_signed

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _is_view(self) -> bool:
        return self._base is not None

    def _is_view_of(self, other: Tensor) -> bool:
        root = other._base if other._base is not None else other
        return self._base is root

    @property
    def requires_grad(self) -> bool:
        if not self._requires_grad and (self._view_version is not None
                                        or self._lazy is not None):
            # a view whose base may have gained a history in place since it was made
            for hook in VIEW_HOOKS:
                if hook(self):
                    return True
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self._type.dtype.category != dtypes.CATEGORY_FLOAT:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if not value and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        # (no state_epoch bump: a replay checks the flag of each tensor it captures, and
        # a new tensor made with requires_grad=True must not stop it)
        self._requires_grad = bool(value)
        trace = _active_trace()
        if trace is not None:  # inside @compile: the symbolic backward must see the new leaf
            trace.set_requires_grad(self, bool(value))

    @property
    def grad(self):
        if self.grad_fn is not None and not self.retains_grad and self._grad is None:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its "
                ".grad attribute won't be populated during autograd.backward(). If you indeed "
                "want the .grad field to be populated for a non-leaf Tensor, use .retain_grad() "
                "on the non-leaf Tensor. If you access the non-leaf Tensor by mistake, make sure "
                "you access the leaf Tensor instead.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(value).__name__}")
            if value.dtype is not self.dtype:
                raise RuntimeError("attempting to assign a gradient with dtype "
                                   f"'{value.dtype.name}' to a tensor with dtype "
                                   f"'{self.dtype.name}'. Please ensure that the gradient and "
                                   "the tensor have the same dtype")
            if value.shape != self.shape:
                raise RuntimeError("assigned grad has data of a different size")
            if value.device != self.device:
                raise RuntimeError("assigned grad has data located on a different device")
        self._grad = value

    @property
    def data(self) -> Tensor:
        """A tensor sharing storage with this one, outside autograd."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        STRUCTURE[0] += 1
        self._data = value._data
        self._device = value._device
        self._version = value._version
        self._base = value._base
        self._type_cache = None

    def detach(self) -> Tensor:
        """A tensor sharing storage with this one that requires no grad."""
        trace = _active_trace()
        if trace is not None:
            return trace.alias(self)
        out = Tensor._view_of(self, self._data)
        out._detached = True  # outside autograd: in-place writes through it are allowed
        return out

    def detach_(self) -> Tensor:
        """Detach this tensor from the graph that created it, in place."""
        if self._base is not None and self.grad_fn is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn = None
        self._requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    # --- autograd ------------------------------------------------------------------------

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of the graph's leaves."""
        from compgrad.autograd import backward
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def register_hook(self, hook):
        """``hook(grad)`` runs when this tensor's gradient is computed; it may return a
        replacement. Returns a handle whose ``remove()`` unregisters it."""
        from compgrad.autograd.hooks import register_tensor_hook
        return register_tensor_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(tensor)`` runs after a leaf's ``.grad`` has been accumulated."""
        from compgrad.autograd.hooks import register_post_accumulate_hook
        return register_post_accumulate_hook(self, hook)

    def retain_grad(self) -> None:
        """Populate ``.grad`` for this non-leaf tensor during backward."""
        from compgrad.autograd.hooks import retain_grad
        retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        if self.grad_fn is None:
            return False
        ref = self.grad_fn._retained.get(self._output_nr)
        return ref is not None and ref() is self

    @property
    def _version_value(self) -> int:
        return self._version[0]

    # --- Python conversions --------------------------------------------------------------

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The data as a NumPy array sharing memory (as in PyTorch)."""
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if self._device.type != "cpu":
            if not force:
                raise _not_on_host(self._device)
            return to_host(self._data)
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._device.type != "cpu":
            raise _not_on_host(self._device)
        arr = self._data
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def __len__(self) -> int:
        shape = self._type.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __iter__(self):
        if not self._type.shape:
            raise TypeError("iteration over a 0-d tensor")
        return iter(ops.unbind(self, 0))

    def _scalar_for_python(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._data.reshape(()).item()

    def __bool__(self) -> bool:
        if self._data.size != 1:
            amount = "no values" if self._data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {amount} is ambiguous")
        return bool(self._data.reshape(()).item())

    def __float__(self) -> float:
        return float(self._scalar_for_python())

    def __int__(self) -> int:
        return int(self._scalar_for_python())

    def __complex__(self) -> complex:
        return complex(self._scalar_for_python())

    def __index__(self) -> int:
        if self.dtype.category != dtypes.CATEGORY_INT or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self._data.reshape(()).item())

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return format(str(self), spec)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        from compgrad._tensor_str import format_tensor
        return format_tensor(self)

    __str__ = __repr__

    def __contains__(self, element) -> bool:
        if isinstance(element, (Tensor, numbers.Number)):
            return bool(ops.any(ops.eq(self, element)))
        raise RuntimeError("Tensor.__contains__ only supports Tensor or scalar, but you passed "
                           f"in a {type(element).__name__}.")

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor, (to_host(self._data).copy(), self.requires_grad,
                                  str(self._device)))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        out = Tensor._from_array(self._data.copy(), self._device)
        out.requires_grad = self.requires_grad
        if self._grad is not None:
            out._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = out
        return out

    # --- dtype / device conversion -------------------------------------------------------

    def to(self, *args, **kwargs) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)``; ``copy=``."""
        dtype, device, copy = _parse_to_args(args, kwargs)
        out = self
        if device is not None:
            from compgrad.device import check_device
            device = check_device(device)
            if device != self._device or copy:
                out = ops.to_device(out, device)   # differentiable, as PyTorch's _to_copy
        if dtype is not None and dtype is not out.dtype:
            out = ops.to_dtype(out, dtype)
        if copy and out is self:
            out = ops.clone(self)
        return out

    def type(self, dtype=None):
        if dtype is None:
            return f"compgrad.{_LEGACY_TYPE_NAMES[self.dtype]}"
        return self.to(dtypes.as_dtype(dtype))

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtypes.float16)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def short(self) -> Tensor:
        return self.to(dtypes.int16)

    def char(self) -> Tensor:
        return self.to(dtypes.int8)

    def byte(self) -> Tensor:
        return self.to(dtypes.uint8)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        return self.to("cuda" if device is None else device)

    # --- views and shape -----------------------------------------------------------------

    @property
    def T(self) -> Tensor:
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        if self.ndim < 2:   # metadata only: no read of a recorded tensor's data
            raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                               f"Got {self.ndim}-D tensor.")
        return ops.transpose(self, -2, -1)

    @property
    def H(self) -> Tensor:
        return self.T

    @property
    def mH(self) -> Tensor:
        return self.mT

    def view(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (DType, str, type)):
            raise RuntimeError("view(dtype) is not supported by compgrad; use .to(dtype)")
        return ops.view(self, _varargs(shape))

    def view_as(self, other: Tensor) -> Tensor:
        return ops.view(self, other.shape)

    def reshape(self, *shape) -> Tensor:
        return ops.reshape(self, _varargs(shape))

    def reshape_as(self, other: Tensor) -> Tensor:
        return ops.reshape(self, other.shape)

    def expand(self, *size) -> Tensor:
        return ops.expand(self, _varargs(size))

    def expand_as(self, other: Tensor) -> Tensor:
        return ops.expand(self, other.shape)

    def permute(self, *dims) -> Tensor:
        if len(dims) == 1 and not isinstance(dims[0], numbers.Integral):
            dims = dims[0]
        return ops.permute(self, dims)

    def repeat(self, *sizes) -> Tensor:
        if len(sizes) == 1 and not isinstance(sizes[0], numbers.Integral):
            sizes = sizes[0]
        return ops.repeat(self, sizes)

    def tile(self, *dims) -> Tensor:
        if len(dims) == 1 and not isinstance(dims[0], numbers.Integral):
            dims = dims[0]
        return ops.tile(self, dims)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> Tensor:
        from compgrad.creation import tensor
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return self._new_filled(size, 0, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return self._new_filled(size, 1, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return self._new_filled(size, 0, dtype, device, requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None,
                 requires_grad=False) -> Tensor:
        return self._new_filled((size,), fill_value, dtype, device, requires_grad)

    def _new_filled(self, size, value, dtype, device, requires_grad) -> Tensor:
        if len(size) == 1 and not isinstance(size[0], numbers.Integral):
            size = size[0]
        out = ops.full(tuple(size), value, dtype=dtype or self.dtype,
                       device=device or self.device)
        if requires_grad:
            out.requires_grad_()
        return out

    # --- in-place writes -----------------------------------------------------------------

    def _write(self, value: Tensor, own_result: bool = True) -> Tensor:
        """Write ``value`` into this tensor's storage, after every check passed.

        The single place where eager tensors change: checks the shape and dtype
        rules of PyTorch's in-place ops, autograd's in-place rules, then copies
        and bumps the version counter shared with views. ``own_result``: ``value``
        is the in-place op's own result (``y.pow_(2)``), whose node may keep the
        original of this tensor; False for ``copy_(src)``, where a node that saved
        this tensor is not the write's and must see the change, as in PyTorch.
        """
        vt, st = value._type, self._type
        if vt.shape != st.shape:
            try:
                full = broadcast_shapes(vt.shape, st.shape)
            except RuntimeError:
                full = None
            if full != st.shape:
                raise RuntimeError(f"output with shape {shape_str(st.shape)} doesn't match the "
                                   f"broadcast shape {shape_str(full or vt.shape)}")
        if not can_cast(vt.dtype, st.dtype):
            raise RuntimeError(f"result type {vt.dtype.torch_name} can't be cast to the desired "
                               f"output type {st.dtype.torch_name}")
        trace = _active_trace()
        if trace is not None:
            return trace.write(self, value, own_result)
        alias = None
        if not is_writeable(self._data):
            alias = _writeable_alias(self)
            if alias is None and self._data.size > 1:
                raise RuntimeError(OVERLAP_MESSAGE)
        after = [hook(self, value, own_result) for hook in INPLACE_HOOKS]
        if not is_writeable(self._data):
            # a read-only view that repeats no element (an expand adding size-1 dims)
            # writes through to its base, as in PyTorch
            self._data = alias if alias is not None else self._data.copy()
        np.copyto(self._data, value._data, casting="unsafe")
        self._version[0] += 1
        for finish in after:
            if finish is not None:
                finish()
        return self

    def copy_(self, src, non_blocking: bool = False) -> Tensor:
        """Copy ``src`` (broadcast, cast) into this tensor."""
        if not isinstance(src, Tensor):
            raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
        if src.device != self._device:
            src = ops.to_device(src, self._device)   # copy_ crosses devices, as in PyTorch
        if src.dtype is not self.dtype:
            src = ops.to_dtype(src, self.dtype)
        if src.shape != self.shape:
            src = ops.expand(src, self.shape)
        return self._write_unchecked_cast(src, own_result=False)

    def _write_unchecked_cast(self, value: Tensor, own_result: bool = True) -> Tensor:
        # copy_ and fill_ cast any dtype into any other, as PyTorch's copy does
        if value.dtype is not self.dtype:
            value = ops.to_dtype(value, self.dtype)
        return self._write(value, own_result)

    def fill_(self, value) -> Tensor:
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor "
                                   f"with {value.ndim} dimensions.")
            return self.copy_(value)
        return self._write_unchecked_cast(ops.full(self.shape, value, dtype=self.dtype,
                                                   device=self.device))

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def where(self, condition, other) -> Tensor:
        """``compgrad.where(condition, self, other)``."""
        return ops.where(condition, self, other)

    # --- indexing ------------------------------------------------------------------------

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        self._write(ops.index_put_value(self, index, value))


def _varargs(values) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` both mean the shape (2, 3), as in PyTorch's methods."""
    if len(values) == 1 and not isinstance(values[0], numbers.Integral):
        return values[0]
    return values


def _not_on_host(device: Device) -> TypeError:
    """PyTorch's error for a GPU tensor asked for as a NumPy array."""
    return TypeError(f"can't convert {device} device type tensor to numpy. Use Tensor.cpu() "
                     "to copy the tensor to host memory first.")


def _rebuild_tensor(arr: np.ndarray, requires_grad: bool, device: str = "cpu") -> Tensor:
    t = Tensor._from_array(arr)
    if device != "cpu":
        t = t.to(device)
    t._requires_grad = requires_grad
    return t


_LEGACY_TYPE_NAMES = {
    dtypes.float32: "FloatTensor", dtypes.float64: "DoubleTensor", dtypes.float16: "HalfTensor",
    dtypes.int64: "LongTensor", dtypes.int32: "IntTensor", dtypes.int16: "ShortTensor",
    dtypes.int8: "CharTensor", dtypes.uint8: "ByteTensor", dtypes.bool_: "BoolTensor",
}


def _parse_to_args(args, kwargs):
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument '{next(iter(kwargs))}'")
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, DType) or (isinstance(a, type) and a in (float, int, bool)):
            dtype = dtypes.as_dtype(a)
        elif isinstance(a, (str, Device)):
            device = a
        elif isinstance(a, bool):
            pass  # non_blocking positional
        else:
            raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
    return dtype, device, copy

