"""T32: mutation testing of the ledger core (a periodic job: ``make mutation``).

Runs mutmut (the ``mutation`` extra) over the files and tests configured in pyproject.toml's
``[tool.mutmut]`` (ledger/domain.py, service.py, writes.py; the ledger's invariant tests, on
SQLite), then writes the mutation score and the surviving mutants under ``"T32"`` in
``test-figures.json`` (the same summary the test suite fills), and prints them.

    python scripts/mutation.py                       # everything configured (hours)
    python scripts/mutation.py --only 'allegiance.ledger.domain.*' --max-children 2

``--only`` takes mutmut's mutant-name globs (``module.x_function__mutmut_N``), so a run can be
bounded to one module or function. Mutants run in forked children of one pytest process;
mutmut's own timeouts stop a mutant that makes a test loop. The score is
killed / (killed + survived + timeout + suspicious); mutants no test reaches are listed apart
(``no_tests``) and count as survivors in ``score_with_uncovered``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import figures  # noqa: E402

# The invariant tests also run on PostgreSQL where one answers; mutants run on SQLite only
# (one engine is enough to kill a mutant, and it keeps every test run short).
NO_POSTGRES = "postgresql://postgres@127.0.0.1:9/none"


def _statuses() -> dict[str, str]:
    """Mutant name -> mutmut's status, from the ``.meta`` files of the last run."""
    from mutmut.stats import status_by_exit_code

    out: dict[str, str] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = status_by_exit_code[code]
    return out


def _diff(name: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[],
                        help="mutant-name globs, e.g. 'allegiance.ledger.domain.*'")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--diffs", type=int, default=50,
                        help="print the diff of at most this many surviving mutants")
    args = parser.parse_args(argv)

    env = {**os.environ, "ALLEGIANCE_TEST_POSTGRES_URL": NO_POSTGRES,
           "ALLEGIANCE_REQUIRE_POSTGRES": "0"}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                          str(args.max_children), *args.only], cwd=ROOT, env=env, check=False)
    elapsed = time.monotonic() - started
    statuses = _statuses()
    if args.only:
        from fnmatch import fnmatch

        statuses = {k: v for k, v in statuses.items() if any(fnmatch(k, g) for g in args.only)}
    counts = Counter(statuses.values())
    checked = counts["killed"] + counts["survived"] + counts["timeout"] + counts["suspicious"]
    score = round(100.0 * counts["killed"] / checked, 1) if checked else None
    with_uncovered = checked + counts["no tests"]
    survivors = sorted(k for k, v in statuses.items() if v in ("survived", "no tests"))
    figures.record(
        "T32", scope=args.only or ["all configured"], mutants=len(statuses),
        statuses=dict(counts), mutation_score_percent=score, target_percent=80,
        score_with_uncovered_percent=(round(100.0 * counts["killed"] / with_uncovered, 1)
                                      if with_uncovered else None),
        surviving_mutants=[k for k in survivors if statuses[k] == "survived"],
        no_tests_mutants=[k for k in survivors if statuses[k] == "no tests"],
        seconds=round(elapsed, 1), mutmut_exit_code=run.returncode,
    )
    print(f"\nT32: {len(statuses)} mutants, {dict(counts)}; score {score}% (target 80%)")
    for name in survivors[:args.diffs]:
        print(f"\n--- {statuses[name]}: {name}\n{_diff(name)}")
    return 0 if run.returncode == 0 and checked else 1


if __name__ == "__main__":
    sys.exit(main())
