"""``Adagrad``, PyTorch's formulas exactly."""

from __future__ import annotations

from compgrad.creation import tensor
from compgrad.factories import full_like
from compgrad.optim.optimizer import (
    Optimizer,
    _check_lr,
    _check_nonnegative,
    _get_value,
    _l2_decayed_grad,
    _step_counter,
    _use_grad_for_differentiable,
)

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``), PyTorch's single-tensor update::

        t += 1;  g = grad (+ weight_decay * p);  clr = lr / (1 + (t - 1) * lr_decay)
        sum += g * g;  p -= clr * g / (sqrt(sum) + eps)

    State (created in the constructor, as in PyTorch): ``step`` and ``sum`` (filled with
    ``initial_accumulator_value``).
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        _check_lr(lr)
        _check_nonnegative(lr_decay, "Invalid lr_decay value")
        _check_nonnegative(weight_decay, "Invalid weight_decay value")
        _check_nonnegative(initial_accumulator_value, "Invalid initial_accumulator_value value")
        _check_nonnegative(eps, "Invalid epsilon value")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = tensor(0.0)
            state["sum"] = full_like(p, group["initial_accumulator_value"])
        return state

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._setdefault_in_groups(foreach=None, maximize=False, differentiable=False,
                                   fused=None)

    @_use_grad_for_differentiable
    def step(self, closure=None):
        """Perform one step; ``closure`` (re-evaluating the loss) is called first if given
        and its result returned."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr = _get_value(group["lr"])
            lr_decay, eps = group["lr_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # groups added after construction get their state here (PyTorch raises)
                state = self._init_state(p, group)
                step_t = _step_counter(state)
                step_t += 1
                step = _get_value(step_t)
                grad = _l2_decayed_grad(p, group)
                clr = lr / (1 + (step - 1) * lr_decay)
                state_sum = state["sum"]
                state_sum.addcmul_(grad, grad, value=1)
                std = state_sum.sqrt().add_(eps)
                p.addcdiv_(grad, std, value=-clr)
        return loss
