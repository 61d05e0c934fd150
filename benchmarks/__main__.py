"""Run the benchmarks and print one table of ratios: ``python -m benchmarks [--quick] [names]``.

Each bittensor major can measure only some of them (the axon intake needs 9 or 10,
btauth/1 signed HTTP 11); ``python3 scripts/test.py -s benchmarks`` runs every one in an
environment that can. This command fails (exit status 1) rather than report success
when it measured nothing, or when a benchmark named on the command line measured
nothing here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from benchmarks import MODULES, print_table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks named in ``argv`` (default: all); return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument("only", nargs="*", help="module names to run (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(MODULES)}")
    missed: list[str] = []
    for name in args.only or MODULES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as exc:
            print(f"\n## {name}\n(not run: {exc})")
            missed.append(f"{name} (could not be imported: {exc})")
            continue
        measured = 0
        for table in getattr(module, "TABLES", ("run",)):
            rows = getattr(module, table)(quick=args.quick)
            print_table(name if table == "run" else f"{name}.{table}", rows)
            measured += len(rows)
        if not measured:
            missed.append(f"{name} (nothing to measure on this bittensor)")
    ran = len(args.only or MODULES) - len(missed)
    if ran == 0 or (args.only and missed):
        print(
            "\nbenchmarks failed: measured nothing for " + "; ".join(missed) + ". Install the "
            "package with its extras (pip install -e '.[http]') in the environment that runs "
            "them, or run every benchmark where it can run with: "
            "python3 scripts/test.py -s benchmarks",
            file=sys.stderr,
        )
        return 1
    if missed:
        print("\nnot measured here: " + "; ".join(missed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
