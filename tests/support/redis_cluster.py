"""A local three-node Redis Cluster for the tests: three ``redis-server --cluster-enabled
yes`` on free ports in a temporary directory, joined by ``redis-cli --cluster create``
(no replicas), stopped afterwards."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from support.redis_server import RedisServer
from support.waiting import WAIT

__all__ = ["running_cluster"]


def _cli() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        pytest.skip("the Redis Cluster tests need redis-cli on PATH (it comes with redis-server)")
    return found


@contextmanager
def running_cluster() -> Iterator[list[tuple[str, int]]]:
    """Three joined cluster nodes; yields their ``(host, port)``."""
    cli = _cli()
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as tmp, ExitStack() as stack:
        nodes = []
        for index in range(3):
            directory = Path(tmp) / str(index)
            directory.mkdir()
            node = RedisServer(directory, extra=("--cluster-enabled", "yes"))
            node.start()
            stack.callback(node.stop)
            nodes.append(node)
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=WAIT,
        )
        deadline = time.monotonic() + WAIT
        for node in nodes:
            while True:
                info = subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                if "cluster_state:ok" in info:
                    break
                assert time.monotonic() < deadline, f"the cluster did not form:\n{info}"
                time.sleep(0.05)
        yield [("127.0.0.1", node.port) for node in nodes]
