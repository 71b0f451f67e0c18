"""The house rules of ARCHITECTURE.md that import-linter cannot express, checked on the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "src" / "allegiance"
INTERFACES = {"api", "web", "admin", "portal", "cli", "jobs", "scenarios"}
NOT_FEATURES = {"kit", "migrations", "__pycache__"} | INTERFACES
FEATURES = sorted(
    p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in NOT_FEATURES
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("feature", FEATURES)
def test_features_import_each_other_only_through_their_package(feature: str) -> None:
    """Rule 2: ``from allegiance.ledger import X`` is fine, ``allegiance.ledger.service`` not."""
    problems = []
    for path in sorted((ROOT / feature).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) < 3 or parts[0] != "allegiance":
                continue
            other = parts[1]
            if other == feature or other not in FEATURES:
                continue
            module_path = ROOT / other / f"{parts[2]}.py"
            package_path = ROOT / other / parts[2]
            if module_path.exists() or package_path.is_dir():
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not problems, "import another feature through its package only:\n" + "\n".join(problems)


def test_every_feature_has_a_public_surface() -> None:
    for feature in FEATURES:
        assert (ROOT / feature / "__init__.py").exists(), feature


def test_modules_stay_small() -> None:
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in ROOT.rglob("*.py")
        if "migrations" not in p.parts and (n := len(p.read_text().splitlines())) > 600
    ]
    assert not big, "split these modules by responsibility:\n" + "\n".join(big)
