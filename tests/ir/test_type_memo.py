"""ir.opdef.infer_type memoises type rules on (op, input types, attributes): equal but
differently typed attributes (1, 1.0, True compare equal in Python) are distinct keys."""

from __future__ import annotations

import pytest

from ir.opdef import OpDef, OpKind, infer_type


def _value_kind_rule(types, value):
    return type(value).__name__


def test_equal_attributes_of_different_types_are_not_conflated():
    op = OpDef("memo_probe", OpKind.OPAQUE, _value_kind_rule, impl=None)
    assert [infer_type(op, (), {"value": v}) for v in (1, 1.0, True)] == \
        ["int", "float", "bool"]
    assert [infer_type(op, (), {"value": v}) for v in (True, 1.0, 1)] == \
        ["bool", "float", "int"]


def test_errors_are_not_memoised():
    calls = []

    def rule(types, value):
        calls.append(value)
        raise RuntimeError("bad value")

    op = OpDef("memo_error_probe", OpKind.OPAQUE, rule, impl=None)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="bad value"):
            infer_type(op, (), {"value": 3})
    assert calls == [3, 3]
