"""``python -m bench [NAME ...] [--quick] [--engine sqlite|postgres]``: run benchmarks.

Every benchmark is a function registered in :data:`BENCHMARKS` taking the parsed options and
returning whether all its goals and correctness checks passed. The exit status is 0 only when
every benchmark run passed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench import (
    analytics,
    api,
    engagement,
    expiry,
    imports,
    ingest,
    ledger,
    redeem,
    rules,
    simulate,
    tiers,
    web,
)

BENCHMARKS: dict[str, Callable[[argparse.Namespace], bool]] = {
    "analytics": analytics.run,
    "ledger": ledger.run,
    "rules": rules.run,
    "tiers": tiers.run,
    "api": api.run,
    "redeem": redeem.run,
    "simulate": simulate.run,
    "imports": imports.run,
    "ingest": ingest.run,
    "web": web.run,
    "engagement": engagement.run,
    "expiry": expiry.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="small sizes: a minute or two")
    parser.add_argument("--engine", action="append", choices=["sqlite", "postgres"],
                        help="run only on this engine (repeatable; default: both)")
    parser.add_argument("--seed", type=int, default=20261123, help="seed of the data generators")
    for name in BENCHMARKS:
        module = sys.modules[BENCHMARKS[name].__module__]
        add = getattr(module, "add_arguments", None)
        if add is not None:
            add(parser)
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    args.engine = args.engine or ["sqlite", "postgres"]
    ok = True
    for name in names:
        ok = BENCHMARKS[name](args) and ok
    print("ALL PASS" if ok else "SOME FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
