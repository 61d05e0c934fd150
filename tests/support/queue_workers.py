"""Processes that use a RedisOrganicQueue, for the tests that need more than one process.

Run as ``python -m support.queue_workers ROLE URL NAME [options]`` (see
:func:`spawn`). Each worker connects, prints ``ready``, waits for ``go`` on stdin,
then plays its role:

* ``add``: adds ``--count`` entries ``[worker, i]``, then exits.
* ``sample``: samples (and acknowledges) until stdin is closed, then writes what it
  took to ``--out`` as a JSON list and exits.
* ``hold``: samples ``--count`` entries without acknowledging them, prints them as
  one JSON line, then waits to be killed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support.processes import read_line, spawn_module


def spawn(role: str, url: str, name: str, **options: Any) -> subprocess.Popen[str]:
    """Start a worker process; its stdin and stdout are text pipes."""
    args: list[object] = [role, url, name]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    return spawn_module("support.queue_workers", *args)


def start_together(workers: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker is ready, then tell them all to go."""
    for worker in workers:
        assert read_line(worker) == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["add", "sample", "hold"])
    parser.add_argument("url")
    parser.add_argument("name")
    parser.add_argument("--max-size", type=int, default=10_000)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from organic_scoring.organic_queue import RedisOrganicQueue

    queue = RedisOrganicQueue(args.url, name=args.name, max_size=args.max_size, lease=args.lease)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    if args.role == "add":
        for i in range(args.count):
            queue.add([args.worker, i])
    elif args.role == "sample":
        stop = threading.Event()

        def watch_stdin() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        took: list[Any] = []
        while not stop.is_set():
            taken = queue.take()
            if taken is not None:
                took.append(taken[0])
                queue.ack(taken[1])
        Path(args.out).write_text(json.dumps(took))
    else:
        held: list[Any] = []
        while len(held) < args.count:
            item = queue.sample()
            if item is None:
                time.sleep(0.01)
            else:
                held.append(item)
        print(json.dumps(held), flush=True)
        time.sleep(3600)
    queue.close()


if __name__ == "__main__":
    main()
