"""Signed organic requests per second: the library's intake against a bare Starlette endpoint,
for each signed-HTTP protocol the installed bittensor has (Epistula on every major,
btauth/1 on 11); and what an outsider's refusal costs against a valid request.

Throughput (:func:`run`). Both sides do the same essential work for each request: read
the body, check its signature and freshness and remember its nonce (btauth/1: with
``bt.http_auth.verify`` and its in-memory nonce store; Epistula: the spec's sha256 and
sr25519 check, the freshness window, a set of UUIDs seen), parse it into the same
pydantic model, add it to an ``OrganicQueue`` and answer with the model as JSON.

* **ours** is :func:`organic_scoring.http.create_app` around a scorer whose
  ``_on_organic_entry`` queues the request and returns it: with the cheap header
  checks before the body, the bounded body read, the intake gate (allow-list,
  freshness with a start-time watermark, nonce store, hook pipeline, admission,
  accounting) and the caller context;
* **bare** is one Starlette route whose endpoint does the steps above and nothing else.

Requests are signed before the clock starts (signing is the caller's cost), each
with its own nonce. Two transports: in-process through ``httpx.ASGITransport``
(the app's own cost stands out) and a real uvicorn server on 127.0.0.1 (what a
caller sees; the goal is a ratio of at least 0.95 there); each one request at a
time and with several in flight. Ours and bare alternate in many short rounds and
each keeps its best; time is the process's CPU time (see :data:`CLOCK`). ``ratio``
is ``ours_rps / bare_rps``: 1.0 means the intake costs nothing measurable, below 1
means slower.

Refusals (:func:`run_refusals`). The intake's allow-list refuses a validly signed
request from a hotkey outside ``allowed_hotkeys`` from its headers alone, before the
body is read or the signature checked. Measured in-process by calling the ASGI app
directly (no HTTP client in the way), one request at a time: **ours** is the
outsider's refusal (403), **bare** a valid request (200) through the same app, both
in nanoseconds a request; ``ratio`` is their quotient (the goal: at most 0.3).

Run ``python -m benchmarks.bench_http`` (or ``python -m benchmarks bench_http``) for
the tables.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from organic_scoring import ANY_HOTKEY, OrganicScoringBase
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.intake import IntakeSettings
from organic_scoring.organic_queue import OrganicQueue
from organic_scoring.wallet import throwaway_wallet as make_wallet

TABLES = ("run", "run_refusals")
"""The functions ``python -m benchmarks`` runs here, each printing its own table."""

WORKERS = 8
"""Requests in flight at once in the concurrent loads."""

QUEUE_SIZE = 1_000_000

MAX_AGE = 600.0
"""Freshness window for both sides, so requests signed up front stay valid."""

Signed = list[tuple[bytes, dict[str, str]]]

CLOCK = time.process_time
"""What the rounds are timed with: this process's CPU time, client and server threads
together. The work is CPU-bound on loopback, so on an idle machine this is the wall
clock; on a shared one it leaves out the time other processes hold the cores."""


def protocols() -> list[str]:
    """The signed-HTTP protocols the installed bittensor can serve."""
    return ["epistula", "btauth/1"] if HAS_HTTP_AUTH else ["epistula"]


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


# -- the bare endpoints -------------------------------------------------------------------


def _btauth_check(validator_hotkey: str) -> Callable[[Any, bytes, str], str | None]:
    """btauth/1's verify as bittensor ships it; the refusal, or None."""
    import bittensor as bt

    auth = bt.http_auth
    store = auth.InMemoryNonceStore(retention=MAX_AGE + 10)

    def check(headers: Any, body: bytes, target: str) -> str | None:
        try:
            auth.verify(
                headers,
                body,
                method="POST",
                path=target,
                self_hotkey_ss58=validator_hotkey,
                max_age=MAX_AGE,
                nonce_store=store,
            )
        except auth.AuthError as exc:
            return str(exc)
        return None

    return check


def _sr25519_verify() -> Callable[[bytes, bytes, str], bool]:
    """bittensor's own sr25519 check: ``sp_core`` on 11, a public ``Keypair`` on 9/10."""
    import bittensor as bt

    if HAS_HTTP_AUTH:
        core = bt.sp_core

        def verify_11(message: bytes, signature: bytes, hotkey: str) -> bool:
            return bool(core.verify(message, signature, hotkey, core.CRYPTO_SR25519))

        return verify_11
    keys: dict[str, Any] = {}

    def verify(message: bytes, signature: bytes, hotkey: str) -> bool:
        key = keys.get(hotkey)
        if key is None:
            key = keys[hotkey] = bt.Keypair(ss58_address=hotkey)
        return bool(key.verify(message, signature))

    return verify


