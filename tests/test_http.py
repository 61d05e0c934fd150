"""The signed-HTTP intake (bittensor 11): a real server on 127.0.0.1, the client, and
hand-built requests; plus property tests in-process over thousands of random requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import string
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bittensor as bt
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.routing import Mount

from organic_scoring import ANY_HOTKEY, OrganicScoringBase
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.errors import OrganicRequestError
from organic_scoring.http import OrganicClient, OrganicServer, create_app, serve_in_thread
from organic_scoring.http._app import OrganicIntake, request_target
from organic_scoring.intake import IntakeSettings
from organic_scoring.intake._admission import AdmissionGate, BacklogFull
from support.signed_http import (
    Echo,
    HttpScorer,
    Prompt,
    QueueingScorer,
    Wallets,
    asgi_client,
    loop,  # noqa: F401 (fixture)
    sign,
    until,
    wallets,  # noqa: F401 (fixture)
)
from support.waiting import WAIT

pytestmark = [
    pytest.mark.skipif(not HAS_HTTP_AUTH, reason="bt.http_auth exists on bittensor 11 only"),
    pytest.mark.usefixtures("no_leaks"),
]

LIMIT = 4096
"""max_body_bytes of the shared test server."""


@dataclass
class Service:
    """A scorer's intake served on 127.0.0.1."""

    scorer: HttpScorer
    app: Starlette
    server: OrganicServer
    path: str = "/organic"

    @property
    def url(self) -> str:
        return self.server.url + self.path

    @property
    def intake(self) -> OrganicIntake:
        intake: OrganicIntake = self.app.state.organic_intake
        return intake


@pytest.fixture(scope="module")
def served(wallets: Wallets) -> Iterator[Service]:  # noqa: F811
    scorer = HttpScorer()
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        settings=IntakeSettings(max_body_bytes=LIMIT, allowed_skew=0),
        allowed_hotkeys=ANY_HOTKEY,
    )
    with serve_in_thread(app) as server:
        yield Service(scorer, app, server)


@pytest.fixture
def service(served: Service) -> Service:
    served.scorer.reset()
    return served


@pytest.fixture
def gated(wallets: Wallets) -> Iterator[Service]:  # noqa: F811
    """One handler slot and a backlog of four."""
    scorer = HttpScorer()
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        settings=IntakeSettings(max_concurrent=1, max_backlog=4, allowed_skew=0),
        allowed_hotkeys=ANY_HOTKEY,
    )
    with serve_in_thread(app) as server:
        yield Service(scorer, app, server)


def client_for(service: Service, wallets: Wallets, **kwargs: Any) -> OrganicClient:  # noqa: F811
    return OrganicClient(wallets.client, service.url, wallets.validator_hotkey, **kwargs)


# -- a signed request, end to end -----------------------------------------------------


