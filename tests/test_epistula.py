"""Epistula v2 signed HTTP, on every bittensor major: the intake against requests built by
hand from the protocol's text (not with our client), our signing against a verifier
written from that text, and a property run over random headers and bodies.

The spec, as gateways implement it: headers ``Epistula-Version: 2``,
``Epistula-Timestamp`` (milliseconds), ``Epistula-Uuid`` (a UUID4),
``Epistula-Signed-By`` and ``Epistula-Signed-For`` (ss58 hotkeys), and
``Epistula-Request-Signature``: ``0x`` and the hex of the sender's sr25519 signature of
``f"{sha256(body).hexdigest()}.{uuid}.{timestamp}.{signed_for}"``; gateways add
``Epistula-Secret-Signature-0/1/2``, which the intake ignores.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.applications import Starlette

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.http import (
    EpistulaCaller,
    OrganicAuth,
    OrganicClient,
    OrganicServer,
    create_app,
    serve_in_thread,
)
from organic_scoring.intake import IntakeSettings
from support.signed_http import (
    Echo,
    HttpScorer,
    Prompt,
    QueueingScorer,
    Wallets,
    asgi_client,
    loop,  # noqa: F401 (fixture)
    wallets,  # noqa: F401 (fixture)
)
from support.waiting import WAIT, wait_until

pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks")]

LIMIT = 4096
"""max_body_bytes of the shared test server."""

MAX_AGE_MS = 10_000
SKEW_MS = 2_000
"""The intake's default freshness window, in the protocol's unit."""

AUTH_HEADERS = (
    "epistula-version",
    "epistula-timestamp",
    "epistula-uuid",
    "epistula-signed-by",
    "epistula-signed-for",
    "epistula-request-signature",
)


# -- Epistula v2 by hand, from the spec ---------------------------------------------------


_signers: dict[int, tuple[Any, Any]] = {}
"""id(wallet) -> (wallet, its resolved hotkey signer): bittensor 11 reads the key file
on each resolve. The wallet is kept, so its id is never reused for another."""


def hotkey_sign(wallet: Any, message: bytes) -> bytes:
    """The wallet's hotkey sr25519 signature of ``message``, as each major offers it."""
    resolve = getattr(bt, "resolve_signer", None)
    if resolve is not None:  # 11
        held = _signers.get(id(wallet))
        if held is None or held[0] is not wallet:
            held = _signers[id(wallet)] = (wallet, resolve(wallet, role="hotkey"))
        return bytes(held[1].sign(message))
    return bytes(wallet.hotkey.sign(message))  # 9, 10


def spec_message(body: bytes, request_id: str, timestamp: str, signed_for: str) -> bytes:
    return f"{hashlib.sha256(body).hexdigest()}.{request_id}.{timestamp}.{signed_for}".encode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def epistula(
    wallet: Any,
    body: bytes,
    signed_for: str | None,
    *,
    timestamp: int | str | None = None,
    request_id: str | None = None,
    signed_by: str | None = None,
    gateway: bool = True,
) -> dict[str, str]:
    """The headers a gateway sends: signed by ``wallet``'s hotkey for ``signed_for``
    (None: no ``Epistula-Signed-For`` header, the signature made over an empty one)."""
    stamp = str(now_ms() if timestamp is None else timestamp)
    request_id = str(uuid.uuid4()) if request_id is None else request_id
    signature = hotkey_sign(wallet, spec_message(body, request_id, stamp, signed_for or ""))
    headers = {
        "Epistula-Version": "2",
        "Epistula-Timestamp": stamp,
        "Epistula-Uuid": request_id,
        "Epistula-Signed-By": signed_by or wallet.hotkey.ss58_address,
        "Epistula-Request-Signature": "0x" + signature.hex(),
    }
    if signed_for is not None:
        headers["Epistula-Signed-For"] = signed_for
    if gateway:
        # Gateways also sign the current 10-second bucket and its neighbours.
        bucket = math.ceil(now_ms() / 1e4) * int(1e4)
        for i, moment in enumerate((bucket - 1, bucket, bucket + 1)):
            secret = hotkey_sign(wallet, f"{moment}.{signed_for or ''}".encode())
            headers[f"Epistula-Secret-Signature-{i}"] = "0x" + secret.hex()
    return headers


_PublicKey: Any = getattr(bt, "Keypair", None) or bt.sp_core.Keypair  # 9/10, 11


