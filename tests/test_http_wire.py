"""The signed-HTTP intake on the wire, for each protocol the installed bittensor has:
what it refuses before reading the body, how long it waits for one, repeated headers,
and a request replayed to a restarted intake. Raw sockets where a client library would
hide what is being tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.http import OrganicClient, OrganicServer, create_app, serve_in_thread
from organic_scoring.intake import IntakeSettings
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
    options.setdefault("allowed_hotkeys", ANY_HOTKEY)
    limits = {k: options.pop(k) for k in list(options) if k in IntakeSettings.model_fields}
    limits.setdefault("allowed_skew", 0)  # one host, one clock: nothing to settle
    options["settings"] = IntakeSettings(**limits)
    scorer = parity_scorer(Job)
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
    port: int, headers: dict[str, str], body_start: bytes, length: int, source: str = "127.0.0.1"
) -> socket.socket:
    """Open a connection from ``source`` (any address of the loopback network) and send
    a POST's headers (declaring ``length``) and the first bytes of its body; the rest is
    never sent."""
    lines = ["POST /organic HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT, source_address=(source, 0))
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
    room = {
        "max_unverified_bytes": clients * LIMIT,
        "max_unverified_bytes_per_hotkey": clients * LIMIT,
    }
    with served(wallets, protocol, max_body_bytes=LIMIT, body_timeout=0.5, **room) as (
        scorer,
        server,
    ):
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
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol=protocol,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    with OrganicServer(app, port=server.port).start():
        assert asyncio.run(post(url, headers)) == 401  # well inside max_age
    assert first.handled == ["captured"]
    assert scorer.handled == []


# -- identity and replay through any spelling or timing (issue: intake, round 2) ----------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_captured_request_replayed_under_other_spellings_of_its_key_is_refused(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    """The signature covers the key, not how its address is written: the same request
    under another SS58 prefix is a replay (and the allow-list keys on the key)."""
    from support.identity import ss58

    key = bytes(wallets.client.hotkey.public_key)
    header = "X-Bittensor-Hotkey" if protocol == "btauth/1" else "Epistula-Signed-By"
    allowed = [ss58(key, 0)]  # the operator wrote it with another prefix: same key
    with served(wallets, protocol, allowed_hotkeys=allowed) as (scorer, server):
        url = server.url + "/organic"
        body = Job(text="once").model_dump_json().encode()
        headers = signed_headers(wallets, protocol, url, body)

        async def post(spelling: str) -> httpx.Response:
            respelled = {k: (spelling if k == header else v) for k, v in headers.items()}
            async with httpx.AsyncClient(timeout=WAIT) as client:
                return await client.post(url, content=body, headers=respelled)

        assert asyncio.run(post(wallets.client_hotkey)).status_code == 200
        for prefix in (0, 2, 7, 63, 64, 255, 1000):
            response = asyncio.run(post(ss58(key, prefix)))
            assert response.status_code == 400, (prefix, response.text)
            assert wallets.client_hotkey in response.json()["error"]
    assert scorer.handled == ["once"]


def test_an_epistula_uuid_has_one_spelling() -> None:
    from organic_scoring.http._epistula import Epistula

    canonical = "6f1c1c5e-4a3b-4c2d-9e8f-0a1b2c3d4e5f"
    spellings = [canonical, canonical.upper(), "{" + canonical + "}", canonical.replace("-", "")]
    base = {
        "epistula-version": "2",
        "epistula-signed-by": "5F",
        "epistula-request-signature": "0x00",
        "epistula-timestamp": "1",
        "epistula-signed-for": "me",
    }
    nonces = {
        Epistula().claim({**base, "epistula-uuid": spelling}, "me").nonce for spelling in spellings
    }
    assert nonces == {canonical}


def test_a_replay_whose_body_trickles_past_max_age_is_refused(
    wallets: Wallets,  # noqa: F811
) -> None:
    """Headers fresh on arrival, body sent slowly until the first copy's nonce expired
    from a store that keeps nonces exactly max_age + allowed_skew: stale by the time it
    could be remembered, so refused."""
    from organic_scoring.intake import InMemoryNonceStore

    max_age, skew = 1.0, 0.2
    store = InMemoryNonceStore(retention=max_age + skew)
    options = {"max_age": max_age, "allowed_skew": skew, "body_timeout": 5.0}
    with served(wallets, "epistula", nonce_store=store, **options) as (scorer, server):
        url = server.url + "/organic"
        time.sleep(skew)  # past the start watermark of an in-memory store
        body = Job(text="trickled").model_dump_json().encode()
        headers = signed_headers(wallets, "epistula", url, body)
        signed_at = time.monotonic()
        first = httpx.post(url, content=body, headers=headers, timeout=WAIT)
        assert first.status_code == 200
        time.sleep(max(0.0, signed_at + 0.8 - time.monotonic()))  # still fresh: headers pass
        with raw_request(server.port, headers, body[:1], len(body)) as sock:
            time.sleep(max(0.0, signed_at + max_age + skew + 0.3 - time.monotonic()))
            sock.sendall(body[1:])  # the first nonce has been forgotten by now
            assert status_of(sock) == 401
    assert scorer.handled == ["trickled"]


def test_a_request_signed_ahead_and_replayed_after_a_restart_is_not_accepted_twice(
    wallets: Wallets,  # noqa: F811
) -> None:
    """Signed 1.5 s ahead of the server's clock (allowed_skew 2 s), accepted, then the
    validator restarts with an empty in-memory nonce store: the copy is signed after
    the new start, so only the settling window keeps it from being accepted again."""
    from organic_scoring._compat import hotkey_signer
    from organic_scoring.http._epistula import message

    signer = hotkey_signer(wallets.client)
    body = Job(text="ahead").model_dump_json().encode()
    skew = 2.0
    with served(wallets, "epistula", allowed_skew=skew) as (first, server):
        first_start = time.time()
        url = server.url + "/organic"
        signed_ms = int((first_start + skew + 0.1) * 1000)  # past the first settling window
        time.sleep(max(0.0, signed_ms / 1000 - 1.5 - time.time()))  # 1.5 s ahead on arrival
        request_id = "6f1c1c5e-4a3b-4c2d-9e8f-0a1b2c3d4e5f"
        signature = signer.sign(message(body, request_id, signed_ms, wallets.validator_hotkey))
        headers = {
            "Epistula-Version": "2",
            "Epistula-Timestamp": str(signed_ms),
            "Epistula-Uuid": request_id,
            "Epistula-Signed-By": wallets.client_hotkey,
            "Epistula-Signed-For": wallets.validator_hotkey,
            "Epistula-Request-Signature": "0x" + bytes(signature).hex(),
            "Content-Type": "application/json",
        }
        assert httpx.post(url, content=body, headers=headers, timeout=WAIT).status_code == 200
    scorer = parity_scorer(Job)
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol="epistula",
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=skew),
    )
    with OrganicServer(app, port=server.port).start():
        replayed = httpx.post(url, content=body, headers=headers, timeout=WAIT)
        assert time.time() < signed_ms / 1000  # the copy still came from "the future"
    assert replayed.status_code == 503
    assert replayed.headers["retry-after"] in {"1", "2"}
    assert first.handled == ["ahead"]
    assert scorer.handled == []


# -- headers: bounded in size and time, whatever parser is installed ----------------------


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Whether the server closes ``sock`` within ``seconds`` while we send ``trickle``
    one byte every 50 ms (nothing if empty)."""
    sock.settimeout(0.05)
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            data = None
        except ConnectionError:
            return True
        if data == b"":
            return True
        if trickle and sent < len(trickle):
            try:
                sock.sendall(trickle[sent : sent + 1])
            except OSError:
                return True
            sent += 1
    return False


