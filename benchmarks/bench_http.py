"""Signed organic requests per second: the library's intake against a bare Starlette endpoint.

Both sides do the same essential work for each request: read the body,
``bt.http_auth.verify`` it (same hotkey, window and kind of nonce store), parse it
into the same pydantic model, add it to an ``OrganicQueue`` and answer with the
model as JSON.

* **ours** is :func:`organic_scoring.http.create_app` around a scorer whose
  ``_on_organic_entry`` queues the request and returns it: with the streamed size
  limit, the hook pipeline, the caller context and the admission gate;
* **bare** is one Starlette route whose endpoint does the steps above and nothing else.

Requests are signed before the clock starts (signing is the caller's cost), each
with its own nonce. Two transports: in-process through ``httpx.ASGITransport``
(the app's own cost stands out) and a real uvicorn server on 127.0.0.1 (what a
caller sees); each one request at a time and with several in flight. Ours and
bare alternate round by round and each keeps its best round. ``ratio`` is
``ours_rps / bare_rps``: 1.0 means the intake costs nothing measurable, below 1
means slower.

Run ``python -m benchmarks.bench_http`` for the table. On bittensor 9 and 10,
which have no ``bt.http_auth``, :func:`run` returns no rows.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from organic_scoring import OrganicScoringBase
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.organic_queue import OrganicQueue
from organic_scoring.wallet import throwaway_wallet as make_wallet

WORKERS = 8
"""Requests in flight at once in the concurrent loads."""

QUEUE_SIZE = 1_000_000

MAX_AGE = 600.0
"""Freshness window for both sides, so requests signed up front stay valid."""


class BenchPrompt(BaseModel):
    """The request both endpoints accept."""

    prompt: str


class _Intake(OrganicScoringBase):
    """Queues each organic request and echoes it; the scoring hooks never run here."""

    async def _on_organic_entry(self, synapse: BenchPrompt) -> BenchPrompt:
        self._organic_queue.add(synapse)
        return synapse

    async def _query_miners(self, sample: Any) -> Any:
        return {}

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {}

    async def _set_weights(self, rewards: Any) -> None:
        return None


def _bare_app(validator_hotkey: str, queue: OrganicQueue) -> Any:
    """The least Starlette app that verifies, parses, queues and answers."""
    import bittensor as bt
    from pydantic import ValidationError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    auth = bt.http_auth
    store = auth.InMemoryNonceStore(retention=MAX_AGE + 10)

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        query = request.url.query
        target = request.url.path + (f"?{query}" if query else "")
        try:
            auth.verify(
                request.headers,
                body,
                method=request.method,
                path=target,
                self_hotkey_ss58=validator_hotkey,
                max_age=MAX_AGE,
                nonce_store=store,
            )
        except auth.AuthError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        try:
            entry = BenchPrompt.model_validate_json(body)
        except ValidationError:
            return JSONResponse({"error": "invalid body"}, status_code=422)
        queue.add(entry)
        return Response(entry.model_dump_json(), media_type="application/json")

    return Starlette(routes=[Route("/organic", endpoint, methods=["POST"])])


def _signed(signer: Any, receiver: str, n: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    """``n`` requests signed now, each with its own nonce and body."""
    import bittensor as bt

    requests = []
    for i in range(n):
        body = BenchPrompt(prompt=f"{tag} {i}").model_dump_json().encode()
        headers = bt.http_auth.sign(
            signer, method="POST", path="/organic", body=body, receiver_ss58=receiver
        )
        headers["Content-Type"] = "application/json"
        requests.append((body, headers))
    return requests


async def _send(client: Any, requests: list[tuple[bytes, dict[str, str]]], workers: int) -> float:
    """Send every request, ``workers`` at a time; requests per second."""
    pending = iter(requests)

    async def worker() -> None:
        for body, headers in pending:
            response = await client.post("/organic", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"request failed: {response.status_code} {response.text}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return len(requests) / (time.perf_counter() - start)


async def _measure(
    urls: tuple[str, str],
    transports: tuple[Any, Any],
    sign_batch: Any,
    workers: int,
    n: int,
    rounds: int,
) -> tuple[float, float]:
    """Best requests/second of ours and of bare over alternating rounds."""
    import httpx

    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    clients = [
        httpx.AsyncClient(base_url=url, transport=transport, limits=limits, timeout=60)
        for url, transport in zip(urls, transports, strict=True)
    ]
    try:
        for client in clients:  # warm both paths (and their connections)
            await _send(client, sign_batch(workers), workers)
        best = [0.0, 0.0]
        for _ in range(rounds):
            for side, client in enumerate(clients):
                best[side] = max(best[side], await _send(client, sign_batch(n), workers))
        return best[0], best[1]
    finally:
        for client in clients:
            await client.aclose()


@contextmanager
def _servers(ours: Any, bare: Any) -> Iterator[tuple[str, str]]:
    from organic_scoring.http import serve_in_thread

    with serve_in_thread(ours) as ours_server, serve_in_thread(bare) as bare_server:
        yield ours_server.url, bare_server.url


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure each transport and load; one row each, or none without ``bt.http_auth``.

    Each row holds ``name``, ``ours_rps`` and ``bare_rps`` (requests per second, best
    round) and ``ratio`` (ours / bare). ``quick`` sends a few dozen requests, for
    smoke tests.
    """
    if not HAS_HTTP_AUTH:
        return []
    import bittensor as bt
    import httpx

    from organic_scoring.http import create_app

    n, rounds = (40, 1) if quick else (2000, 3)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        validator, caller = make_wallet(directory, "validator"), make_wallet(directory, "caller")
        receiver = validator.hotkey.ss58_address
        signer = bt.resolve_signer(caller, role="hotkey")
        # Queues large enough never to drop (and warn) during a run.
        ours_app = create_app(
            _Intake(organic_queue=OrganicQueue(max_size=QUEUE_SIZE)),
            hotkey_ss58=receiver,
            max_age=MAX_AGE,
        )
        bare_app = _bare_app(receiver, OrganicQueue(max_size=QUEUE_SIZE))
        batches = iter(range(1 << 30))

        def sign_batch(count: int) -> list[tuple[bytes, dict[str, str]]]:
            return _signed(signer, receiver, count, f"batch {next(batches)}")

        loads = (("sequential", 1), (f"concurrent x{WORKERS}", WORKERS))
        in_process = (httpx.ASGITransport(app=ours_app), httpx.ASGITransport(app=bare_app))
        urls = ("http://ours", "http://bare")
        for name, workers in loads:
            ours, bare = asyncio.run(_measure(urls, in_process, sign_batch, workers, n, rounds))
            rows.append(_row(f"in-process, {name}", ours, bare))
        with _servers(ours_app, bare_app) as served:
            for name, workers in loads:
                ours, bare = asyncio.run(
                    _measure(served, (None, None), sign_batch, workers, n // 2, rounds)
                )
                rows.append(_row(f"uvicorn, {name}", ours, bare))
    return rows


def _row(name: str, ours: float, bare: float) -> dict[str, Any]:
    return {"name": name, "ours_rps": ours, "bare_rps": bare, "ratio": ours / bare}


def main() -> None:
    """Print the benchmark as a table."""
    rows = run(quick=False)
    if not rows:
        print(
            "bench_http: this bittensor has no bt.http_auth; nothing to measure (see bench_axon)."
        )
        return
    print(f"{'load':<28}{'ours (req/s)':>14}{'bare (req/s)':>14}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<28}{row['ours_rps']:>14.0f}{row['bare_rps']:>14.0f}{row['ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
