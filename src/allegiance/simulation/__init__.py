"""Simulation (backtesting): replay a period's historical events under a draft program
definition with the columnar evaluator and compare with the definition in force — points
issued, cost, liability at the period's end, tiers, top earners, contribution per rule.
Never writes (see docs/simulation.md)."""

from allegiance.simulation.engine import Comparison, Side, Unit, compare, split_rules
from allegiance.simulation.projection import project
from allegiance.simulation.service import Simulation, program_for, side, simulate

__all__ = ["Comparison", "Side", "Simulation", "Unit", "compare", "program_for", "project", "side",
           "simulate", "split_rules"]