def _epistula_check(validator_hotkey: str) -> Callable[[Any, bytes, str], str | None]:
    """Epistula v2's check, straight from the spec, with a bounded set of UUIDs seen."""
    verify = _sr25519_verify()
    seen: set[tuple[str, str]] = set()
    expiry: deque[tuple[float, tuple[str, str]]] = deque()
    lock = threading.Lock()

    def check(headers: Any, body: bytes, target: str) -> str | None:
        try:
            hotkey = headers["epistula-signed-by"]
            request_id = headers["epistula-uuid"]
            stamp = headers["epistula-timestamp"]
            signature = bytes.fromhex(headers["epistula-request-signature"][2:])
            if headers["epistula-signed-for"] != validator_hotkey:
                return "wrong receiver"
            if abs(time.time() * 1000 - int(stamp)) > MAX_AGE * 1000:
                return "stale"
            message = f"{hashlib.sha256(body).hexdigest()}.{request_id}.{stamp}.{validator_hotkey}"
            if not verify(message.encode(), signature, hotkey):
                return "bad signature"
        except (KeyError, ValueError):
            return "malformed"
        key, now = (hotkey, request_id), time.monotonic()
        with lock:
            while expiry and expiry[0][0] <= now:
                seen.discard(expiry.popleft()[1])
            if key in seen:
                return "replay"
            seen.add(key)
            expiry.append((now + MAX_AGE + 10, key))
        return None

    return check


def _bare_app(protocol: str, validator_hotkey: str, queue: OrganicQueue) -> Any:
    """The least Starlette app that verifies, parses, queues and answers."""
    from pydantic import ValidationError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    check = (_btauth_check if protocol == "btauth/1" else _epistula_check)(validator_hotkey)

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        query = request.url.query
        target = request.url.path + (f"?{query}" if query else "")
        refusal = check(request.headers, body, target)
        if refusal is not None:
            return JSONResponse({"error": refusal}, status_code=401)
        try:
            entry = BenchPrompt.model_validate_json(body)
        except ValidationError:
            return JSONResponse({"error": "invalid body"}, status_code=422)
        queue.add(entry)
        return Response(entry.model_dump_json(), media_type="application/json")

    return Starlette(routes=[Route("/organic", endpoint, methods=["POST"])])


# -- requests ---------------------------------------------------------------------------


def _signer(wallet: Any, receiver: str, protocol: str) -> Callable[[int, str], Signed]:
    """``sign(n, tag)``: ``n`` requests signed now, each with its own nonce and body."""
    from organic_scoring.http import OrganicAuth

    auth = OrganicAuth(wallet, receiver, protocol)

    def sign(n: int, tag: str) -> Signed:
        requests = []
        for i in range(n):
            body = BenchPrompt(prompt=f"{tag} {i}").model_dump_json().encode()
            headers = auth.protocol.sign(
                auth.signer, target="/organic", body=body, receiver=receiver
            )
            headers["Content-Type"] = "application/json"
            requests.append((body, headers))
        return requests

    return sign


async def _send(client: Any, requests: Signed, workers: int) -> float:
    """Send every request, ``workers`` at a time; requests per second."""
    pending = iter(requests)

    async def worker() -> None:
        for body, headers in pending:
            response = await client.post("/organic", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"request failed: {response.status_code} {response.text}")

    start = CLOCK()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return len(requests) / (CLOCK() - start)