def test_headers_that_trickle_in_or_never_come_are_cut_off(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = parity_scorer(Job)
    app = create_app(scorer, hotkey_ss58=wallets.validator_hotkey, allowed_hotkeys=ANY_HOTKEY)
    with serve_in_thread(app, settings=IntakeSettings(header_timeout=0.5)) as server:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        with idle, slow:
            slow.sendall(b"POST /organic HTTP/1.1\r\nHost: x\r\n")
            assert _closed_within(idle, WAIT)  # said nothing at all
            assert _closed_within(slow, WAIT, trickle=b"X-Pad: " + b"a" * 10_000)
    assert scorer.handled == []


def test_headers_over_the_limit_are_refused(wallets: Wallets) -> None:  # noqa: F811
    scorer = parity_scorer(Job)
    app = create_app(scorer, hotkey_ss58=wallets.validator_hotkey, allowed_hotkeys=ANY_HOTKEY)
    with serve_in_thread(app, settings=IntakeSettings(max_header_bytes=4096)) as server:
        # 8 KiB of headers, not yet finished: more than may be held unparsed.
        start = b"POST /organic HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 8192 + b"\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            sock.sendall(start)
            assert status_of(sock) == 400
        with raw_request(server.port, {"X-Pad": "a" * 100}, b"", 2) as sock:
            sock.sendall(b"{}")
            assert status_of(sock) == 401  # a small one is read, then refused unsigned
    assert scorer.handled == []


# -- bodies read before the signature is checked share a bounded budget -------------------


def _forged_claims(w: Wallets, protocol: str, url: str, claimed: str) -> dict[str, str]:
    """Headers that claim ``claimed`` signed the request, with someone else's signature."""
    headers = signed_headers(w, protocol, url, b"{}", signer=w.other)
    name = "X-Bittensor-Hotkey" if protocol == "btauth/1" else "Epistula-Signed-By"
    return {**headers, name: claimed}


def _budget(bodies: int) -> dict[str, Any]:
    """Limits for the budget tests: bodies of up to ``LIMIT`` bytes, 3 s to arrive; a
    hotkey's share is two such bodies, the whole budget ``bodies`` of them."""
    return {
        "max_body_bytes": LIMIT,
        "body_timeout": 3.0,
        "max_unverified_bytes": bodies * LIMIT,
        "max_unverified_bytes_per_hotkey": 2 * LIMIT,
    }


def _post_mine(
    w: Wallets, protocol: str, url: str, extra: dict[str, str] | None = None
) -> httpx.Response:
    """The genuine client's signed request for the job ``"mine"``."""
    body = Job(text="mine").model_dump_json().encode()
    headers = {**signed_headers(w, protocol, url, body), **(extra or {})}
    return httpx.post(url, content=body, headers=headers, timeout=WAIT)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unverified_bodies_cannot_hold_more_than_their_budget(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    from support.identity import hotkey

    with served(wallets, protocol, **_budget(4)) as (scorer, server):
        url = server.url + "/organic"
        one = _forged_claims(wallets, protocol, url, hotkey("one"))
        held = [raw_request(server.port, one, b"x" * 1024, LIMIT) for _ in range(2)]
        time.sleep(0.3)  # both are being read
        with raw_request(server.port, one, b"x" * 1024, LIMIT) as third:
            assert status_of(third) == 429  # the claimed hotkey's share is full
        # One address holds at most all of the budget but one hotkey's share: the
        # others come from elsewhere.
        others = [
            raw_request(
                server.port,
                _forged_claims(wallets, protocol, url, hotkey(name)),
                b"",
                LIMIT,
                source=source,
            )
            for name, source in (("two", "127.0.0.2"), ("three", "127.0.0.3"))
        ]
        time.sleep(0.3)
        claims = _forged_claims(wallets, protocol, url, hotkey("four"))
        with raw_request(server.port, claims, b"", LIMIT, source="127.0.0.4") as over:
            assert status_of(over) == 503  # the whole budget is full
        for sock in held + others:
            with sock:
                assert status_of(sock) == 408  # the held ones were read, then timed out
        with raw_request(server.port, claims, b"", 2) as after:
            after.sendall(b"{}")
            assert status_of(after) == 401  # room again: read, then the forgery refused
    assert scorer.handled == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forged_claims_from_one_address_leave_the_claimed_caller_its_share(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    # An allowed hotkey is public: anyone can claim it and send slow bodies. Each
    # address gets its own share of the hotkey's unverified bytes, so the genuine caller,
    # elsewhere, is not refused while the forger's bodies wait for their timeout.
    with served(wallets, protocol, **_budget(8)) as (scorer, server):
        url = server.url + "/organic"
        forged = _forged_claims(wallets, protocol, url, wallets.client_hotkey)
        with contextlib.ExitStack() as stack:

            def forge() -> socket.socket:
                sent = raw_request(server.port, forged, b"x" * 1024, LIMIT, source="127.0.0.2")
                return stack.enter_context(sent)

            held = [forge(), forge()]
            time.sleep(0.3)  # both are being read
            assert status_of(forge()) == 429  # the forger's own share is full
            answer = _post_mine(wallets, protocol, url)
            assert answer.status_code == 200, answer.text
            assert [status_of(sock) for sock in held] == [408, 408]
    assert scorer.handled == ["mine"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_address_claiming_many_hotkeys_leaves_callers_elsewhere_room(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    # Any hotkey may be claimed (ANY_HOTKEY, or a public list of several): one address
    # claiming a few of them must not fill the whole budget and get everyone else 503.
    from support.identity import hotkey

    with served(wallets, protocol, **_budget(4)) as (scorer, server):
        url = server.url + "/organic"
        with contextlib.ExitStack() as stack:
            held = []
            for name in ("one", "two"):
                forged = _forged_claims(wallets, protocol, url, hotkey(name))
                for _ in range(2):
                    sent = raw_request(server.port, forged, b"x" * 1024, LIMIT, source="127.0.0.2")
                    held.append(stack.enter_context(sent))
                    time.sleep(0.2)  # being read
            answer = _post_mine(wallets, protocol, url)
            assert answer.status_code == 200, answer.text
            # The address holds all of the budget but one hotkey's share.
            assert [status_of(sock) for sock in held] == [408, 408, 503, 503]
    assert scorer.handled == ["mine"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_behind_a_proxy_here_the_address_is_the_one_it_appends(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    # uvicorn takes the address from X-Forwarded-For on a connection from 127.0.0.1 (a
    # proxy on this host): the rightmost entry, the one the proxy appends. Whatever the
    # caller wrote before it names no share of its own.
    with served(wallets, protocol, **_budget(8)) as (scorer, server):
        url = server.url + "/organic"
        forged = _forged_claims(wallets, protocol, url, wallets.client_hotkey)
        with contextlib.ExitStack() as stack:
            statuses = []
            for n in range(3):
                # The forger wrote its own X-Forwarded-For; the proxy appended its address.
                spoofed = {**forged, "X-Forwarded-For": f"10.0.{n}.1, 192.0.2.7"}
                sent = stack.enter_context(raw_request(server.port, spoofed, b"x", LIMIT))
                time.sleep(0.2)  # being read
                statuses.append(sent)
            assert status_of(statuses.pop()) == 429  # one address: its share is full
            # The genuine caller, as the proxy appends it.
            answer = _post_mine(wallets, protocol, url, {"X-Forwarded-For": "192.0.2.8"})
            assert answer.status_code == 200, answer.text
            assert [status_of(sock) for sock in statuses] == [408, 408]
    assert scorer.handled == ["mine"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_two_hundred_slow_forged_bodies_hold_at_most_the_budget(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    budget, clients, sent = 4 * LIMIT, 200, 64 * 1024
    options = {
        "max_body_bytes": LIMIT,
        "body_timeout": 2.0,
        "max_unverified_bytes": budget,
        "max_unverified_bytes_per_hotkey": budget,
    }
    with served(wallets, protocol, **options) as (scorer, server):
        url = server.url + "/organic"
        claims = _forged_claims(wallets, protocol, url, wallets.client_hotkey)
        gc.collect()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            sockets = [raw_request(server.port, claims, b"x" * sent, LIMIT) for _ in range(clients)]
            time.sleep(0.3)
            holding = tracemalloc.get_traced_memory()[0] - baseline
            statuses = []
            for sock in sockets:
                with sock:
                    statuses.append(status_of(sock))
            deadline = time.monotonic() + WAIT  # the server sees the connections close
            while True:
                gc.collect()
                left = tracemalloc.get_traced_memory()[0] - baseline
                if left < 1 << 20 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            tracemalloc.stop()
    assert statuses.count(408) <= budget // LIMIT  # only what fits was read at all
    assert statuses.count(408) + statuses.count(503) + statuses.count(429) == clients
    # The budget, plus what uvicorn itself buffers of a body nobody reads (it stops
    # reading a connection at 64 KiB) and some small change per connection.
    assert holding < budget + clients * (64 + 16) * 1024
    assert left < 1 << 20
    assert scorer.handled == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forged_claims_spend_none_of_the_claimed_callers_quota(
    wallets: Wallets,  # noqa: F811
    protocol: str,
) -> None:
    from organic_scoring.intake import Quota

    with served(wallets, protocol, quota=Quota(rate=0.01, burst=1)) as (scorer, server):
        url = server.url + "/organic"
        forged = _forged_claims(wallets, protocol, url, wallets.client_hotkey)
        for _ in range(3):
            assert httpx.post(url, content=b"{}", headers=forged, timeout=WAIT).status_code == 401
        body = Job(text="mine").model_dump_json().encode()
        headers = signed_headers(wallets, protocol, url, body)
        assert httpx.post(url, content=body, headers=headers, timeout=WAIT).status_code == 200
        again = signed_headers(wallets, protocol, url, body)
        over = httpx.post(url, content=body, headers=again, timeout=WAIT)
        assert over.status_code == 429
        assert over.headers["retry-after"] == "100"
    assert scorer.handled == ["mine"]
