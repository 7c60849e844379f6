"""Utilities, as ``torch.utils``: ``compgrad.utils.data`` holds datasets, samplers and
``DataLoader``."""

from compgrad.utils import data
