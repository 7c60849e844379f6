"""``SGD``: stochastic gradient descent with optional momentum, Nesterov and weight decay."""

from __future__ import annotations

import numpy as np

from compgrad.autograd.grad_mode import _STATE
from compgrad.device_arrays import is_writeable
from compgrad.optim.optimizer import (
    Optimizer,
    _check_lr,
    _check_nonnegative,
    _get_value,
    _l2_decayed_grad,
    _use_grad_for_differentiable,
)
from compgrad.tensor import INPLACE_HOOKS, Tensor, _active_trace
from ir.fperr import quiet_call

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (``torch.optim.SGD``), PyTorch's update exactly::

        g = grad (+ weight_decay * p);  buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or buf;  p -= lr * g

    The first step sets ``buf = g``. State: ``momentum_buffer`` (when ``momentum != 0``).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        _check_lr(lr)
        _check_nonnegative(momentum, "Invalid momentum value")
        _check_nonnegative(weight_decay, "Invalid weight_decay value")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
                    "foreach": foreach, "differentiable": differentiable, "fused": fused}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._setdefault_in_groups(nesterov=False, maximize=False, foreach=None,
                                   differentiable=False, fused=False)

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one step; ``closure`` (re-evaluating the loss) is called first if given
        and its result returned."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            dampening = group["dampening"]
            lr = _get_value(group["lr"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = _l2_decayed_grad(p, group)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    elif not group["nesterov"] and _momentum_step(
                            p, buf, grad, momentum, 1 - dampening, -lr):
                        continue
                    else:
                        buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(grad, alpha=-lr)
        return loss


_NUMBERS = (int, float)


def _momentum_step(p: Tensor, buf: Tensor, grad: Tensor, momentum, alpha, step) -> bool:
    """``buf.mul_(momentum).add_(grad, alpha=alpha); p.add_(buf, alpha=step)`` as the
    NumPy calls those three make, without their dispatch (~100 us of Python on a W1 step's
    six parameters): the same operations on every element in the same order, so the same
    values, the same storage and the same version counts. Returns False, having done
    nothing, unless that is plain NumPy arithmetic with nothing for autograd or @compile
    to see: grad mode off, no in-place hook but autograd's, Python number factors, and
    three float arrays of one shape and dtype, the written ones writeable, that share no
    memory."""
    if _STATE.enabled or len(INPLACE_HOOKS) > 1 or _active_trace() is not None:
        return False
    if type(momentum) not in _NUMBERS or type(alpha) not in _NUMBERS \
            or type(step) not in _NUMBERS:
        return False
    P, B, G = p._data, buf._data, grad._data
    if not (type(P) is np.ndarray and type(B) is np.ndarray and type(G) is np.ndarray):
        return False
    if P.dtype.kind != "f" or B.dtype != P.dtype or G.dtype != P.dtype \
            or B.shape != P.shape or G.shape != P.shape:
        return False
    if not (is_writeable(P) and is_writeable(B)) or np.may_share_memory(P, B) \
            or np.may_share_memory(P, G) or np.may_share_memory(B, G):
        return False
    quiet_call(_momentum_arrays, P, B, G, momentum, alpha, step)
    buf._version[0] += 2   # mul_ and add_
    p._version[0] += 1
    return True


def _momentum_arrays(p: np.ndarray, buf: np.ndarray, grad: np.ndarray, momentum, alpha,
                     step) -> None:
    # Tensor.mul_ / add_'s own NumPy calls (compgrad._methods._write_ufunc): a factor
    # other than 1 scales the operand into a temporary first
    np.multiply(buf, momentum, out=buf)
    np.add(buf, grad if alpha == 1 else np.multiply(grad, alpha), out=buf)
    np.add(p, buf if step == 1 else np.multiply(buf, step), out=p)
