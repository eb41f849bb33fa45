"""The ``calculator`` toolset: stateless arithmetic, the smallest useful toolset."""

from __future__ import annotations

import ast
import math

from sc_core import hookimpl, syntax
from sc_core.default_plugins import seed_examples
from sc_core.tools import Tool, ToolError, Toolset

MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300
MAX_EXPRESSION = 500


def _checked(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ToolError("result out of range")
    return value


def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return _checked(a + b)


def subtract(a: float, b: float) -> float:
    """Subtract b from a.

    Args:
        a: The minuend.
        b: The subtrahend.
    """
    return _checked(a - b)


def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return _checked(a * b)


def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: The dividend.
        b: The divisor; must not be zero.
    """
    if b == 0:
        raise ToolError("division by zero")
    return _checked(a / b)


def power(base: float, exponent: float) -> float:
    """Raise base to a power.

    Args:
        base: The base.
        exponent: The exponent, at most 1000 in absolute value.
    """
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponent must be at most {MAX_EXPONENT} in absolute value")
    if base == 0 and exponent < 0:
        raise ToolError("zero cannot be raised to a negative power")
    try:
        result = base**exponent
    except OverflowError as error:
        raise ToolError("result out of range") from error
    if isinstance(result, complex):
        raise ToolError("result is not a real number")
    return _checked(result)


def sqrt(x: float) -> float:
    """The square root of a non-negative number.

    Args:
        x: The radicand; must not be negative.
    """
    if x < 0:
        raise ToolError("square root of a negative number")
    return math.sqrt(x)


def modulo(a: int, b: int) -> int:
    """The remainder of the integer division of a by b.

    Args:
        a: The dividend.
        b: The divisor; must not be zero.
    """
    if b == 0:
        raise ToolError("modulo by zero")
    return a % b


_BINARY = {ast.Add: add, ast.Sub: subtract, ast.Mult: multiply, ast.Div: divide, ast.Pow: power}
_BINARY[ast.Mod] = modulo


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:60]}")


def evaluate(expression: str) -> float:
    """Evaluate an arithmetic expression with + - * / % ** and parentheses.

    Args:
        expression: For example "(2 + 3) * 4"; at most 500 characters.
    """
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = syntax.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ToolError(f"invalid expression: {error.msg}") from error
    return _evaluate(tree.body)


TOOLS = (add, subtract, multiply, divide, power, sqrt, modulo, evaluate)


def make_toolset() -> Toolset:
    return Toolset((Tool.from_function(fn) for fn in TOOLS), examples=seed_examples("calculator"))


@hookimpl
def register_toolsets(register):
    register("calculator", make_toolset)
