"""Imports go one way: compgrad -> codegen -> passes -> ir, never back."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYERS = ["ir", "passes", "codegen", "compgrad"]  # each may import only those before it


def _imported_packages(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    forbidden = set(LAYERS[LAYERS.index(layer) + 1:])
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        wrong = _imported_packages(path) & forbidden
        if wrong:
            bad.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_runtime_torch_import():
    bad = [str(p.relative_to(ROOT)) for layer in LAYERS for p in (ROOT / layer).rglob("*.py")
           if "torch" in _imported_packages(p)]
    assert not bad, f"torch is a test-time oracle only, imported by {bad}"


def test_ir_imports_without_compgrad():
    code = "import sys, ir, ir.ops, passes, codegen; assert 'compgrad' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_import_compgrad_exposes_nn_functional():
    code = ("import compgrad; assert callable(compgrad.nn.functional.softmax); "
            "import sys; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_module_over_800_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for layer in LAYERS + ["tests"]
            for p in (ROOT / layer).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 800]
    assert not long, f"modules over 800 lines: {long}"
