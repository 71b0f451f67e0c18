"""The same compiled condition tree as Polars expressions, for millions of rows at a time.

Columns are named by field (``"event.amount"``, ``"line.sku"``). Every comparison is
``fill_null(False)`` so that null semantics match :func:`allegiance.rules.language.to_python`
exactly (a comparison with null is false, and ``not`` of it is true).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from allegiance.rules.language import ExpressionError, Node


def to_polars(node: Node) -> pl.Expr:
    op, args = node.op, node.args
    if op == "const":
        value = args[0]
        if isinstance(value, tuple):
            raise ExpressionError("a list constant is only allowed after 'in'")
        return pl.lit(value)
    if op == "field":
        return pl.col(str(args[0]))
    if op == "and":
        out = _bool(args[0])
        for arg in args[1:]:
            out = out & _bool(arg)
        return out
    if op == "or":
        out = _bool(args[0])
        for arg in args[1:]:
            out = out | _bool(arg)
        return out
    if op == "not":
        return ~_bool(args[0])
    if op == "truthy":
        return _truthy(args[0])
    if op == "neg":
        return -to_polars(args[0])
    if op in ("+", "-", "*"):
        left, right = to_polars(args[0]), to_polars(args[1])
        return {"+": left + right, "-": left - right, "*": left * right}[op]
    if op == "//":
        left, right = to_polars(args[0]), to_polars(args[1])
        return pl.when(right == 0).then(pl.lit(None, dtype=pl.Int64)).otherwise(left // right)
    if op in ("==", "!=", "<", "<=", ">", ">="):
        left, right = to_polars(args[0]), to_polars(args[1])
        compared = {
            "==": left == right, "!=": left != right, "<": left < right,
            "<=": left <= right, ">": left > right, ">=": left >= right,
        }[op]
        return compared.fill_null(False)
    if op in ("in", "not in"):
        value = to_polars(args[0])
        options = list(args[1].args[0])
        member = value.is_in(options).fill_null(False)
        if op == "in":
            return member
        return (~member & value.is_not_null()).fill_null(False)
    if op == "contains":
        container, item = args
        if item.op == "const":
            if item.args[0] is None:
                return pl.lit(False)
            return to_polars(container).list.contains(item.args[0]).fill_null(False)
        return to_polars(container).list.contains(to_polars(item)).fill_null(False)
    if op == "lower":
        return to_polars(args[0]).str.to_lowercase()
    if op == "coalesce":
        return pl.coalesce(to_polars(args[0]), to_polars(args[1]))
    raise ExpressionError(f"cannot compile {op}")


def _bool(node: Node) -> pl.Expr:
    return to_polars(node).fill_null(False)


def _truthy(node: Node) -> pl.Expr:
    expr = to_polars(node)
    kind = node.type
    if kind == "bool":
        return expr.fill_null(False)
    if kind in ("int", "float"):
        return (expr != 0).fill_null(False)
    if kind == "str":
        return (expr != "").fill_null(False)
    if kind == "list":
        return (expr.list.len() > 0).fill_null(False)
    return pl.lit(False)


POLARS_TYPES: dict[str, Any] = {
    "int": pl.Int64, "float": pl.Float64, "str": pl.Utf8, "bool": pl.Boolean,
    "list": pl.List(pl.Utf8),
}
