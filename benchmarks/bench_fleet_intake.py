"""Signed organic requests per second through the HTTP intake: 2 worker processes against 1.

The intake runs as a fleet would run it: uvicorn with ``workers=N`` behind one port on
127.0.0.1, every worker verifying signatures, refusing replays through one
:class:`RedisNonceStore` and storing requests in one :class:`RedisOrganicQueue`, on
a shared Redis server. Each request is verified (the installed bittensor's default
protocol: btauth/1 on 11, Epistula on 9/10), parsed, remembered and queued, one
Redis round trip each for the nonce and the queue.

Requests are signed before the clock starts (signing is the caller's cost), each
with its own nonce, and sent by one client process with many in flight. ``ratio``
is the 2-worker rate over the 1-worker rate: it approaches the number of cores the
workers get, on a machine where the client and Redis do not take them.

``python -m benchmarks.bench_fleet_intake`` starts a throwaway ``redis-server``
(it must be on PATH), or uses the server named by ``ORGANIC_SCORING_BENCH_REDIS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from pydantic import BaseModel

from benchmarks._redis import redis_server
from organic_scoring import ANY_HOTKEY, OrganicScoringBase
from organic_scoring.intake import IntakeSettings

IN_FLIGHT = 32
"""Requests in flight at once."""
MAX_AGE = 600.0
"""Freshness window, so requests signed up front stay valid."""
_ENV = "ORGANIC_SCORING_BENCH_FLEET"


class BenchPrompt(BaseModel):
    """The request the intake accepts."""

    prompt: str


class _Intake(OrganicScoringBase):
    """Queues each organic request and echoes it; the scoring hooks never run here."""

    async def _on_organic_entry(self, request: BenchPrompt) -> BenchPrompt:
        await self._organic_queue.aadd(request.model_dump())
        return request

    async def _query_miners(self, sample: Any) -> Any:
        return {}

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {}

    async def _set_weights(self, rewards: Any) -> None:
        return None


def app() -> Any:
    """One worker's app (a uvicorn factory; settings from the environment)."""
    from organic_scoring.http import create_app
    from organic_scoring.intake import RedisNonceStore
    from organic_scoring.organic_queue import RedisOrganicQueue

    settings = json.loads(os.environ[_ENV])
    queue = RedisOrganicQueue.from_url(settings["redis"], name=settings["name"], max_size=1_000_000)
    nonces = RedisNonceStore.from_url(
        settings["redis"], retention=MAX_AGE + 60, namespace=settings["name"]
    )
    built = create_app(
        _Intake(organic_queue=queue),
        hotkey_ss58=settings["hotkey"],
        # allowed_skew=0: one host, one clock, nothing to settle after start
        settings=IntakeSettings(max_age=MAX_AGE, max_concurrent=IN_FLIGHT, allowed_skew=0),
        nonce_store=nonces,
        allowed_hotkeys=ANY_HOTKEY,
    )
    # Tell the benchmark this worker is ready: requests signed from now on are fresh
    # for it (each intake refuses requests signed before it started).
    with open(os.path.join(settings["ready"], str(os.getpid())), "w"):
        pass
    return built


def _serve(port: int, workers: int) -> None:
    from organic_scoring.http._server import serve_workers

    serve_workers("benchmarks.bench_fleet_intake:app", "127.0.0.1", port, workers)


@contextlib.contextmanager
def _fleet(url: str, name: str, hotkey: str, workers: int) -> Iterator[int]:
    """Serve the intake with ``workers`` processes; yield its port once it answers."""
    port = _free_port()
    ready = tempfile.mkdtemp(prefix="bench-fleet-ready-")
    settings = {"redis": url, "name": name, "hotkey": hotkey, "ready": ready}
    env = {**os.environ, _ENV: json.dumps(settings)}
    command = [sys.executable, "-m", "benchmarks.bench_fleet_intake", "serve", str(port)]
    process = subprocess.Popen([*command, str(workers)], env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(ready)) < workers or not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the intake workers did not start")
            time.sleep(0.05)
        yield port
    finally:
        shutil.rmtree(ready, ignore_errors=True)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _signed(signer: Any, receiver: str, n: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    """``n`` requests signed now for ``receiver``, each with its own nonce and body."""
    from organic_scoring.http._signing import protocol_named

    protocol = protocol_named(None)
    requests = []
    for i in range(n):
        body = BenchPrompt(prompt=f"{tag} {i}").model_dump_json().encode()
        headers = protocol.sign(signer, target="/organic", body=body, receiver=receiver)
        headers["Content-Type"] = "application/json"
        requests.append((body, headers))
    return requests


async def _send(port: int, requests: list[tuple[bytes, dict[str, str]]]) -> float:
    """Send every request, :data:`IN_FLIGHT` at a time; requests per second."""
    import httpx

    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    pending = iter(requests)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            for body, headers in pending:
                response = await client.post("/organic", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"request failed: {response.status_code} {response.text}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return len(requests) / (time.perf_counter() - start)


def run(quick: bool = False, url: str | None = None) -> list[dict[str, Any]]:
    """Requests per second with 1 and with 2 intake worker processes; one row.

    The row holds ``name``, ``ours_rps`` (2 workers), ``bare_rps`` (1 worker) and
    ``ratio`` (2 over 1, higher is better). ``url`` names the Redis server to use;
    by default a throwaway one is started. No rows without a server.
    """
    from organic_scoring._compat import hotkey_signer
    from organic_scoring.wallet import throwaway_wallet

    n, rounds = (60, 1) if quick else (3000, 3)
    with redis_server() if url is None else contextlib.nullcontext(url) as found:
        if found is None:
            print("bench_fleet_intake: no redis-server on PATH", file=sys.stderr)
            return []
        with tempfile.TemporaryDirectory() as directory:
            validator = throwaway_wallet(directory, "validator")
            caller = throwaway_wallet(directory, "caller")
            receiver = validator.hotkey.ss58_address
            signer = hotkey_signer(caller)
            name = f"bench-fleet-{uuid.uuid4().hex[:8]}"
            rates = {}
            for workers in (1, 2):
                with _fleet(found, name, receiver, workers) as port:
                    asyncio.run(_send(port, _signed(signer, receiver, 2 * IN_FLIGHT, "warm")))
                    rates[workers] = max(
                        asyncio.run(_send(port, _signed(signer, receiver, n, f"{workers}-{r}")))
                        for r in range(rounds)
                    )
            with redis.Redis.from_url(found) as client:
                for pattern in (f"organic-scoring:{{{name}}}:*", f"{name}:nonce:*"):
                    keys = list(client.scan_iter(match=pattern))
                    if keys:
                        client.delete(*keys)
    return [
        {
            "name": "signed requests/s through the HTTP intake, 2 workers vs 1",
            "ours_rps": rates[2],
            "bare_rps": rates[1],
            "ratio": rates[2] / rates[1],
        }
    ]


def main() -> None:
    """Print the benchmark (``serve PORT N`` runs the intake workers for it)."""
    if sys.argv[1:2] == ["serve"]:
        _serve(int(sys.argv[2]), int(sys.argv[3]))
        return
    (row,) = run(quick=False) or [None]
    if row is None:
        return
    print(
        f"1 worker: {row['bare_rps']:,.0f} req/s; 2 workers: {row['ours_rps']:,.0f} req/s; "
        f"ratio {row['ratio']:.2f} (cores here: {os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
