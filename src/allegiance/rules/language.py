"""The condition language: a small, typed, side-effect-free expression language.

Source text uses Python's expression syntax (so operators and precedence are familiar) but is
only *parsed* by :mod:`ast`, never evaluated: a fixed set of node types is accepted and
compiled to our own tree, which is then compiled to a Python closure (one event at a time) and
to a Polars expression (millions at a time) by :mod:`allegiance.rules.columnar`.

    line.category == "tyres" and event.amount >= 10000
    in_list(line.sku, "genuine") or line.brand in ["Cordiant", "Tunga"]
    member.tier in ["gold", "platinum"] and not event.attributes.upsell

Semantics shared by both compilers (the property test holds them to it):
- a field that is absent is ``null``; arithmetic with null is null; every comparison with
  null is false (so ``not`` of it is true); ``and``/``or`` are two-valued;
- ints and floats compare numerically; strings compare with strings only (checked when
  compiling against the field types);
- ``//`` is floor division; division by zero gives null.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Value = Any
Row = Mapping[str, Any]

# Field types: "int", "float", "str", "bool", "list" (of strings).
NUMERIC = ("int", "float")
FUNCTIONS = {"in_list": 2, "contains": 2, "lower": 1, "coalesce": 2}


class ExpressionError(ValueError):
    """A condition that cannot be compiled; the message says where and why."""


@dataclass(frozen=True)
class Node:
    """A node of the compiled tree: ``op`` and its ``args`` (nodes or constants)."""

    op: str
    args: tuple[Any, ...]
    type: str  # int | float | str | bool | list | null

    def fields(self) -> set[str]:
        if self.op == "field":
            return {str(self.args[0])}
        out: set[str] = set()
        for arg in self.args:
            if isinstance(arg, Node):
                out |= arg.fields()
        return out


_COMPARE = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in",
}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//"}


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _Compiler:
    def __init__(self, types: Mapping[str, str], lists: Mapping[str, frozenset[str]]) -> None:
        self.types = types
        self.lists = lists

    def node(self, tree: ast.expr) -> Node:
        if isinstance(tree, ast.BoolOp):
            op = "and" if isinstance(tree.op, ast.And) else "or"
            args = tuple(self.boolean(v) for v in tree.values)
            return Node(op, args, "bool")
        if isinstance(tree, ast.UnaryOp):
            if isinstance(tree.op, ast.Not):
                return Node("not", (self.boolean(tree.operand),), "bool")
            if isinstance(tree.op, ast.USub):
                inner = self.node(tree.operand)
                if inner.type == "null":
                    raise ExpressionError("- needs a number, got null")
                self._numeric(inner, "-")
                return Node("neg", (inner,), inner.type)
            raise ExpressionError(f"operator {type(tree.op).__name__} is not allowed")
        if isinstance(tree, ast.Compare):
            return self.compare(tree)
        if isinstance(tree, ast.BinOp):
            arith = _ARITH.get(type(tree.op))
            if arith is None:
                raise ExpressionError(
                    f"operator {type(tree.op).__name__} is not allowed (use + - * //)"
                )
            op = arith
            left, right = self.node(tree.left), self.node(tree.right)
            self._numeric(left, op)
            self._numeric(right, op)
            kind = "int" if left.type == "int" and right.type == "int" else "float"
            if op == "//" and kind != "int":
                raise ExpressionError("// needs whole numbers")
            return Node(op, (left, right), kind)
        if isinstance(tree, ast.Constant):
            return self.constant(tree.value)
        if isinstance(tree, ast.List | ast.Tuple):
            items = []
            for element in tree.elts:
                if not isinstance(element, ast.Constant) or isinstance(element.value, bool | None):
                    raise ExpressionError("list items must be plain numbers or strings")
                items.append(element.value)
            return Node("const", (tuple(items),), "list")
        if isinstance(tree, ast.Name | ast.Attribute):
            name = _dotted(tree)
            if name in ("true", "True"):
                return Node("const", (True,), "bool")
            if name in ("false", "False"):
                return Node("const", (False,), "bool")
            if name in ("null", "None"):
                return Node("const", (None,), "null")
            if name is None or name not in self.types:
                raise ExpressionError(f"unknown field {name!r}")
            return Node("field", (name,), self.types[name])
        if isinstance(tree, ast.Call):
            return self.call(tree)
        raise ExpressionError(f"{type(tree).__name__} is not allowed in a condition")

    def constant(self, value: Any) -> Node:
        if value is None:
            return Node("const", (None,), "null")
        if isinstance(value, bool):
            return Node("const", (value,), "bool")
        if isinstance(value, int):
            if abs(value) >= 10**18:  # the columnar evaluator works in 64-bit integers
                raise ExpressionError("numbers in a condition are below 10^18")
            return Node("const", (value,), "int")
        if isinstance(value, float):
            return Node("const", (value,), "float")
        if isinstance(value, str):
            return Node("const", (value,), "str")
        raise ExpressionError(f"constant {value!r} is not allowed")

    def boolean(self, tree: ast.expr) -> Node:
        node = self.node(tree)
        if node.type == "null":  # "None" alone is no condition (and Polars cannot filter on it)
            raise ExpressionError("a condition cannot be null alone; compare it: x == null")
        _no_list_constant(node)
        if node.type != "bool" or node.op in ("field", "coalesce"):
            # A bare field is true when present and truthy ("event.attributes.upsell").
            return Node("truthy", (node,), "bool")
        return node

    @staticmethod
    def _numeric(node: Node, op: str) -> None:
        # A null literal is for comparisons (x == null) only: arithmetic on it means nothing,
        # and the columnar evaluator cannot type it.
        if node.type not in NUMERIC:
            raise ExpressionError(f"{op} needs numbers, got {node.type}")

    def compare(self, tree: ast.Compare) -> Node:
        parts: list[Node] = []
        left = self.node(tree.left)
        for op_node, right_tree in zip(tree.ops, tree.comparators, strict=True):
            op = _COMPARE.get(type(op_node))
            if op is None:
                raise ExpressionError(f"comparison {type(op_node).__name__} is not allowed")
            right = self.node(right_tree)
            _no_list_constant(left)
            if op in ("in", "not in"):
                if right.type == "list" and right.op == "const":
                    parts.append(Node(op, (left, right), "bool"))
                elif right.type == "list" and right.op == "field":
                    # "x" in line.labels
                    node = Node("contains", (right, left), "bool")
                    parts.append(node if op == "in" else Node("not", (node,), "bool"))
                else:
                    raise ExpressionError("'in' needs a list: [..] or a list field")
            else:
                self._comparable(left, right, op)
                parts.append(Node(op, (left, right), "bool"))
            left = right
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts), "bool")

    @staticmethod
    def _comparable(left: Node, right: Node, op: str) -> None:
        kinds = {left.type, right.type} - {"null"}
        if len(kinds) <= 1 or kinds <= set(NUMERIC):
            if kinds & {"list"}:
                raise ExpressionError(f"{op} cannot compare lists")
            if op not in ("==", "!=") and kinds & {"bool"}:
                raise ExpressionError(f"{op} cannot order booleans")
            return
        raise ExpressionError(f"cannot compare {left.type} with {right.type}")

    def call(self, tree: ast.Call) -> Node:
        if not isinstance(tree.func, ast.Name) or tree.func.id not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function; available: {', '.join(sorted(FUNCTIONS))}"
            )
        name = tree.func.id
        if tree.keywords or len(tree.args) != FUNCTIONS[name]:
            raise ExpressionError(f"{name} takes {FUNCTIONS[name]} arguments")
        if name == "in_list":
            value = self.node(tree.args[0])
            code = tree.args[1]
            if not isinstance(code, ast.Constant) or not isinstance(code.value, str):
                raise ExpressionError("in_list(value, \"list-code\") needs a list code string")
            if code.value not in self.lists:
                raise ExpressionError(f"unknown product list {code.value!r}")
            if value.type != "str":
                raise ExpressionError("in_list compares text values (sku, category, brand…)")
            return Node("in", (value, Node("const", (tuple(sorted(self.lists[code.value])),),
                                           "list")), "bool")
        if name == "contains":
            container, item = self.node(tree.args[0]), self.node(tree.args[1])
            if container.type != "list" or container.op != "field":
                raise ExpressionError("contains(list_field, \"value\") needs a list field")
            if item.type != "str":
                raise ExpressionError("contains looks for a text value")
            return Node("contains", (container, item), "bool")
        if name == "lower":
            inner = self.node(tree.args[0])
            if inner.type != "str":
                raise ExpressionError("lower() needs text")
            return Node("lower", (inner,), "str")
        first, second = self.node(tree.args[0]), self.node(tree.args[1])
        _no_list_constant(first)
        _no_list_constant(second)
        if first.type != second.type and {first.type, second.type} - {"null"} and not (
            {first.type, second.type} <= set(NUMERIC)
        ):
            raise ExpressionError("coalesce needs two values of one type")
        kind = first.type if first.type != "null" else second.type
        if kind == "null":
            raise ExpressionError("coalesce needs a value that is not null")
        return Node("coalesce", (first, second), kind)


def _no_list_constant(node: Node) -> None:
    if node.op == "const" and node.type == "list":
        raise ExpressionError("a list [..] is only allowed after 'in'")


# Deeper conditions are refused: the compiler, both evaluators and Polars' planner recurse
# once per level (a hand-written condition rarely goes past ten).
MAX_DEPTH = 64


def _depth(tree: ast.AST) -> int:
    """The deepest nesting of ``tree``, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def compile_expression(
    source: str,
    types: Mapping[str, str],
    lists: Mapping[str, frozenset[str]] | None = None,
) -> Node:
    """Parse and type-check ``source`` against the known field ``types``."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the condition is empty")
    if len(source) > 4000:
        raise ExpressionError("the condition is longer than 4000 characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        where = f" at column {exc.offset}" if isinstance(exc, SyntaxError) else ""
        message = exc.msg if isinstance(exc, SyntaxError) else "nested too deeply"
        raise ExpressionError(f"syntax error{where}: {message}") from exc
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"the condition is nested deeper than {MAX_DEPTH} levels")
    compiler = _Compiler(types, lists or {})
    return compiler.boolean(tree.body)


# ---------------------------------------------------------------------------------------------
# Python closures


def to_python(node: Node) -> Callable[[Row], Any]:
    """A function of a flat row (``{"event.amount": 1200, "line.sku": "X"}``)."""
    op, args = node.op, node.args
    if op == "const":
        value = args[0]
        return lambda row: value
    if op == "field":
        name = args[0]
        return lambda row: row.get(name)
    if op in ("and", "or"):
        parts = [to_python(a) for a in args]
        if op == "and":
            return lambda row: all(p(row) is True for p in parts)
        return lambda row: any(p(row) is True for p in parts)
    if op == "not":
        inner = to_python(args[0])
        return lambda row: inner(row) is not True
    if op == "truthy":
        inner = to_python(args[0])
        return lambda row: _truthy(inner(row))
    if op == "neg":
        inner = to_python(args[0])
        return lambda row: None if (v := inner(row)) is None else -v
    if op in ("+", "-", "*", "//"):
        left, right = to_python(args[0]), to_python(args[1])
        return lambda row: _arith(op, left(row), right(row))
    if op in ("==", "!=", "<", "<=", ">", ">="):
        left, right = to_python(args[0]), to_python(args[1])
        return lambda row: _compare(op, left(row), right(row))
    if op in ("in", "not in"):
        left = to_python(args[0])
        options = frozenset(args[1].args[0])
        if op == "in":
            return lambda row: (v := left(row)) is not None and v in options
        return lambda row: (v := left(row)) is not None and v not in options
    if op == "contains":
        container, item = to_python(args[0]), to_python(args[1])
        return lambda row: _contains(container(row), item(row))
    if op == "lower":
        inner = to_python(args[0])
        return lambda row: None if (v := inner(row)) is None else str(v).lower()
    if op == "coalesce":
        first, second = to_python(args[0]), to_python(args[1])
        return lambda row: v if (v := first(row)) is not None else second(row)
    raise ExpressionError(f"cannot compile {op}")


def _truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list | tuple):
        return len(value) > 0
    return False


def _arith(op: str, left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return None
    return left // right


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _contains(container: Any, item: Any) -> bool:
    if container is None or item is None:
        return False
    return item in container
