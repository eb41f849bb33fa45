"""``ast.parse`` behind one lock, for code that parses in several threads.

CPython 3.11 keeps the AST converter's recursion depth in interpreter-wide state, so two
threads parsing at once can fail with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905). The CaT filter and the sandbox's host-side tools parse in worker
threads; the parses are short, so serialising them costs nothing measurable.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse(source, mode=mode)``, one thread at a time."""
    with _LOCK:
        return ast.parse(source, mode=mode)
