"""Placeholder formatting (replaced by the full PyTorch-style printer)."""


def format_tensor(t) -> str:
    return f"tensor({t._data.tolist()})"
