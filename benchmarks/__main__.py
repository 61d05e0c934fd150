"""Run every benchmark and print one table of ratios: ``python -m benchmarks [--quick]``."""

from __future__ import annotations

import argparse
import importlib

from benchmarks import MODULES, print_table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument("only", nargs="*", help="module names to run (default: all)")
    args = parser.parse_args()
    for name in args.only or MODULES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"\n## {name}\n(skipped: {exc})")
            continue
        tables = getattr(module, "TABLES", ("run",))
        for table in tables:
            title = name if table == "run" else f"{name}.{table}"
            print_table(title, getattr(module, table)(quick=args.quick))


if __name__ == "__main__":
    main()