@dataclass
class SpecVerifier:
    """The receiver's check, written from the spec (plus the intake's start-time
    watermark): what ought to be accepted, and which UUIDs have been used."""

    receiver: str
    not_before_ms: int
    seen: set[tuple[str, str]] = field(default_factory=set)

    def problem(self, raw: list[tuple[bytes, bytes]], body: bytes) -> str | None:
        """Why a request with these headers and body must be refused; None if it must not.

        A request that passes every check has its UUID remembered.
        """
        names = [name.decode("latin-1").lower() for name, _ in raw]
        if any(names.count(name) > 1 for name in AUTH_HEADERS):
            return "repeated"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        version = headers.get("epistula-version")
        stamp = headers.get("epistula-timestamp", "")
        request_id = headers.get("epistula-uuid", "")
        signed_by = headers.get("epistula-signed-by", "")
        signed_for = headers.get("epistula-signed-for")
        signature = headers.get("epistula-request-signature", "")
        if version != "2" or not signed_by or signed_for != self.receiver:
            return "headers"
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 20):
            return "timestamp"
        try:
            uuid.UUID(request_id)
        except ValueError:
            return "uuid"
        moment, now = int(stamp), now_ms()
        if now - moment > MAX_AGE_MS or moment - now > SKEW_MS or moment < self.not_before_ms:
            return "stale"
        if len(body) > LIMIT:
            return "size"
        if not signature.startswith("0x"):
            return "signature"
        try:
            key = _PublicKey(ss58_address=signed_by)
            valid = key.verify(
                spec_message(body, request_id, stamp, signed_for), bytes.fromhex(signature[2:])
            )
        except ValueError:
            return "signature"
        if not valid:
            return "signature"
        nonce = (signed_by, request_id.lower())
        if nonce in self.seen:
            return "replay"
        self.seen.add(nonce)
        return None


def verifier_for(app: Starlette, receiver: str) -> SpecVerifier:
    watermark = app.state.organic_intake.gate.freshness.not_before_ns
    return SpecVerifier(receiver, watermark // 1_000_000)


# -- a real server on 127.0.0.1 -------------------------------------------------------------


@dataclass
class Service:
    scorer: HttpScorer
    app: Starlette
    server: OrganicServer

    @property
    def url(self) -> str:
        return self.server.url + "/organic"

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        raw = {name: value.encode("latin-1") for name, value in headers.items()}
        return httpx.post(self.url, content=body, headers=raw, timeout=WAIT)


def epistula_app(scorer: Any, wallets: Wallets, **limits: Any) -> Starlette:  # noqa: F811
    return create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol="epistula",
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0, **limits),
    )


@pytest.fixture(scope="module")
def served(wallets: Wallets) -> Iterator[Service]:  # noqa: F811
    scorer = HttpScorer()
    app = epistula_app(scorer, wallets, max_body_bytes=LIMIT)
    with serve_in_thread(app) as server:
        yield Service(scorer, app, server)


@pytest.fixture
def service(served: Service) -> Service:
    served.scorer.reset()
    return served


BODY = Prompt(text="valid").model_dump_json().encode()