def test_signed_request_is_queued_answered_and_scored_by_the_running_loop(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = HttpScorer(trigger_frequency=0.05)
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    with serve_in_thread(app) as server, scorer:
        url = server.url + "/organic"

        async def main() -> Any:
            async with OrganicClient(wallets.client, url, wallets.validator_hotkey) as client:
                return await client.call(Prompt(text="hello miners"), response_model=Echo)

        answer = asyncio.run(main())
        deadline = time.monotonic() + WAIT
        while not any(log["is_organic_sample"] for log in scorer.logs):
            assert time.monotonic() < deadline, "the organic request was never scored"
            scorer.done.wait_for(scorer.done.value + 1)
    assert answer == Echo(text="hello miners", hotkey=wallets.client_hotkey)
    assert Prompt(text="hello miners") in scorer.samples
    assert scorer.stats.organic_scored >= 1


def test_hooks_run_in_order_and_see_the_authenticated_caller(
    service: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    async def main() -> httpx.Response:
        async with client_for(service, wallets) as client:
            return await client.send(Prompt(text="who", priority=2))

    response = asyncio.run(main())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert [hook for hook, _ in service.scorer.seen] == [
        "blacklist",
        "verify",
        "priority",
        "handler",
    ]
    assert {hotkey for _, hotkey in service.scorer.seen} == {wallets.client_hotkey}
    (info,) = service.scorer.blacklist_info
    assert info.hotkey == wallets.client_hotkey == info.caller.hotkey_ss58
    assert (info.method, info.path) == ("POST", "/organic")
    assert info.headers["x-bittensor-hotkey"] == wallets.client_hotkey
    assert info.client is not None
    assert info.client[0] == "127.0.0.1"


def test_streamed_response_arrives_chunk_by_chunk(
    service: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    # The handler produces chunk i + 1 only after the client acknowledged chunk i,
    # so the whole answer can only arrive if each chunk is sent as soon as it exists.
    async def main() -> list[str]:
        received: list[str] = []
        async with (
            client_for(service, wallets) as client,
            client.stream(Prompt(text="tell me", chunks=4)) as stream,
        ):
            assert stream.response.headers["content-type"].startswith("text/plain")
            async for chunk in stream.text():
                received.append(chunk)
                service.scorer.acked += 1
        return received

    received = asyncio.run(main())
    assert received == [f"chunk {i} for {wallets.client_hotkey} via /organic\n" for i in range(4)]


# -- every refusal: its status, and nothing queued ----------------------------------------

BODY = Prompt(text="valid").model_dump_json().encode()


@dataclass
class Case:
    """A hand-built request that must be refused."""

    status: int
    message: str
    body: bytes = BODY
    signer: str = "client"
    receiver: str | None = "validator"
    signed_path: str = "/organic"
    nonce_offset_s: float = 0.0
    sent_body: bytes | None = None
    claimed_hotkey: str | None = None
    unsigned: bool = False
    chunked: bool = False
    blacklist: bool = False
    reject: bool = False


CASES = {
    "unsigned": Case(401, "X-Bittensor-Version", unsigned=True),
    "body changed after signing": Case(401, "does not verify", sent_body=BODY.upper()),
    "signed by another key": Case(401, "does not verify", signer="other", claimed_hotkey="client"),
    "signed for another path": Case(401, "does not verify", signed_path="/elsewhere"),
    "stale": Case(401, "more than 10s ago", nonce_offset_s=-60),
    "from the future": Case(401, "in the future", nonce_offset_s=60),
    "wrong receiver": Case(401, "not signed for this validator", receiver="other"),
    "no receiver": Case(401, "not signed for this validator", receiver=None),
    "blacklisted": Case(403, "blacklisted", blacklist=True),
    "not JSON": Case(400, "not valid JSON", body=b"hello, validator"),
    "empty body": Case(400, "not valid JSON", body=b""),
    "wrong field type": Case(422, "does not match", body=b'{"text": 5}'),
    "unknown field": Case(422, "does not match", body=b'{"text": "a", "extra": 1}'),
    "not an object": Case(422, "does not match", body=b"[1, 2]"),
    "oversized": Case(413, f"exceeds {LIMIT} bytes", body=b'{"text": "' + b"a" * LIMIT + b'"}'),
    "oversized, chunked": Case(
        413, f"exceeds {LIMIT} bytes", body=b'{"text": "' + b"a" * LIMIT + b'"}', chunked=True
    ),
    "rejected by _verify_fn": Case(403, "rejected by the validator", reject=True),
}


def build(case: Case, wallets: Wallets) -> tuple[bytes, dict[str, str]]:  # noqa: F811
    if case.unsigned:
        return case.body, {}
    signer = wallets.client if case.signer == "client" else wallets.other
    receiver = {
        "validator": wallets.validator_hotkey,
        "other": wallets.other_hotkey,
        None: None,
    }[case.receiver]
    nonce = time.time_ns() + int(case.nonce_offset_s * 1e9)
    headers = sign(signer, case.signed_path, case.body, receiver, nonce_ns=nonce)
    if case.claimed_hotkey is not None:
        headers["X-Bittensor-Hotkey"] = wallets.client_hotkey
    body = case.body if case.sent_body is None else case.sent_body
    return body, headers


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


@pytest.mark.parametrize("name", list(CASES))
def test_refused_requests_get_their_status_and_queue_nothing(
    name: str,
    service: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    case = CASES[name]
    if case.blacklist:
        service.scorer.blacklisted.add(wallets.client_hotkey)
    if case.reject:
        service.scorer.rejected.add("valid")
    body, headers = build(case, wallets)
    before = service.scorer.organic_queue.size

    async def main() -> httpx.Response:
        async with httpx.AsyncClient() as client:
            content: Any = _chunks(body) if case.chunked else body
            return await client.post(service.url, content=content, headers=headers)

    response = asyncio.run(main())
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/json"
    assert case.message in response.json()["error"]
    assert service.scorer.organic_queue.size == before
    assert service.scorer.entered.value == 0
    if case.status == 422:
        assert response.json()["detail"], "422 lists the validation errors"


def test_a_replayed_request_is_refused(service: Service, wallets: Wallets) -> None:  # noqa: F811
    headers = sign(wallets.client, "/organic", BODY, wallets.validator_hotkey)
    before = service.scorer.organic_queue.size

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient() as client:
            return [await client.post(service.url, content=BODY, headers=headers) for _ in "ab"]

    first, again = asyncio.run(main())
    assert first.status_code == 200
    assert again.status_code == 401
    assert "nonce was already used" in again.json()["error"]
    assert service.scorer.organic_queue.size == before + 1


def test_handler_exception_is_a_logged_500_that_leaks_nothing(
    service: Service,
    wallets: Wallets,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    service.scorer.failing.add("explode")

    async def main() -> httpx.Response:
        async with client_for(service, wallets) as client:
            return await client.send(Prompt(text="explode"))

    with caplog.at_level(logging.ERROR, logger="organic_scoring"):
        response = asyncio.run(main())
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert "secret" not in response.text
    (record,) = [r for r in caplog.records if "_on_organic_entry raised" in r.getMessage()]
    assert record.exc_info is not None
    assert "secret internals" in str(record.exc_info[1])


def test_wrong_method_and_unknown_path_answer_json(service: Service) -> None:
    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient() as client:
            return await client.get(service.url), await client.post(service.server.url + "/x")

    wrong_method, unknown = asyncio.run(main())
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json() == {"error": "method not allowed"}
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "not found"}


def test_client_does_not_sign_a_bare_question_mark(service: Service, wallets: Wallets) -> None:  # noqa: F811
    async def main() -> httpx.Response:
        async with OrganicClient(
            wallets.client, service.url + "?", wallets.validator_hotkey
        ) as client:
            return await client.send(Prompt(text="q"))

    assert asyncio.run(main()).status_code == 200


def test_client_call_raises_on_an_error_status(service: Service, wallets: Wallets) -> None:  # noqa: F811
    async def main() -> None:
        async with client_for(service, wallets) as client:
            with pytest.raises(OrganicRequestError) as info:
                await client.call({"text": 5})
            assert info.value.status_code == 422
            assert info.value.detail[0]["loc"] == ["text"]
            service.scorer.blacklisted.add(wallets.client_hotkey)
            stream = client.stream(Prompt(text="x", chunks=2))
            with pytest.raises(OrganicRequestError, match="403"):
                await stream.__aenter__()

    asyncio.run(main())


# -- mounting, allowed hotkeys, the request target -------------------------------------


def test_mounted_app_checks_the_full_signed_path_and_allowed_hotkeys(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = HttpScorer(allowed_hotkeys=[wallets.other_hotkey])
    organic = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        path="/in",
        settings=IntakeSettings(allowed_skew=0),
    )
    parent = Starlette(routes=[Mount("/api/v1", app=organic)])
    with serve_in_thread(parent) as server:
        url = server.url + "/api/v1/in?lang=en&x=%2F"

        async def main() -> tuple[httpx.Response, httpx.Response]:
            async with (
                OrganicClient(wallets.other, url, wallets.validator_hotkey) as allowed,
                OrganicClient(wallets.client, url, wallets.validator_hotkey) as stranger,
            ):
                return await allowed.send(Prompt(text="ok")), await stranger.send(Prompt(text="no"))

        ok, refused = asyncio.run(main())
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"text": "ok", "hotkey": wallets.other_hotkey}
    assert scorer.blacklist_info[0].path == "/api/v1/in?lang=en&x=%2F"
    assert refused.status_code == 403
    assert "allowed_hotkeys" in refused.json()["error"]
    assert scorer.handled == ["ok"]


@pytest.mark.parametrize(
    ("scope", "target"),
    [
        ({"path": "/organic", "raw_path": b"/organic", "query_string": b""}, "/organic"),
        ({"path": "/a b", "raw_path": b"/a%20b", "query_string": b"q=1"}, "/a%20b?q=1"),
        ({"path": "/organic", "query_string": b""}, "/organic"),
        (  # Starlette's Mount: the prefix is in both path and root_path
            {"path": "/api/organic", "raw_path": b"/api/organic", "root_path": "/api"},
            "/api/organic",
        ),
        (  # a server behind a proxy that strips the prefix
            {"path": "/organic", "raw_path": b"/organic", "root_path": "/api"},
            "/api/organic",
        ),
        ({"path": "/o", "raw_path": b"/o?x=1", "query_string": b"x=1"}, "/o?x=1"),
    ],
)
def test_request_target_is_what_the_client_signed(scope: dict[str, Any], target: str) -> None:
    assert request_target(scope) == target


def test_a_subclass_shadowing_config_keeps_allowed_hotkeys(wallets: Wallets) -> None:  # noqa: F811
    class Shadowing(HttpScorer):
        config = {"mine": True}

    scorer = Shadowing(allowed_hotkeys=[wallets.other_hotkey])
    app = create_app(
        scorer, hotkey_ss58=wallets.validator_hotkey, settings=IntakeSettings(allowed_skew=0)
    )

    async def main() -> httpx.Response:
        async with OrganicClient(
            wallets.client,
            "http://testserver/organic",
            wallets.validator_hotkey,
            transport=httpx.ASGITransport(app=app),
        ) as client:
            return await client.send(Prompt(text="x"))

    assert asyncio.run(main()).status_code == 403


# -- admission: priority, backlog, callers who leave ---------------------------------------


def test_waiting_requests_are_served_by_priority_under_a_full_limit(
    gated: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    hold = threading.Event()
    gated.scorer.holds["hold"] = hold
    waiting = [("p1", 1), ("p5a", 5), ("p3", 3), ("p5b", 5)]

    async def main() -> list[int]:
        async with client_for(gated, wallets) as client:
            first = asyncio.create_task(client.send(Prompt(text="hold")))
            await until(lambda: gated.scorer.entered.value == 1, "the first request")
            later = []
            for k, (text, priority) in enumerate(waiting, start=1):
                later.append(asyncio.create_task(client.send(Prompt(text=text, priority=priority))))
                await until(lambda k=k: gated.intake.waiting == k, f"{k} waiting")  # type: ignore[misc]
            hold.set()
            responses = await asyncio.gather(first, *later)
        return [r.status_code for r in responses]

    assert asyncio.run(main()) == [200] * 5
    assert gated.scorer.handled == ["hold", "p5a", "p5b", "p3", "p1"]
    # The server releases a slot just after the answer leaves, so wait for it.
    asyncio.run(until(lambda: (gated.intake.in_flight, gated.intake.waiting) == (0, 0), "idle"))


def test_a_full_backlog_answers_429_and_queues_nothing(
    wallets: Wallets,  # noqa: F811
) -> None:
    scorer = HttpScorer()
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        settings=IntakeSettings(max_concurrent=1, max_backlog=1, allowed_skew=0),
        allowed_hotkeys=ANY_HOTKEY,
    )
    hold = threading.Event()
    scorer.holds["hold"] = hold
    with serve_in_thread(app) as server:
        service = Service(scorer, app, server)

        async def main() -> list[httpx.Response]:
            async with client_for(service, wallets) as client:
                first = asyncio.create_task(client.send(Prompt(text="hold")))
                await until(lambda: scorer.entered.value == 1, "the first request")
                second = asyncio.create_task(client.send(Prompt(text="waits")))
                await until(lambda: service.intake.waiting == 1, "one waiting")
                third = await client.send(Prompt(text="turned away", priority=100))
                hold.set()
                return [await first, await second, third]

        statuses = [r.status_code for r in asyncio.run(main())]
    assert statuses == [200, 200, 429]
    assert scorer.handled == ["hold", "waits"]
    assert scorer.organic_queue.size == 2


def test_a_caller_leaving_while_waiting_gives_up_its_place(
    gated: Service,
    wallets: Wallets,  # noqa: F811
) -> None:
    hold = threading.Event()
    gated.scorer.holds["hold"] = hold

    async def main() -> list[int]:
        async with client_for(gated, wallets) as client:
            first = asyncio.create_task(client.send(Prompt(text="hold")))
            await until(lambda: gated.scorer.entered.value == 1, "the first request")
            async with client_for(gated, wallets) as impatient:
                leaving = asyncio.create_task(impatient.send(Prompt(text="gone", priority=9)))
                await until(lambda: gated.intake.waiting == 1, "the impatient caller waiting")
                leaving.cancel()
                await asyncio.wait([leaving])
            await until(lambda: gated.intake.waiting == 0, "the place to be given up")
            hold.set()
            after = await client.send(Prompt(text="after"))
            return [(await first).status_code, after.status_code]

    assert asyncio.run(main()) == [200, 200]
    assert gated.scorer.handled == ["hold", "after"]
    # The server releases a slot just after the answer leaves, so wait for it.
    asyncio.run(until(lambda: (gated.intake.in_flight, gated.intake.waiting) == (0, 0), "idle"))


def test_admission_gate_orders_waiters_and_passes_on_a_withdrawn_grant() -> None:
    async def main() -> list[str]:
        gate = AdmissionGate(max_concurrent=1, max_backlog=3)
        assert gate.try_enter()
        order: list[str] = []
        low, high, tie = gate.queue(1.0), gate.queue(2.0), gate.queue(2.0)
        with pytest.raises(BacklogFull):
            gate.queue(99.0)
        gate.leave()  # to `high`
        assert high.done()
        assert not low.done()
        gate.withdraw(high)  # granted but abandoned: passes to `tie`
        assert tie.done()
        order.append("tie")
        gate.withdraw(low)  # still waiting: just leaves the backlog
        assert gate.waiting == 0
        assert gate.active == 1
        gate.leave()
        assert gate.active == 0
        assert gate.try_enter()
        return order

    assert asyncio.run(main()) == ["tie"]


# -- what a handler may return --------------------------------------------------------------


class Shapes(OrganicScoringBase):
    """A handler answering in every supported shape, chosen by the request text."""

    async def _on_organic_entry(self, synapse: Prompt) -> Any:
        kind = synapse.text
        if kind == "none":
            return None
        if kind == "dict":
            return {"a": [1, 2]}
        if kind == "bytes-stream":
            return _yield(b"ab", b"cd")
        if kind == "empty-stream":
            return _yield()
        if kind == "fails-first":
            return _yield(RuntimeError("before anything"))
        if kind == "fails-later":
            return _yield("one ", RuntimeError("half way"))
        if kind == "bad-chunk":
            return _yield("one ", 2)
        return object()

    async def _query_miners(self, sample: Any) -> Any:
        return None

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return None

    async def _set_weights(self, rewards: Any) -> None:
        return None


async def _yield(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def test_handler_results_become_responses(
    wallets: Wallets,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(
        Shapes(),
        hotkey_ss58=wallets.validator_hotkey,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )

    async def main() -> dict[str, httpx.Response]:
        async with OrganicClient(
            wallets.client,
            "http://testserver/organic",
            wallets.validator_hotkey,
            transport=httpx.ASGITransport(app=app),
        ) as client:
            kinds = ["none", "dict", "bytes-stream", "empty-stream", "fails-first"]
            kinds += ["fails-later", "bad-chunk", "object"]
            return {kind: await client.send(Prompt(text=kind)) for kind in kinds}

    with caplog.at_level(logging.ERROR, logger="organic_scoring"):
        got = asyncio.run(main())
    assert (got["none"].status_code, got["none"].content) == (204, b"")
    assert got["dict"].json() == {"a": [1, 2]}
    assert got["bytes-stream"].content == b"abcd"
    assert got["bytes-stream"].headers["content-type"] == "application/octet-stream"
    assert (got["empty-stream"].status_code, got["empty-stream"].content) == (200, b"")
    assert got["fails-first"].status_code == 500
    assert (got["fails-later"].status_code, got["fails-later"].text) == (200, "one ")
    assert (got["bad-chunk"].status_code, got["bad-chunk"].text) == (200, "one ")
    assert got["object"].status_code == 500
    assert got["object"].json() == {"error": "internal error"}
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "half way" in logged
    assert "str or bytes" in logged
    assert "returned object" in logged


# -- building the app ------------------------------------------------------------------------


class Unannotated(Shapes):
    async def _on_organic_entry(self, synapse: Any) -> Any:
        return None


if TYPE_CHECKING:
    from collections.abc import Sequence as OnlyForTypeCheckers


class ReturnsAnUnimportedType(Shapes):
    async def _on_organic_entry(self, synapse: Prompt) -> OnlyForTypeCheckers[int]:
        return [1]


class Store:
    """A nonce store that remembers, and can be made to fail."""

    def __init__(self, retention: float = 60.0) -> None:
        self.retention = retention
        self.seen: set[tuple[str, int]] = set()
        self.broken = False

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        if self.broken:
            raise ConnectionError("redis is down")
        if (hotkey_ss58, nonce_ns) in self.seen:
            return False
        self.seen.add((hotkey_ss58, nonce_ns))
        return True


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"path": "organic"}, ValueError, "path"),
        ({"hotkey_ss58": ""}, ValueError, "hotkey_ss58"),
        ({"protocol": "plain"}, ValueError, "protocol"),
        ({"settings": {"max_age": 5}}, TypeError, "IntakeSettings"),
        ({"nonce_store": object()}, TypeError, "check_and_store"),
        ({"nonce_store": Store(retention=5)}, ValueError, "keeps nonces for 5s"),
        ({"model": dict}, TypeError, "pydantic model"),
    ],
)
def test_create_app_refuses_bad_options(
    kwargs: dict[str, Any],
    error: type[Exception],
    words: str,
    wallets: Wallets,  # noqa: F811
) -> None:
    options: dict[str, Any] = {
        "hotkey_ss58": wallets.validator_hotkey,
        "settings": IntakeSettings(allowed_skew=0),
        **kwargs,
    }
    with pytest.raises(error, match=words):
        create_app(Shapes(), **options, allowed_hotkeys=ANY_HOTKEY)


def test_create_app_needs_a_scorer_and_a_request_model(wallets: Wallets) -> None:  # noqa: F811
    with pytest.raises(TypeError, match="OrganicScoringBase"):
        create_app(
            object(),
            hotkey_ss58=wallets.validator_hotkey,
            allowed_hotkeys=ANY_HOTKEY,
            settings=IntakeSettings(allowed_skew=0),
        )  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="annotated with a pydantic model"):
        create_app(
            Unannotated(),
            hotkey_ss58=wallets.validator_hotkey,
            allowed_hotkeys=ANY_HOTKEY,
            settings=IntakeSettings(allowed_skew=0),
        )
    app = create_app(
        Unannotated(),
        hotkey_ss58=wallets.validator_hotkey,
        model=Prompt,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    assert app.state.organic_intake.model is Prompt
    app = create_app(
        ReturnsAnUnimportedType(),
        hotkey_ss58=wallets.validator_hotkey,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    assert app.state.organic_intake.model is Prompt


def test_a_custom_nonce_store_is_used_and_its_failure_is_a_503(
    wallets: Wallets,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    scorer = QueueingScorer()
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        nonce_store=store,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )

    async def main() -> list[httpx.Response]:
        async with OrganicClient(
            wallets.client,
            "http://testserver/organic",
            wallets.validator_hotkey,
            transport=httpx.ASGITransport(app=app),
        ) as client:
            ok = await client.send(Prompt(text="a"))
            store.broken = True
            return [ok, await client.send(Prompt(text="b"))]

    with caplog.at_level(logging.ERROR, logger="organic_scoring"):
        ok, down = asyncio.run(main())
    assert ok.status_code == 200
    assert len(store.seen) == 1
    assert down.status_code == 503
    assert "redis" not in down.text
    assert scorer.organic_queue.size == 1
    assert any("nonce store failed" in r.getMessage() for r in caplog.records)


# -- the server ---------------------------------------------------------------------------------


def test_server_binds_a_free_port_and_stops_cleanly(wallets: Wallets) -> None:  # noqa: F811
    app = create_app(
        QueueingScorer(),
        hotkey_ss58=wallets.validator_hotkey,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    server = serve_in_thread(app, port=0)
    try:
        assert server.port > 0
        assert server.is_running
        assert httpx.post(server.url + "/organic").status_code == 401
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not server.is_running
    assert not [t for t in threading.enumerate() if t.name == f"organic-scoring-http-{server.port}"]
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.url + "/organic")
    with pytest.raises(RuntimeError, match="already started"):
        server.start()


def test_a_server_whose_app_fails_to_start_raises_and_leaves_nothing() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    server = OrganicServer(Starlette(lifespan=lifespan))
    with pytest.raises(RuntimeError, match="failed to start"):
        server.start()
    assert not server.is_running


def test_served_connections_do_not_wait_for_delayed_acks(service: Service) -> None:
    # Without TCP_NODELAY each small response would sit out the peer's delayed ACK.
    async def main() -> list[int]:
        async with httpx.AsyncClient() as client:
            await client.post(service.url)  # leaves a kept-alive connection open
            connections = service.server._server.server_state.connections
            return [
                c.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                for c in list(connections)
            ]

    flags = asyncio.run(main())
    assert flags
    assert all(flags)


def test_server_reports_a_taken_port(wallets: Wallets) -> None:  # noqa: F811
    app = create_app(
        QueueingScorer(),
        hotkey_ss58=wallets.validator_hotkey,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    with serve_in_thread(app) as first, pytest.raises(OSError, match="in use"):
        OrganicServer(app, port=first.port).start()


# -- properties: thousands of random requests, in-process -----------------------------------

PROPERTY_LIMIT = 512
HEADER_NAMES = [
    "x-bittensor-version",
    "x-bittensor-hotkey",
    "x-bittensor-receiver",
    "x-bittensor-nonce",
    "x-bittensor-signature",
    "x-bittensor-crypto",
]


@dataclass
class PropertyTarget:
    scorer: QueueingScorer
    app: Starlette
    wallets: Wallets
    oracle_store: Any


@pytest.fixture(scope="module")
def target(wallets: Wallets) -> PropertyTarget:  # noqa: F811
    scorer = QueueingScorer()
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        settings=IntakeSettings(max_body_bytes=PROPERTY_LIMIT, allowed_skew=0),
        allowed_hotkeys=ANY_HOTKEY,
    )
    return PropertyTarget(scorer, app, wallets, bt.http_auth.InMemoryNonceStore())


def server_headers(request: httpx.Request) -> dict[str, str]:
    """The headers as the intake reads them: lower-cased names, the last one wins."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.raw}


def oracle_accepts(target: PropertyTarget, request: httpx.Request, body: bytes) -> bool:
    """Does bittensor's own verify accept this request? (Fed the same nonces as the app.)"""
    try:
        bt.http_auth.verify(
            server_headers(request),
            body,
            method=request.method,
            path=request.url.raw_path.decode("ascii"),
            self_hotkey_ss58=target.wallets.validator_hotkey,
            nonce_store=target.oracle_store,
        )
    except bt.http_auth.AuthError:
        return False
    return True


def intake_also_accepts(target: PropertyTarget, request: httpx.Request) -> bool:
    """What the intake adds to bittensor's verify: no authentication header twice, and
    nothing signed before the intake started."""
    names = [k.decode("latin-1").lower() for k, _ in request.headers.raw]
    auth = [name for name in names if name.startswith("x-bittensor-")]
    if len(auth) != len(set(auth)):
        return False
    nonce = int(server_headers(request)["x-bittensor-nonce"])
    return nonce >= target.app.state.organic_intake.gate.freshness.not_before_ns


header_values = st.one_of(
    st.binary(max_size=100).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"1", b"2", b"", b"0x", b"0x00", b"ed25519", b"sr25519", b"ecdsa", b"-"]),
    st.integers().map(lambda i: str(i).encode()),
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
PROPERTY_SETTINGS = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(
    changes=mutations,
    signer=st.sampled_from(["client", "other"]),
    receiver=st.sampled_from(["validator", "validator", "validator", "other", None]),
    nonce_offset=st.sampled_from([0, 0, 0, -(10**9), -(60 * 10**9), 60 * 10**9, -(10**18)]),
    method=st.sampled_from(["POST", "POST", "POST", "POST", "POST", "GET", "PUT"]),
    replay=st.sampled_from([False, False, False, True]),
)
def test_random_headers_never_5xx_and_queue_only_when_properly_signed(
    target: PropertyTarget,
    loop: asyncio.AbstractEventLoop,  # noqa: F811
    changes: list[tuple[str, str, bytes]],
    signer: str,
    receiver: str | None,
    nonce_offset: int,
    method: str,
    replay: bool,
) -> None:
    w = target.wallets
    body = Prompt(text="random headers").model_dump_json().encode()
    receiver_hotkey = {"validator": w.validator_hotkey, "other": w.other_hotkey, None: None}
    signed = sign(
        w.client if signer == "client" else w.other,
        "/organic",
        body,
        receiver_hotkey[receiver],
        nonce_ns=time.time_ns() + nonce_offset,
        method=method,
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
            request = client.build_request(method, "/organic", content=body, headers=raw)
            if replay:
                first = client.build_request(method, "/organic", content=body, headers=signed)
                oracle_accepts(target, first, body)
                await client.send(first)
            expected_ok = (
                method == "POST"
                and oracle_accepts(target, request, body)
                and intake_also_accepts(target, request)
            )
            before = target.scorer.organic_queue.size
            response = await client.send(request)
            event(f"status {response.status_code}")
            assert response.status_code < 500, response.text
            if expected_ok:
                assert response.status_code == 200, response.text
                assert target.scorer.organic_queue.size == before + 1
            else:
                assert response.status_code in (400, 401, 405), response.text
                assert target.scorer.organic_queue.size == before

    loop.run_until_complete(main())


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
prompt_like = st.fixed_dictionaries(
    {"text": st.text(max_size=260)},
    optional={
        "priority": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.text(max_size=5)
        ),
        "chunks": st.integers(-2, 25),
        "extra": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(
        [
            b'{"text": "a", "priority": NaN}',
            b'{"text": "a", "priority": -Infinity}',
            b'{"text": "a", "priority": 1e999}',
            b'{"text": "a"' + b" " * PROPERTY_LIMIT + b"}",
            b'{"text": "\\ud800"}',
            b'\xef\xbb\xbf{"text": "bom"}',
            b'{"text": "a", "text": "b"}',
        ]
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    prompt_like.map(lambda v: json.dumps(v, allow_nan=False).encode()),
    prompt_like.map(lambda v: json.dumps(v, allow_nan=False, ensure_ascii=False).encode()),
)
queries = st.one_of(
    st.just(""),
    # Not a bare "?": servers drop an empty query, so no client can sign one usefully.
    st.text(alphabet=string.ascii_letters + string.digits + "=&-_.~", min_size=1, max_size=24).map(
        lambda q: "?" + q
    ),
)


def expected_status(body: bytes) -> int:
    if len(body) > PROPERTY_LIMIT:
        return 413
    try:
        Prompt.model_validate_json(body)
    except ValidationError as exc:
        return 400 if any(e["type"] == "json_invalid" for e in exc.errors()) else 422
    return 200


@PROPERTY_SETTINGS
@given(body=bodies, query=queries, content_type=st.sampled_from(["application/json", "text/x"]))
def test_random_signed_bodies_never_5xx_and_queue_only_when_valid(
    target: PropertyTarget,
    loop: asyncio.AbstractEventLoop,  # noqa: F811
    body: bytes,
    query: str,
    content_type: str,
) -> None:
    w = target.wallets

    async def main() -> None:
        async with asgi_client(target.app) as client:
            request = client.build_request("POST", "/organic" + query, content=body)
            path = request.url.raw_path.decode("ascii")
            request.headers.update(sign(w.client, path, body, w.validator_hotkey))
            request.headers["content-type"] = content_type
            before = target.scorer.organic_queue.size
            response = await client.send(request)
        expected = expected_status(body)
        event(f"status {response.status_code}")
        assert response.status_code == expected, (response.status_code, response.text)
        assert target.scorer.organic_queue.size == before + (expected == 200)
        if expected == 200:
            assert response.content == Prompt.model_validate_json(body).model_dump_json().encode()

    loop.run_until_complete(main())


# -- the benchmark runs ------------------------------------------------------------------------


def test_bench_http_rows() -> None:
    from benchmarks import bench_http

    rows = bench_http.run(quick=True)
    assert rows
    for row in rows:
        assert set(row) == {"name", "ours_rps", "bare_rps", "ratio"}
        assert row["ours_rps"] > 0
        assert row["bare_rps"] > 0
        assert math.isclose(row["ratio"], row["ours_rps"] / row["bare_rps"])


def test_models_round_trip_through_the_client_encoder() -> None:
    from organic_scoring.http._client import encode_payload

    class Nested(BaseModel):
        items: list[int]

    assert encode_payload(Nested(items=[1])) == b'{"items":[1]}'
    assert encode_payload({"a": "é"}) == '{"a":"é"}'.encode()
    assert encode_payload(b"raw") == b"raw"
    with pytest.raises(TypeError):
        encode_payload(object())
