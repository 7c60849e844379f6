"""``compgrad.nn``: neural-network building blocks (modules arrive with the nn issue)."""

from compgrad.nn import functional

__all__ = ["functional"]
