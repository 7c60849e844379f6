"""``compgrad.optim``: PyTorch's optimizers and learning-rate schedulers.

Every optimizer follows PyTorch's single-tensor update formulas exactly, keeps
its state under PyTorch's names, and round-trips PyTorch's ``state_dict`` format.
"""

from compgrad.optim import lr_scheduler
from compgrad.optim.adagrad import Adagrad
from compgrad.optim.adam import Adam, AdamW
from compgrad.optim.optimizer import Optimizer
from compgrad.optim.rmsprop import RMSprop
from compgrad.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
