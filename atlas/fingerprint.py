"""Fingerprints of source code: what runs, not how it is worded.

Stored results (:func:`atlas.pipeline.state.code_fingerprint`) and the opt-in feature cache
(:func:`atlas.features.extract.extraction_fingerprint`) are keyed by the code that made them. Both
hash each module's syntax tree without its docstrings (:func:`runnable`), so a reworded docstring
or comment keeps what is stored while any change to what runs gives new keys.

Example
-------
>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "a.py").write_text('def f():\\n    "Old words."\\n    return 1\\n')
>>> before = source_fingerprint(root, ["a.py"])
>>> _ = (root / "a.py").write_text('def f():\\n    "New words."  # and a comment\\n    return 1\\n')
>>> source_fingerprint(root, ["a.py"]) == before
True
>>> _ = (root / "a.py").write_text('def f():\\n    return 2\\n')
>>> source_fingerprint(root, ["a.py"]) == before
False
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["runnable", "source_fingerprint"]


def runnable(source: bytes) -> str:
    r"""The syntax tree of ``source`` without docstrings and line numbers (comments never reach
    the tree): what the interpreter runs. A changed string the code uses (a key, a format) still
    changes it, and so may another Python, whose trees can differ. The whole package takes 0.25 s.

    >>> old = b'def f():\n    "Old words."\n    return 1  # why'
    >>> runnable(old) == runnable(b'def f():\n    "New words."\n\n    return 1')
    True
    >>> runnable(old) == runnable(b'def f():\n    "Old words."\n    return 2')
    False
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and ast.get_docstring(node, clean=False) is not None):
            node.body[0] = ast.Expr(ast.Constant(""))  # still a statement: a body of a docstring alone stays one
    return ast.dump(tree)


def source_fingerprint(root: Path, relative_paths: Iterable[str | Path], seed: str = "") -> str:
    """A 16-hex-digit digest of the modules ``root / p`` (each named by its relative path, in sorted
    order, as :func:`runnable`), after ``seed`` (library versions, say)."""
    h = hashlib.sha256(seed.encode())
    for rel in sorted(Path(p).as_posix() for p in relative_paths):
        h.update(rel.encode())
        h.update(runnable((Path(root) / rel).read_bytes()).encode())
    return h.hexdigest()[:16]
