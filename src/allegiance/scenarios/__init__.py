"""Scenario runner: play timed events and expectations against a fresh database through the
HTTP API, to test a program definition before launch.

``run``, ``run_file``, ``Report`` and ``Outcome`` live in :mod:`allegiance.scenarios.runner`,
loaded on first use (it brings the web application and its test client with it).
"""

from typing import Any

from allegiance.scenarios.schema import Scenario, ScenarioError, Step, load, parse

_RUNNER = ("Outcome", "Report", "dumps", "run", "run_file")


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from allegiance.scenarios import runner

        return getattr(runner, name)
    raise AttributeError(name)


__all__ = ["Outcome", "Report", "Scenario", "ScenarioError", "Step", "dumps", "load", "parse",
           "run", "run_file"]
