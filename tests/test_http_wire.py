"""The signed-HTTP intake on the wire, for each protocol the installed bittensor has:
what it refuses before reading the body, how long it waits for one, repeated headers,
and a request replayed to a restarted intake. Raw sockets where a client library would
hide what is being tested.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.http import OrganicClient, OrganicServer, create_app, serve_in_thread
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import Job, parity_scorer
from support.waiting import WAIT

pytestmark = [
    pytest.mark.bittensor,
    pytest.mark.python_version,
    pytest.mark.usefixtures("no_leaks"),
]

PROTOCOLS = ["btauth/1", "epistula"] if HAS_HTTP_AUTH else ["epistula"]
LIMIT = 512 * 1024


@contextmanager
def served(w: Wallets, protocol: str, **options: Any) -> Iterator[tuple[Any, OrganicServer]]:
    scorer = parity_scorer(Job, allowed_hotkeys=options.pop("allowed_hotkeys", None))
    app = create_app(scorer, hotkey_ss58=w.validator_hotkey, protocol=protocol, **options)
    with serve_in_thread(app) as server:
        yield scorer, server


def signed_headers(
    w: Wallets, protocol: str, url: str, body: bytes, signer: Any = None
) -> dict[str, str]:
    client = OrganicClient(signer or w.client, url, w.validator_hotkey, protocol=protocol)
    headers = client.signed(body)
    asyncio.run(client.aclose())
    return headers


def raw_request(
    port: int, headers: dict[str, str], body_start: bytes, length: int
) -> socket.socket:
    """Open a connection and send a POST's headers (declaring ``length``) and the first
    bytes of its body; the rest is never sent."""
    lines = ["POST /organic HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body_start)
    return sock


def status_of(sock: socket.socket) -> int:
    """The status line of the answer (read with the socket's timeout)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unsigned_request_declaring_a_large_body_is_answered_before_any_of_it(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    with served(wallets, protocol, max_body_bytes=LIMIT) as (scorer, server):
        sock = raw_request(server.port, {"Content-Type": "application/json"}, b"", 10 * LIMIT)
        with sock:
            assert status_of(sock) == 401  # not one byte of the body was sent
        assert scorer.handled == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_outsider_or_an_oversized_declaration_is_refused_before_the_body(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    with served(
        wallets, protocol, max_body_bytes=LIMIT, allowed_hotkeys=[wallets.client_hotkey]
    ) as (scorer, server):
        url = server.url + "/organic"
        body = Job(text="x" * 100).model_dump_json().encode()
        outsider = signed_headers(wallets, protocol, url, body, signer=wallets.other)
        with raw_request(server.port, outsider, b"", len(body)) as sock:
            assert status_of(sock) == 403
        allowed = signed_headers(wallets, protocol, url, body)
        with raw_request(server.port, allowed, b"", 10 * LIMIT) as sock:
            assert status_of(sock) == 413
        assert scorer.handled == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_body_that_trickles_in_gets_408_and_its_memory_back(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    clients, sent = 20, 64 * 1024
    with served(wallets, protocol, max_body_bytes=LIMIT, body_timeout=0.5) as (scorer, server):
        url = server.url + "/organic"
        headers = signed_headers(wallets, protocol, url, b"{}")  # claims that pass screening
        gc.collect()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            sockets = [
                raw_request(server.port, headers, b"x" * sent, LIMIT) for _ in range(clients)
            ]
            time.sleep(0.2)  # well inside body_timeout: the server holds what arrived
            holding = tracemalloc.get_traced_memory()[0] - baseline
            statuses = []
            for sock in sockets:
                with sock:
                    statuses.append(status_of(sock))
            gc.collect()
            left = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
    assert statuses == [408] * clients
    assert holding > clients * sent / 2  # the bodies were held while they trickled...
    assert left < holding / 4  # ...and let go with the 408s
    assert scorer.handled == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_repeated_authentication_header_is_refused_not_last_one_wins(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    with served(wallets, protocol) as (scorer, server):
        url = server.url + "/organic"
        body = Job(text="twice").model_dump_json().encode()
        headers = signed_headers(wallets, protocol, url, body)
        name = "X-Bittensor-Hotkey" if protocol == "btauth/1" else "Epistula-Signed-By"
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw.insert(0, (name.encode(), wallets.other_hotkey.encode()))  # a proxy reads this one

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(timeout=WAIT) as client:
                return await client.post(url, content=body, headers=raw)

        response = asyncio.run(send())
    assert response.status_code == 400
    assert "repeated" in response.json()["error"]
    assert scorer.handled == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_request_replayed_to_a_restarted_intake_is_refused(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    body = Job(text="captured").model_dump_json().encode()

    async def post(url: str, headers: dict[str, str]) -> int:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            return (await client.post(url, content=body, headers=headers)).status_code

    with served(wallets, protocol) as (first, server):
        url = server.url + "/organic"
        headers = signed_headers(wallets, protocol, url, body)
        assert asyncio.run(post(url, headers)) == 200
    time.sleep(0.01)
    # The validator restarts: a new intake on the same port, with an empty nonce store.
    scorer = parity_scorer(Job)
    app = create_app(scorer, hotkey_ss58=wallets.validator_hotkey, protocol=protocol)
    with OrganicServer(app, port=server.port).start():
        assert asyncio.run(post(url, headers)) == 401  # well inside max_age
    assert first.handled == ["captured"]
    assert scorer.handled == []
