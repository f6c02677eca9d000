"""``calculate{expression}``: arithmetic on numbers, parsed with ``ast`` (never ``eval``).

Allowed: int/float literals, ``+ - * / // % **``, unary ``+ -``, parentheses, and the
functions ``abs round min max sqrt``. Everything else (names, attributes, calls to
anything else, strings, comprehensions) is refused. Bounded so no expression can hang or
eat memory: length, node count, exponent size and result magnitude (``9**9**9`` is refused
at once, before any big power is computed).
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, ClassVar

from hbench.sandbox import Sandbox
from hbench.text import has_surrogate
from hbench.tools import Tool, ToolError

MAX_EXPRESSION = 500
MAX_NODES = 200
MAX_INT_BITS = 4096  # about 1233 decimal digits
MAX_FLOAT = 1e300

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
}


def _check(v: Any) -> Any:
    if isinstance(v, int) and v.bit_length() > MAX_INT_BITS:
        raise ToolError(f"result is too large (more than {MAX_INT_BITS} bits); refused")
    if isinstance(v, float) and (math.isinf(v) or abs(v) > MAX_FLOAT):
        raise ToolError("result is too large (overflow); refused")
    if isinstance(v, float) and math.isnan(v):
        raise ToolError("result is not a number")
    return v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 24 else f"{r[:10]}...({len(r)} digits)"


def _pow(a: Any, b: Any) -> Any:
    if isinstance(b, float) and not b.is_integer() and a < 0:
        raise ToolError("fractional power of a negative number; refused")
    if abs(a) > 1 and b > 0:
        # bits (int) or decimal exponent (float) of the result, estimated before computing it
        size = abs(b) * math.log2(abs(a))
        if size > MAX_INT_BITS or (isinstance(a, float) or isinstance(b, float)) and size > 996:
            raise ToolError(f"{_short(a)} ** {_short(b)} is too large; refused")
    if a == 0 and b < 0:
        raise ToolError("division by zero")
    if isinstance(b, int) and b < 0 and isinstance(a, int):
        return float(a) ** b
    return a**b


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression, or ToolError naming what was refused."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("calculate needs an 'expression' string, e.g. {\"expression\": \"(3 + 4) * 2\"}")
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION} characters; refused")
    if has_surrogate(expression):
        raise ToolError("expression holds a lone surrogate (text that is not valid Unicode); refused")
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a NUL; the rest: nesting
        raise ToolError(f"not an arithmetic expression: {expression!r}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"expression has more than {MAX_NODES} parts; split it up")

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ToolError(f"only numbers are allowed, not {node.value!r}")
            return _check(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            fn = _pow if isinstance(node.op, ast.Pow) else _BINOPS.get(type(node.op))
            if fn is None:
                raise ToolError(f"operator {type(node.op).__name__} is not allowed (use + - * / // % **)")
            try:
                return _check(fn(a, b))
            except ZeroDivisionError:
                raise ToolError("division by zero") from None
            except OverflowError:
                raise ToolError("result is too large (overflow); refused") from None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            if node.keywords:
                raise ToolError(f"{node.func.id}() takes no keyword arguments here")
            vals = [ev(a) for a in node.args]
            if node.func.id == "round" and len(vals) == 2 and (not isinstance(vals[1], int) or abs(vals[1]) > 100):
                raise ToolError("round(): digits must be a whole number between -100 and 100")
            try:
                return _check(_FUNCS[node.func.id](*vals))
            except OverflowError:
                raise ToolError("result is too large (overflow); refused") from None
            except (TypeError, ValueError) as exc:
                raise ToolError(f"{node.func.id}(): {exc}") from None
        if isinstance(node, ast.Tuple):
            raise ToolError("write numbers without thousands separators (42000, not 42,000)")
        if isinstance(node, ast.Name):
            raise ToolError(f"unknown name {node.id!r}: only numbers, + - * / // % ** and "
                            f"{', '.join(_FUNCS)} are allowed")
        raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression")

    try:
        return ev(tree)
    except RecursionError:
        raise ToolError("expression is nested too deeply") from None


def format_number(v: int | float) -> str:
    """Integers exactly; floats to 12 significant digits (42000*1.1 -> 46200)."""
    if isinstance(v, int):
        return str(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return format(v, ".12g")


class Calculate(Tool):
    name: ClassVar[str] = "calculate"
    description: ClassVar[str] = (
        "Evaluate an arithmetic expression exactly: numbers, + - * / // % ** and "
        "parentheses, plus abs, round, min, max, sqrt. Example: '(42000 - 1250) * 0.2'."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The arithmetic expression."}},
        "required": ["expression"],
    }

    def call(self, args: dict[str, Any], sandbox: Sandbox) -> str:
        expr = args.get("expression")
        if isinstance(expr, (int, float)) and not isinstance(expr, bool):
            expr = str(expr)
        return format_number(evaluate(expr))
