"""Earning rules as data: a safe condition language compiled to Python (per event) and to
Polars (columnar), effects, limits, budgets, stacking and dry-run traces."""

from allegiance.rules.columnar import to_polars
from allegiance.rules.columnar_eval import (
    AWARD_SCHEMA,
    FrameProgram,
    RuleAwards,
    award_pieces,
    evaluate_frame,
    evaluate_frames,
)
from allegiance.rules.columnar_limits import MEMBER_KEY
from allegiance.rules.domain import (
    Effect,
    Limit,
    Ratio,
    Rule,
    RuleError,
    divide,
    order,
    parse_rule,
)
from allegiance.rules.evaluate import Award, Evaluation, EventInput, Trace, evaluate
from allegiance.rules.frames import lines_frame
from allegiance.rules.language import ExpressionError, Node, compile_expression, to_python
from allegiance.rules.models import RuleUsage
from allegiance.rules.periods import period_key, period_key_expr
from allegiance.rules.program import CompiledProgram, Counter, compile_program, distinct_key
from allegiance.rules.service import (
    add_usage,
    budget_account,
    budgets_left,
    fund_budget,
    lock_usage,
    usage_keys,
)

__all__ = [
    "AWARD_SCHEMA",
    "MEMBER_KEY",
    "Award",
    "CompiledProgram",
    "Counter",
    "Effect",
    "Evaluation",
    "EventInput",
    "ExpressionError",
    "FrameProgram",
    "Limit",
    "Node",
    "Ratio",
    "Rule",
    "RuleAwards",
    "RuleError",
    "RuleUsage",
    "Trace",
    "add_usage",
    "award_pieces",
    "budget_account",
    "budgets_left",
    "compile_expression",
    "compile_program",
    "distinct_key",
    "divide",
    "evaluate",
    "evaluate_frame",
    "evaluate_frames",
    "fund_budget",
    "lines_frame",
    "lock_usage",
    "order",
    "parse_rule",
    "period_key",
    "period_key_expr",
    "to_polars",
    "to_python",
    "usage_keys",
]
