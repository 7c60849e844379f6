"""``RMSprop``, PyTorch's formulas exactly (optionally centered, with momentum)."""

from __future__ import annotations

from compgrad.creation import tensor
from compgrad.factories import zeros_like
from compgrad.optim.optimizer import (
    Optimizer,
    _check_lr,
    _check_nonnegative,
    _get_value,
    _l2_decayed_grad,
    _step_counter,
    _use_grad_for_differentiable,
)

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``), PyTorch's single-tensor update::

        g = grad (+ weight_decay * p);  v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - g_avg**2) (centered, g_avg.lerp_(g, 1 - alpha)) or sqrt(v);  avg += eps
        buf = momentum * buf + g / avg;  p -= lr * buf   (momentum > 0)
        p -= lr * g / avg                                 (otherwise)

    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg``
    (centered).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        _check_lr(lr)
        _check_nonnegative(eps, "Invalid epsilon value")
        _check_nonnegative(momentum, "Invalid momentum value")
        _check_nonnegative(weight_decay, "Invalid weight_decay value")
        _check_nonnegative(alpha, "Invalid alpha value")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps,
                    "centered": centered, "weight_decay": weight_decay,
                    "capturable": capturable, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._setdefault_in_groups(momentum=0, centered=False, foreach=None, maximize=False,
                                   differentiable=False, capturable=False)

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one step; ``closure`` (re-evaluating the loss) is called first if given
        and its result returned."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr = _get_value(group["lr"])
            alpha, eps = group["alpha"], group["eps"]
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = tensor(0.0)
                    state["square_avg"] = zeros_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = zeros_like(p)
                grad = _l2_decayed_grad(p, group)
                square_avg = state["square_avg"]
                step = _step_counter(state)
                step += 1
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                if group["centered"]:
                    grad_avg = state["grad_avg"]
                    grad_avg.lerp_(grad, 1 - alpha)
                    avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
                else:
                    avg = square_avg.sqrt()
                avg = avg.add_(eps)
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(momentum).addcdiv_(grad, avg)
                    p.add_(buf, alpha=-lr)
                else:
                    p.addcdiv_(grad, avg, value=-lr)
        return loss
