"""The condition language refuses conditions nested deeper than ``MAX_DEPTH`` with a clear
error (the compiler, both evaluators and Polars' planner recurse once per level: a
thousand nested minus signs used to reach them), and still compiles realistic ones."""

from __future__ import annotations

import pytest

from allegiance.rules.columnar import to_polars
from allegiance.rules.language import MAX_DEPTH, ExpressionError, compile_expression, to_python

TYPES = {"event.amount": "int", "member.tier": "str"}


@pytest.mark.parametrize("source", [
    "-" * 1000 + "1 > 0",
    "not " * 200 + "True",
    " + ".join(["event.amount"] * 120) + " > 0",
])
def test_deep_conditions_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError, match=f"nested deeper than {MAX_DEPTH} levels"):
        compile_expression(source, TYPES)


def test_long_flat_and_moderately_nested_conditions_compile() -> None:
    flat = " and ".join(f"event.amount > {n}" for n in range(150))
    summed = " + ".join(["event.amount"] * 20) + " > 100"
    for source in (flat, summed, '(event.amount + 1) * 2 > 3 and member.tier in ["gold"]'):
        node = compile_expression(source, TYPES)
        assert node.type == "bool"
        to_polars(node)  # both evaluators build without recursion trouble
        assert to_python(node)({"event.amount": 500, "member.tier": "gold"}) in (True, False)
