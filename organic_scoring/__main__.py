"""The ``organic-scoring`` command.

``organic-scoring demo [--duration S] [--json] [--intake axon|http]
[--protocol btauth/1|epistula] [--metrics-port PORT] [--redis URL [--workers N]]``;
``organic-scoring --version``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="organic-scoring", description="Organic scoring for Bittensor subnet validators."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=_version(),
        help="print the versions of organic-scoring and the installed bittensor, then exit",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run a local end-to-end demo subnet on 127.0.0.1 (no chain, no internet)",
        description="Run a small subnet on 127.0.0.1: a validator, simulated miners and a "
        "user sending organic requests in bursts, with a live view of the scoring loop.",
    )
    demo.add_argument(
        "--duration",
        type=_positive,
        default=20.0,
        help="seconds to run (default: 20; organic traffic is first scored about 3 s in)",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary on stdout at the end (the live view goes to stderr)",
    )
    demo.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics while the demo runs "
        "(0: any free port; needs the metrics extra); with --redis, the active scorer's, "
        "which runs in the demo's own process",
    )
    demo.add_argument(
        "--intake",
        choices=("axon", "http"),
        help="how organic traffic reaches the validator: a bittensor axon (9/10, the "
        "default there) or signed HTTP (any bittensor, the default on 11)",
    )
    demo.add_argument(
        "--protocol",
        choices=("btauth/1", "epistula"),
        help="the signed-HTTP protocol: btauth/1 (bittensor 11, the default there) or "
        "Epistula (any bittensor, the default on 9/10); implies --intake http",
    )
    demo.add_argument(
        "--redis",
        metavar="URL",
        help="run the demo as a fleet sharing this Redis server (e.g. redis://127.0.0.1:6379/0): "
        "intake worker processes, an active scorer and a standby; needs the http and redis extras",
    )
    demo.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="intake worker processes behind one port, with --redis (default: 2)",
    )
    args = parser.parse_args(argv)
    if args.metrics_port is not None and importlib.util.find_spec("prometheus_client") is None:
        demo.error("--metrics-port needs the metrics extra: pip install 'organic-scoring[metrics]'")
    if args.workers is not None and args.redis is None:
        demo.error("--workers needs --redis: the workers share their queue through Redis")
    if args.redis is not None:
        missing = [extra for extra, modules in _FLEET_EXTRAS if not all(map(_found, modules))]
        if missing:
            demo.error(
                f"--redis needs the {' and '.join(missing)} extra{'s' * (len(missing) > 1)}: "
                f"pip install 'organic-scoring[{','.join(missing)}]'"
            )

    from organic_scoring.demo._intake import choose_intake

    if args.redis is not None and args.intake == "axon":
        demo.error("--redis runs the intake as signed-HTTP worker processes, not an axon")
    try:
        choice = choose_intake("http" if args.redis else args.intake, args.protocol)
    except ValueError as exc:
        demo.error(str(exc))

    if args.redis is not None:
        from organic_scoring.demo._fleet import run_fleet_demo

        workers = 2 if args.workers is None else args.workers
        return run_fleet_demo(
            args.redis,
            workers,
            duration=args.duration,
            as_json=args.json,
            protocol=choice.protocol,
            metrics_port=args.metrics_port,
        )

    from organic_scoring.demo import run_demo

    return run_demo(
        duration=args.duration,
        as_json=args.json,
        intake=args.intake,
        protocol=args.protocol,
        metrics_port=args.metrics_port,
    )


# What the fleet demo imports, by the extra that brings it.
_FLEET_EXTRAS = (("http", ("starlette", "httpx", "uvicorn")), ("redis", ("redis",)))


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec
        return True


def _version() -> str:
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"organic-scoring {installed('organic-scoring')} (bittensor {installed('bittensor')})"


def _number(kind: type, what: str, low: float, high: float, rule: str) -> Any:
    """An argparse type: ``kind(text)`` within ``[low, high]`` (``rule`` says which)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high or (kind is float and not low < value < high):
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}")
        return value

    return parse


_workers = _number(int, "a number of processes", 1, 64, "1 to 64 worker processes")
_positive = _number(float, "a number of seconds", 0, float("inf"), "a positive number of seconds")
_port = _number(int, "a port number", 0, 65535, "a port from 0 to 65535")


if __name__ == "__main__":
    sys.exit(main())
