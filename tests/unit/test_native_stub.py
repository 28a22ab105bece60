"""python/msce/_C.pyi names exactly what the built native module has (tools/gen_stub.py
regenerates it), so type checkers and readers see the real native API."""

from __future__ import annotations

import ast
from pathlib import Path

import msce._C as C

STUB = Path(__file__).resolve().parents[2] / "python" / "msce" / "_C.pyi"


def _stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_stub_lists_every_native_name():
    module = {n for n in vars(C) if not n.startswith("__")}
    stub = _stub_names()
    assert module - stub == set(), "missing from _C.pyi (run tools/gen_stub.py)"
    assert stub - module == set(), "in _C.pyi but not in the module (run tools/gen_stub.py)"


def test_enum_members_match():
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and hasattr(getattr(C, node.name), "__members__"):
            listed = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)]
            assert listed == list(getattr(C, node.name).__members__), node.name