def test_a_hand_built_request_is_answered_queued_and_scored_by_the_running_loop(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = HttpScorer(trigger_frequency=0.05)
    app = epistula_app(scorer, wallets)
    body = Prompt(text="hello miners").model_dump_json().encode()
    with serve_in_thread(app) as server, scorer:
        headers = epistula(wallets.client, body, wallets.validator_hotkey)
        headers["Content-Type"] = "application/json"
        response = httpx.post(server.url + "/organic", content=body, headers=headers)
        assert response.status_code == 200, response.text
        wait_until(
            lambda: any(log["is_organic_sample"] for log in scorer.logs),
            "the organic request to be scored",
        )
    assert Echo.model_validate_json(response.content) == Echo(
        text="hello miners", hotkey=wallets.client_hotkey
    )
    assert Prompt(text="hello miners") in scorer.samples
    assert scorer.stats.organic_scored >= 1


def test_hooks_see_the_epistula_caller(service: Service, wallets: Wallets) -> None:  # noqa: F811
    headers = epistula(wallets.client, BODY, wallets.validator_hotkey)
    response = service.post(BODY, headers)
    assert response.status_code == 200, response.text
    assert [hook for hook, _ in service.scorer.seen] == [
        "blacklist",
        "verify",
        "priority",
        "handler",
    ]
    assert {hotkey for _, hotkey in service.scorer.seen} == {wallets.client_hotkey}
    (info,) = service.scorer.blacklist_info
    assert info.protocol == "epistula"
    assert info.hotkey == wallets.client_hotkey
    assert info.caller == EpistulaCaller(
        hotkey_ss58=wallets.client_hotkey,
        uuid=headers["Epistula-Uuid"],
        timestamp_ms=int(headers["Epistula-Timestamp"]),
    )
    assert service.scorer.organic_queue.size >= 1


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"Epistula-Secret-Signature-0": "0xnot-even-hex", "Epistula-Secret-Signature-1": ""},
        {"Epistula-Secret-Signature-7": "anything", "Epistula-Other": "x"},
    ],
    ids=["none", "garbage secrets", "unknown epistula headers"],
)
def test_gateway_secret_signatures_are_ignored_not_refused(
    extra: dict[str, str],
    service: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    headers = epistula(wallets.client, BODY, wallets.validator_hotkey, gateway=not extra)
    headers.update(extra)
    response = service.post(BODY, headers)
    assert response.status_code == 200, response.text
    assert service.scorer.handled == ["valid"]


# -- every refusal: 401, no hook run, nothing queued ----------------------------------------

Build = Callable[[Wallets], tuple[bytes, dict[str, str]]]


Value = Callable[[], Any]
"""A header value made when the request is built (timestamps must be current)."""


def _signed(timestamp: Value | None = None, request_id: str | None = None) -> Build:
    def build(w: Wallets) -> tuple[bytes, dict[str, str]]:
        stamp = None if timestamp is None else timestamp()
        headers = epistula(
            w.client, BODY, w.validator_hotkey, timestamp=stamp, request_id=request_id
        )
        return BODY, headers

    return build


def _edited(name: str, value: Value | None) -> Build:
    """Signed properly, then one header changed (None: removed)."""

    def build(w: Wallets) -> tuple[bytes, dict[str, str]]:
        headers = epistula(w.client, BODY, w.validator_hotkey)
        if value is None:
            del headers[name]
        else:
            headers[name] = str(value())
        return BODY, headers

    return build


def _timestamp_moved(w: Wallets) -> tuple[bytes, dict[str, str]]:
    """Signed properly, then the timestamp moved back a millisecond (still fresh)."""
    headers = epistula(w.client, BODY, w.validator_hotkey)
    headers["Epistula-Timestamp"] = str(int(headers["Epistula-Timestamp"]) - 1)
    return BODY, headers


def _superscript(text: str) -> str:
    """``text`` with superscript digits (Latin-1): ``isdigit()`` says yes, ``int()`` no."""
    return text.replace("1", "¹").replace("2", "²").replace("3", "³")


def _forged(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY, epistula(w.other, BODY, w.validator_hotkey, signed_by=w.client_hotkey)


def _for_another(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY, epistula(w.client, BODY, w.other_hotkey)


def _for_nobody(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY, epistula(w.client, BODY, None)


def _for_empty(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY, epistula(w.client, BODY, "")


def _tampered(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY.replace(b"valid", b"VALID"), epistula(w.client, BODY, w.validator_hotkey)


def _unsigned(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY, {"Content-Type": "application/json"}


def _not_an_address(w: Wallets) -> tuple[bytes, dict[str, str]]:
    return BODY, epistula(w.client, BODY, w.validator_hotkey, signed_by="5NotAnAddress")


def _wrong_length(w: Wallets) -> tuple[bytes, dict[str, str]]:
    headers = epistula(w.client, BODY, w.validator_hotkey)
    headers["Epistula-Request-Signature"] = headers["Epistula-Request-Signature"][:-2]
    return BODY, headers


REFUSED: dict[str, tuple[Build, str]] = {
    "unsigned": (_unsigned, "Epistula-Version"),
    "forged: another key claiming the client's hotkey": (_forged, "does not verify"),
    "stale": (_signed(lambda: now_ms() - 60_000), "more than 10s ago"),
    "from the future": (_signed(lambda: now_ms() + 60_000), "in the future"),
    "timestamp in seconds": (_signed(lambda: time.time_ns() // 10**9), "ago"),
    "timestamp in nanoseconds": (_signed(time.time_ns), "in the future"),
    "signed for another validator": (_for_another, "not signed for this validator"),
    "no Epistula-Signed-For": (_for_nobody, "Epistula-Signed-For"),
    "empty Epistula-Signed-For": (_for_empty, "not signed for this validator"),
    "body tampered with": (_tampered, "does not verify"),
    "version 1": (_edited("Epistula-Version", lambda: "1"), "Epistula-Version"),
    "no version": (_edited("Epistula-Version", None), "Epistula-Version"),
    "no Signed-By": (_edited("Epistula-Signed-By", None), "Epistula-Signed-By"),
    "Signed-By not an address": (_not_an_address, "not an SS58 address"),
    "no UUID": (_edited("Epistula-Uuid", None), "Epistula-Uuid"),
    "UUID not a UUID": (_signed(request_id="request-42"), "Epistula-Uuid"),
    "UUID edited": (_edited("Epistula-Uuid", uuid.uuid4), "does not verify"),
    "no timestamp": (_edited("Epistula-Timestamp", None), "Epistula-Timestamp"),
    "fractional timestamp": (_signed(lambda: f"{now_ms()}.5"), "Epistula-Timestamp"),
    "negative timestamp": (_signed(lambda: -now_ms()), "Epistula-Timestamp"),
    "timestamp in words": (_signed(lambda: "now"), "Epistula-Timestamp"),
    "timestamp in superscript digits": (
        _signed(lambda: _superscript(str(now_ms()))),
        "Epistula-Timestamp",
    ),
    "timestamp edited": (_timestamp_moved, "does not verify"),
    "no signature": (_edited("Epistula-Request-Signature", None), "Epistula-Request-Signature"),
    "signature without 0x": (
        _edited("Epistula-Request-Signature", lambda: "ab" * 64),
        "Epistula-Request-Signature",
    ),
    "signature not hex": (_edited("Epistula-Request-Signature", lambda: "0xzz"), "encoding"),
    "signature too short": (_wrong_length, "encoding"),
    "signature of zeros": (
        _edited("Epistula-Request-Signature", lambda: "0x" + "00" * 64),
        "does not verify",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_with_401_before_any_hook_and_nothing_queued(
    name: str,
    service: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    build, message = REFUSED[name]
    body, headers = build(wallets)
    before = service.scorer.organic_queue.size
    response = service.post(body, headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert service.scorer.seen == []
    assert service.scorer.organic_queue.size == before


def test_a_replayed_request_is_refused(service: Service, wallets: Wallets) -> None:  # noqa: F811
    headers = epistula(wallets.client, BODY, wallets.validator_hotkey)
    shouted = {**headers, "Epistula-Uuid": headers["Epistula-Uuid"].upper()}
    shouted["Epistula-Request-Signature"] = epistula(
        wallets.client,
        BODY,
        wallets.validator_hotkey,
        timestamp=headers["Epistula-Timestamp"],
        request_id=shouted["Epistula-Uuid"],
    )["Epistula-Request-Signature"]
    before = service.scorer.organic_queue.size
    first, again, in_capitals = (service.post(BODY, h) for h in (headers, headers, shouted))
    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert "nonce was already used" in again.json()["error"]
    assert in_capitals.status_code == 401, "a UUID is the same UUID in capitals"
    assert service.scorer.organic_queue.size == before + 1


def test_a_request_signed_before_a_restart_is_refused_by_the_restarted_intake(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = HttpScorer()
    with serve_in_thread(epistula_app(scorer, wallets)) as server:
        url = server.url + "/organic"
        used = epistula(wallets.client, BODY, wallets.validator_hotkey)
        unused = epistula(wallets.client, BODY, wallets.validator_hotkey)
        assert httpx.post(url, content=BODY, headers=used).status_code == 200
    # A restart: a new intake (its nonce store empty), the same scorer and hotkey.
    with serve_in_thread(epistula_app(scorer, wallets)) as server:
        url = server.url + "/organic"
        for headers in (used, unused):
            response = httpx.post(url, content=BODY, headers=headers)
            assert response.status_code == 401, response.text
            assert "before this intake started" in response.json()["error"]
        fresh = epistula(wallets.client, BODY, wallets.validator_hotkey)
        assert httpx.post(url, content=BODY, headers=fresh).status_code == 200
    assert scorer.handled == ["valid", "valid"]


def test_a_request_signed_in_the_millisecond_the_intake_started_is_accepted(
    wallets: Wallets,  # noqa: F811
    loop: asyncio.AbstractEventLoop,  # noqa: F811
) -> None:
    # Regression: the millisecond timestamp was read as the millisecond's first
    # nanosecond, so a request signed just after the start, in the same millisecond,
    # counted as signed before it (most requests sent at once to a new app failed).
    scorer = QueueingScorer()
    app = epistula_app(scorer, wallets)
    started_ms = app.state.organic_intake.gate.freshness.not_before_ns // 1_000_000

    async def main() -> list[int]:
        async with asgi_client(app) as client:
            statuses = []
            for stamp in (started_ms, started_ms - 1):
                headers = epistula(wallets.client, BODY, wallets.validator_hotkey, timestamp=stamp)
                statuses.append(
                    (await client.post("/organic", content=BODY, headers=headers)).status_code
                )
            return statuses

    assert loop.run_until_complete(main()) == [200, 401]
    assert scorer.organic_queue.size == 1


# -- our signing, against the intake and against the spec ---------------------------------


def test_organic_client_with_epistula(service: Service, wallets: Wallets) -> None:  # noqa: F811
    async def main() -> Echo:
        async with OrganicClient(
            wallets.client, service.url, wallets.validator_hotkey, protocol="epistula"
        ) as client:
            assert client.protocol == "epistula"
            answer: Echo = await client.call(Prompt(text="from the client"), Echo)
            return answer

    assert asyncio.run(main()) == Echo(text="from the client", hotkey=wallets.client_hotkey)
    assert service.scorer.organic_queue.size >= 1


def test_any_httpx_client_signs_with_organic_auth(
    service: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    auth = OrganicAuth(wallets.client, wallets.validator_hotkey, protocol="epistula")
    assert auth.hotkey == wallets.client_hotkey

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(auth=auth, timeout=WAIT) as client:
            return [
                await client.post(service.url, json={"text": "json"}),
                await client.post(service.url + "?stream=no", content=b'{"text": "bytes"}'),
            ]

    responses = asyncio.run(main())
    with httpx.Client(auth=auth, timeout=WAIT) as client:
        responses.append(client.post(service.url, json={"text": "sync"}))
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert service.scorer.handled == ["json", "bytes", "sync"]


def test_organic_auth_headers_pass_a_verifier_written_from_the_spec(
    wallets: Wallets,  # noqa: F811
) -> None:
    verifier = SpecVerifier(wallets.validator_hotkey, not_before_ms=0)
    auth = OrganicAuth(wallets.client, wallets.validator_hotkey, protocol="epistula")
    for body in (BODY, b"", "é ünïcode".encode()):
        request = httpx.Request("POST", "http://validator/organic?x=1", content=body)
        signed = next(auth.sync_auth_flow(request))
        assert verifier.problem(signed.headers.raw, signed.content) is None
        assert uuid.UUID(signed.headers["epistula-uuid"]).version == 4
        assert abs(int(signed.headers["epistula-timestamp"]) - now_ms()) < WAIT * 1000
        assert signed.headers["epistula-signed-for"] == wallets.validator_hotkey


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11's bt.http_auth")
def test_organic_auth_with_btauth_signs_the_body_and_the_raw_path_with_its_query(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = HttpScorer()
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol="btauth/1",
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    auth = OrganicAuth(wallets.client, wallets.validator_hotkey, protocol="btauth/1")
    request = httpx.Request("POST", "http://validator/organic?q=a%20b&n=1", json={"text": "x"})
    signed = next(auth.sync_auth_flow(request))
    bt.http_auth.verify(  # bittensor's own check, with the target as the server sees it
        dict(signed.headers),
        signed.content,
        method="POST",
        path="/organic?q=a%20b&n=1",
        self_hotkey_ss58=wallets.validator_hotkey,
        nonce_store=bt.http_auth.InMemoryNonceStore(),
    )
    with serve_in_thread(app) as server:
        url = server.url + "/organic"

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(auth=auth, timeout=WAIT) as client:
                return [
                    await client.post(url, json={"text": "async"}),
                    await client.post(url + "?q=a%20b&n=1", content=b'{"text": "query"}'),
                ]

        responses = asyncio.run(main())
        with httpx.Client(auth=auth, timeout=WAIT) as client:
            responses.append(client.post(url, params={"k": "v w"}, json={"text": "sync"}))
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert scorer.handled == ["async", "query", "sync"]


# -- properties: random headers and bodies, in-process ---------------------------------------

PROPERTY_LIMIT = LIMIT
HEADER_NAMES = [*AUTH_HEADERS, "epistula-secret-signature-0"]


@dataclass
class PropertyTarget:
    scorer: QueueingScorer
    app: Starlette
    wallets: Wallets
    verifier: SpecVerifier


@pytest.fixture(scope="module")
def target(wallets: Wallets) -> PropertyTarget:  # noqa: F811
    scorer = QueueingScorer()
    app = epistula_app(scorer, wallets, max_body_bytes=PROPERTY_LIMIT)
    return PropertyTarget(scorer, app, wallets, verifier_for(app, wallets.validator_hotkey))


def body_is_valid(body: bytes) -> bool:
    try:
        Prompt.model_validate_json(body)
    except ValidationError:
        return False
    return True


header_values = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"2", b"1", b"", b"0x", b"0x00", b"0x" + b"00" * 64, b"-1", b"1e3"]),
    st.integers().map(lambda i: str(i).encode()),
    st.uuids().map(lambda u: str(u).encode()),
)
mutations = st.just([]) | st.lists(
    st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(HEADER_NAMES), st.just(b"")),
        st.tuples(st.just("set"), st.sampled_from([*HEADER_NAMES, "x-other"]), header_values),
        st.tuples(st.just("repeat"), st.sampled_from(HEADER_NAMES), header_values),
        st.tuples(st.just("shout"), st.sampled_from(HEADER_NAMES), st.just(b"")),
    ),
    max_size=3,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.just(BODY),
    st.binary(max_size=300),
    st.sampled_from([b"", b'{"text": "a"' + b" " * PROPERTY_LIMIT + b"}", b'{"text": 5}']),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"text": st.text(max_size=250)}, optional={"priority": st.floats(-1e6, 1e6)}
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
)
PROPERTY_SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(
    changes=mutations,
    body=bodies,
    signer=st.sampled_from(["client", "client", "other"]),
    claims_client=st.booleans(),
    receiver=st.sampled_from(["validator", "validator", "validator", "other", "", None]),
    offset_ms=st.sampled_from([0, 0, 0, -1_000, -60_000, 60_000, -(10**12)]),
    method=st.sampled_from(["POST"] * 6 + ["GET"]),
    replay=st.sampled_from([False, False, False, True]),
)
def test_random_requests_never_5xx_and_queue_only_what_the_spec_accepts(
    target: PropertyTarget,
    loop: asyncio.AbstractEventLoop,  # noqa: F811
    changes: list[tuple[str, str, bytes]],
    body: bytes,
    signer: str,
    claims_client: bool,
    receiver: str | None,
    offset_ms: int,
    method: str,
    replay: bool,
) -> None:
    w = target.wallets
    wallet = w.client if signer == "client" else w.other
    signed_for = receiver
    if receiver == "validator":
        signed_for = w.validator_hotkey
    elif receiver == "other":
        signed_for = w.other_hotkey
    signed = epistula(
        wallet,
        body,
        signed_for,
        timestamp=now_ms() + offset_ms,
        signed_by=w.client_hotkey if claims_client else None,
    )
    raw = [(k.lower().encode(), v.encode()) for k, v in signed.items()]
    for action, name, value in changes:
        key = name.encode()
        if action == "drop":
            raw = [(k, v) for k, v in raw if k != key]
        elif action == "set":
            raw = [(k, v) for k, v in raw if k != key] + [(key, value)]
        elif action == "repeat":
            raw.append((key, value))
        else:
            raw = [(k.upper() if k == key else k, v) for k, v in raw]

    async def main() -> None:
        async with asgi_client(target.app) as client:
            if replay:
                first = client.build_request("POST", "/organic", content=body, headers=signed)
                target.verifier.problem(first.headers.raw, body)
                await client.send(first)
            request = client.build_request(method, "/organic", content=body, headers=raw)
            problem = "method" if method != "POST" else None
            problem = problem or target.verifier.problem(request.headers.raw, body)
            expected_ok = problem is None and body_is_valid(body)
            before = target.scorer.organic_queue.size
            response = await client.send(request)
        event(f"{problem or 'signed'}: {response.status_code}")
        assert response.status_code < 500, response.text
        if expected_ok:
            assert response.status_code == 200, response.text
            assert target.scorer.organic_queue.size == before + 1
        else:
            assert response.status_code in (400, 401, 405, 413, 422), (problem, response.text)
            assert target.scorer.organic_queue.size == before
            if problem in ("headers", "timestamp", "uuid", "stale", "signature", "replay"):
                assert response.status_code == 401, (problem, response.text)

    loop.run_until_complete(main())