async def _measure(
    urls: tuple[str, str],
    transports: tuple[Any, Any],
    sign_batch: Callable[[int], Signed],
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
    """Requests per second through each protocol, transport and load; one row each.

    Each row holds ``name``, ``ours_rps`` and ``bare_rps`` (requests per second, best
    round) and ``ratio`` (ours / bare). ``quick`` sends a few dozen requests, for
    smoke tests.
    """
    import httpx

    from organic_scoring.http import create_app

    n, rounds = (40, 1) if quick else (500, 8)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        validator, caller = make_wallet(directory, "validator"), make_wallet(directory, "caller")
        receiver = validator.hotkey.ss58_address
        for protocol in protocols():
            # Queues large enough never to drop (and warn) during a run.
            ours_app = create_app(
                _Intake(organic_queue=OrganicQueue(max_size=QUEUE_SIZE)),
                hotkey_ss58=receiver,
                protocol=protocol,
                # allowed_skew=0: one host, one clock, nothing to settle after start
                settings=IntakeSettings(max_age=MAX_AGE, allowed_skew=0),
                allowed_hotkeys=ANY_HOTKEY,
            )
            bare_app = _bare_app(protocol, receiver, OrganicQueue(max_size=QUEUE_SIZE))
            sign = _signer(caller, receiver, protocol)
            batches = iter(range(1 << 30))

            def sign_batch(count: int, sign: Any = sign, batches: Any = batches) -> Signed:
                return sign(count, f"batch {next(batches)}")

            loads = (("sequential", 1), (f"concurrent x{WORKERS}", WORKERS))
            in_process = (httpx.ASGITransport(app=ours_app), httpx.ASGITransport(app=bare_app))
            urls = ("http://ours", "http://bare")
            for name, workers in loads:
                ours, bare = asyncio.run(_measure(urls, in_process, sign_batch, workers, n, rounds))
                rows.append(_row(f"{protocol}, in-process, {name}", ours, bare))
            with _servers(ours_app, bare_app) as served:
                for name, workers in loads:
                    ours, bare = asyncio.run(
                        _measure(served, (None, None), sign_batch, workers, n // 2, rounds)
                    )
                    rows.append(_row(f"{protocol}, uvicorn, {name}", ours, bare))
    return rows


def _row(name: str, ours: float, bare: float) -> dict[str, Any]:
    return {"name": name, "ours_rps": ours, "bare_rps": bare, "ratio": ours / bare}


# -- what an outsider's refusal costs ----------------------------------------------------


def _scope(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw += [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": "/organic",
        "raw_path": b"/organic",
        "query_string": b"",
        "headers": raw,
    }


async def _call_each(app: Any, requests: Signed, status: int) -> float:
    """Call the ASGI app once per request, in turn; nanoseconds a request."""
    sent: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    calls = []
    for body, headers in requests:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive(messages: list[dict[str, Any]] = messages) -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        calls.append((_scope(body, headers), receive))
    start = CLOCK()
    for scope, receive in calls:
        await app(scope, receive, send)
    elapsed = (CLOCK() - start) * 1e9
    if set(sent) != {status} or len(sent) != len(requests):
        raise RuntimeError(f"expected only {status}, got {sorted(set(sent))}")
    return elapsed / len(requests)


def run_refusals(quick: bool = False) -> list[dict[str, Any]]:
    """An outsider's refusal (403) against a valid request (200), per protocol.

    Each row holds ``name``, ``ours_ns`` (the refusal) and ``bare_ns`` (a valid
    request) in nanoseconds a request, best round, and ``ratio`` (ours / bare).
    """
    from organic_scoring.http import create_app

    n, rounds = (40, 1) if quick else (1000, 8)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        validator = make_wallet(directory, "validator")
        member, outsider = make_wallet(directory, "member"), make_wallet(directory, "outsider")
        receiver = validator.hotkey.ss58_address
        for protocol in protocols():
            scorer = _Intake(
                organic_queue=OrganicQueue(max_size=QUEUE_SIZE),
                allowed_hotkeys=[member.hotkey.ss58_address],
            )
            app = create_app(
                scorer,
                hotkey_ss58=receiver,
                protocol=protocol,
                # allowed_skew=0: one host, one clock, nothing to settle after start
                settings=IntakeSettings(max_age=MAX_AGE, allowed_skew=0),
            )
            store = app.state.organic_intake.nonce_store
            valid = _signer(member, receiver, protocol)
            refused = _signer(outsider, receiver, protocol)

            async def measure(
                app: Any = app, valid: Any = valid, refused: Any = refused
            ) -> tuple[float, float]:
                await _call_each(app, valid(WORKERS, "warm"), 200)
                await _call_each(app, refused(WORKERS, "warm"), 403)
                best = [float("inf"), float("inf")]
                for round_ in range(rounds):
                    best[0] = min(best[0], await _call_each(app, refused(n, f"{round_}"), 403))
                    best[1] = min(best[1], await _call_each(app, valid(n, f"{round_}"), 200))
                return best[0], best[1]

            stored = len(store)
            ours, bare = asyncio.run(measure())
            if len(store) - stored != WORKERS + rounds * n:
                raise RuntimeError("an outsider's request left a nonce in the store")
            rows.append(
                {
                    "name": f"{protocol}: outsider refused (403) / valid request (200)",
                    "ours_ns": ours,
                    "bare_ns": bare,
                    "ratio": ours / bare,
                }
            )
    return rows


def main() -> None:
    """Print the benchmark as two tables."""
    from benchmarks import print_table

    print_table("bench_http: requests per second, ours vs a bare endpoint", run(quick=False))
    print_table(
        "bench_http: an outsider's refusal vs a valid request, ns each", run_refusals(quick=False)
    )


if __name__ == "__main__":
    main()
