"""Attacks on the intake from a hostile caller's side, each against a real server on
127.0.0.1: what a request that should be refused gets, and whether it was queued."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bittensor as bt
import httpx
import pytest
from pydantic import BaseModel, field_validator
from starlette.routing import Route

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_AXON, HAS_HTTP_AUTH
from organic_scoring.intake import IntakeSettings
from support.axons import (
    BITTENSOR_WARNINGS,
    WAIT,
    Wallets,
    attacher,
    make_wallets,
    offline_dendrite,
    serve_scorer,
)
from support.loopback import make_wallet
from support.scorers import Recorder
from support.waiting import until, wait_until

needs_axon = pytest.mark.skipif(not HAS_AXON, reason="bittensor 11 has no axon")


pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]

if HAS_AXON:
    from support.axons import Ask

    class AskScorer(Recorder):
        """Queues the prompt with the hotkey bittensor verified."""

        async def _on_organic_entry(self, synapse: Ask) -> Ask:
            self._organic_queue.add({"prompt": synapse.prompt, "hotkey": synapse.dendrite.hotkey})
            return synapse

    class Look(Ask):
        """A synapse whose validator has a bug: a KeyError for any prompt but "known"."""

        @field_validator("prompt")
        @classmethod
        def _look_up(cls, prompt: str) -> str:
            return {"known": prompt, "": prompt}[prompt]

    class LookScorer(Recorder):
        async def _on_organic_entry(self, synapse: Look) -> Look:
            self._organic_queue.add({"prompt": synapse.prompt})
            return synapse


class Job(BaseModel):
    """The organic request over signed HTTP."""

    text: str


class JobScorer(Recorder):
    async def _on_organic_entry(self, job: Job) -> Job:
        self._organic_queue.add(job)
        return job


@pytest.fixture(scope="module")
def bt_wallets(tmp_path_factory: pytest.TempPathFactory) -> Wallets:
    return make_wallets(tmp_path_factory.mktemp("wallets"))


def _signed(axon: Any, wallet: Any, prompt: str) -> tuple[str, dict[str, str], Any]:
    dendrite = offline_dendrite(wallet)
    synapse = dendrite.preprocess_synapse_for_request(axon.info(), Ask(prompt=prompt), timeout=WAIT)
    return f"http://127.0.0.1:{axon.port}/Ask", synapse.to_headers(), synapse.model_dump()


# bittensor reads any header whose name *contains* ``bt_header_dendrite_`` as a
# dendrite field (the last one wins); the screen read only the exact names.
SMUGGLED = ["x-bt_header_dendrite_hotkey", "zbt_header_dendrite_hotkey"]


@needs_axon
@pytest.mark.parametrize("name", SMUGGLED)
def test_axon_a_hotkey_smuggled_past_the_screen_is_refused(bt_wallets: Wallets, name: str) -> None:
    """The screen checks one hotkey against the allow-list, bittensor verifies another:
    an outsider signing with its own key must not get in by naming an allowed one."""
    allowed = bt_wallets.client.hotkey.ss58_address

    with serve_scorer(bt_wallets.server, attacher(AskScorer, [allowed])) as (axon, scorer):
        url, headers, body = _signed(axon, bt_wallets.stranger, "smuggled")
        raw = [(k, v) for k, v in headers.items() if k != "bt_header_dendrite_hotkey"]
        raw.insert(0, ("bt_header_dendrite_hotkey", allowed))  # what the screen reads
        raw.append((name, headers["bt_header_dendrite_hotkey"]))  # what bittensor reads
        with httpx.Client(timeout=WAIT) as http:
            response = http.post(url, headers=raw, json=body)
        assert scorer._organic_queue.size == 0, scorer._organic_queue.sample()
        assert response.status_code in (400, 401)


def _trickle_after_refusal(port: int, head: bytes, seconds: float) -> tuple[bytes, float | None]:
    """Send ``head``, read the refusal's status line, then keep sending a body byte
    every 0.2 s: the status, and after how long the server closed (None: it had not
    after ``seconds``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(head)
        status = sock.recv(64).split(b" ", 2)[1]
        sock.settimeout(0.2)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            try:
                sock.sendall(b" ")
                if sock.recv(4096) == b"":
                    return status, time.monotonic() - began
            except TimeoutError:
                continue
            except OSError:
                return status, time.monotonic() - began
        return status, None


@needs_axon
@pytest.mark.parametrize(("who", "status"), [("client", b"408"), ("stranger", b"403")])
def test_axon_a_refused_caller_does_not_hold_the_connection_by_trickling_its_body(
    bt_wallets: Wallets, who: str, status: bytes
) -> None:
    """After a refusal (408 for a body too slow, 403 before the body), bittensor's
    server discards what still comes and every byte puts its keep-alive timeout off: a
    trickler held the connection for as long as it liked."""
    allowed = bt_wallets.client.hotkey.ss58_address

    with serve_scorer(
        bt_wallets.server, attacher(AskScorer, [allowed], max_body_bytes=4096, body_timeout=0.5)
    ) as (axon, scorer):
        _, headers, _ = _signed(axon, getattr(bt_wallets, who), "slow")
        lines = ["POST /Ask HTTP/1.1", "Host: x", "Content-Length: 4096"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode() + b"{"
        answered, closed_after = _trickle_after_refusal(axon.port, head, 8.0)
        assert answered == status
        assert closed_after is not None
        assert closed_after < 2.0
        assert scorer._organic_queue.size == 0


def _rewrite_prompt(headers: dict[str, str], body: Any) -> tuple[dict[str, str], bytes]:
    return headers, json.dumps({**body, "prompt": "rewritten on the way"}).encode()


def _no_content_type(headers: dict[str, str], body: Any) -> tuple[dict[str, str], bytes]:
    return {k: v for k, v in headers.items() if k != "content-type"}, json.dumps(body).encode()


def _header(name: str, value: str) -> Any:
    def edit(headers: dict[str, str], body: Any) -> tuple[dict[str, str], bytes]:
        return {**headers, name: value}, json.dumps(body).encode()

    return edit


MALFORMED = {
    "body-rewritten": _rewrite_prompt,
    "no-content-type": _no_content_type,
    "timeout": _header("timeout", "soon"),
    "total_size": _header("total_size", "big"),
    "header_size": _header("header_size", "big"),
    "dendrite-port": _header("bt_header_dendrite_port", "http"),
    "dendrite-version": _header("bt_header_dendrite_version", "v1"),
    "axon-port": _header("bt_header_axon_port", "http"),
}


@needs_axon
@pytest.mark.parametrize("edit", list(MALFORMED.values()), ids=list(MALFORMED))
def test_axon_a_malformed_request_of_an_allowed_caller_gets_4xx_not_500(
    bt_wallets: Wallets, edit: Any
) -> None:
    """A body rewritten after signing, or an unsigned header bittensor cannot parse, made
    bittensor answer 500 (and log an ERROR with the headers)."""

    with serve_scorer(bt_wallets.server, attacher(AskScorer, ANY_HOTKEY)) as (axon, scorer):
        url, headers, body = _signed(axon, bt_wallets.client, "typed")
        headers, content = edit({"content-type": "application/json", **headers}, body)
        with httpx.Client(timeout=WAIT) as http:
            response = http.post(url, headers=headers, content=content)
        assert 400 <= response.status_code < 500, response.text
        assert scorer._organic_queue.size == 0


@needs_axon
@pytest.mark.parametrize("path", ["/Ask/", "/Ask/more", "/Ask/%2e%2e"])
def test_axon_a_path_bittensor_reads_as_the_synapse_is_screened(
    bt_wallets: Wallets, path: str
) -> None:
    """bittensor names the synapse by the path's first segment; the screen matched the
    whole path, so an outsider's flood on "/Ask/" skipped it and reached bittensor,
    which built a synapse and logged an ERROR for each refusal."""
    allowed = bt_wallets.client.hotkey.ss58_address

    with serve_scorer(bt_wallets.server, attacher(AskScorer, [allowed])) as (axon, scorer):
        url, headers, body = _signed(axon, bt_wallets.stranger, "flood")
        with httpx.Client(timeout=WAIT) as http:
            response = http.post(url.removesuffix("/Ask") + path, headers=headers, json=body)
        assert response.status_code == 403
        assert response.json() == {
            "message": "this hotkey is not in the validator's allowed_hotkeys"
        }
        assert scorer._organic_queue.size == 0


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11")
def test_btauth_a_replay_under_another_spelling_of_its_nonce_is_refused(tmp_path: Any) -> None:
    """``int()`` reads ``+n``, ``0n`` and ``n_m`` as the nonce n: each spelling
    of a captured request's nonce is the same nonce to the store."""
    from organic_scoring.http import create_app, serve_in_thread

    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    receiver = validator.hotkey.ss58_address
    scorer = JobScorer(allowed_hotkeys=ANY_HOTKEY)
    app = create_app(
        scorer, hotkey_ss58=receiver, protocol="btauth/1", settings=IntakeSettings(allowed_skew=0)
    )
    body = b'{"text": "once"}'
    with serve_in_thread(app) as server, httpx.Client(timeout=WAIT) as http:
        headers = dict(
            bt.http_auth.sign(
                client.hotkey, method="POST", path="/organic", body=body, receiver_ss58=receiver
            )
        )
        url = server.url + "/organic"
        assert http.post(url, content=body, headers=headers).status_code == 200
        nonce = headers["X-Bittensor-Nonce"]
        for spelling in (f"+{nonce}", f"0{nonce}", f"{nonce[:4]}_{nonce[4:]}"):
            edited = {**headers, "X-Bittensor-Nonce": spelling}
            assert http.post(url, content=body, headers=edited).status_code == 401, spelling
    assert scorer._organic_queue.size == 1


class Ranked(BaseModel):
    """A request whose caller sets its own rank."""

    text: str
    rank: int = 0


class Ambiguous:
    """A hook verdict that cannot be read as a flag (a numpy array, say)."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array with more than one element is ambiguous")


class RankingScorer(Recorder):
    """Ranks by the request's ``rank``; the path ``/blacklist`` and the text
    ``"verify"`` get an unreadable verdict from the hook of that name."""

    def _blacklist_fn(self, info: Any) -> Any:
        return Ambiguous() if info.path.endswith("blacklist") else False

    def _verify_fn(self, request: Ranked) -> Any:
        return Ambiguous() if request.text == "verify" else True

    async def _priority_fn(self, request: Ranked) -> int:
        return request.rank

    async def _on_organic_entry(self, request: Ranked) -> Ranked:
        self._organic_queue.add(request)
        return request


def _ranking_server(tmp_path: Any) -> tuple[RankingScorer, Any, Any, str]:
    """A btauth/1 intake for a :class:`RankingScorer`, also routed at ``/blacklist``."""
    from organic_scoring.http import create_app, serve_in_thread

    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    receiver = validator.hotkey.ss58_address
    scorer = RankingScorer(allowed_hotkeys=ANY_HOTKEY)
    settings = IntakeSettings(allowed_skew=0)
    app = create_app(scorer, hotkey_ss58=receiver, protocol="btauth/1", settings=settings)
    app.router.routes.append(Route("/blacklist", app.state.organic_intake, methods=["POST"]))
    return scorer, serve_in_thread(app), client, receiver


def _post(
    http: httpx.Client, server: Any, client: Any, receiver: str, path: str, payload: Any
) -> Any:
    body = json.dumps(payload).encode()
    headers = bt.http_auth.sign(
        client.hotkey, method="POST", path=path, body=body, receiver_ss58=receiver
    )
    return http.post(server.url + path, content=body, headers=dict(headers))


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11")
def test_btauth_a_priority_past_floats_range_ranks_as_infinity_not_a_crash(tmp_path: Any) -> None:
    """``_priority_fn`` passing on a caller's int field past float's range raised
    OverflowError out of the gate: a plain-text 500, the connection dropped."""
    scorer, server, client, receiver = _ranking_server(tmp_path)
    with server, httpx.Client(timeout=WAIT) as http:
        for rank in (10**400, -(10**400)):
            answer = _post(http, server, client, receiver, "/organic", {"text": "x", "rank": rank})
            assert answer.status_code == 200, answer.text
        assert _post(http, server, client, receiver, "/organic", {"text": "y"}).status_code == 200
    assert scorer._organic_queue.size == 3


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11")
def test_btauth_a_hook_verdict_that_cannot_be_read_is_the_hook_failing_not_a_crash(
    tmp_path: Any,
) -> None:
    """A verdict whose truth value raises (a numpy array) escaped the gate: a plain-text
    500 and a dropped connection. It is the hook failing: 500 from ``_blacklist_fn``,
    403 from ``_verify_fn``, and the connection serves the next request."""
    scorer, server, client, receiver = _ranking_server(tmp_path)
    with server, httpx.Client(timeout=WAIT) as http:
        answer = _post(http, server, client, receiver, "/blacklist", {"text": "x"})
        assert (answer.status_code, answer.json()) == (500, {"error": "internal error"})
        answer = _post(http, server, client, receiver, "/organic", {"text": "verify"})
        assert answer.status_code == 403, answer.text
        assert _post(http, server, client, receiver, "/organic", {"text": "y"}).status_code == 200
    assert scorer._organic_queue.size == 1


class SlowVerifier(Recorder):
    """An async ``_verify_fn`` that waits until ``opened`` is set (an external check
    that has stalled), counting who is inside it."""

    def __init__(self, **kwargs: Any) -> None:
        self.opened = threading.Event()
        self.inside = 0
        self.most_inside = 0
        super().__init__(**kwargs)

    async def _verify_fn(self, job: Job) -> bool:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await until(self.opened.is_set, "the stalled check to resume")
        finally:
            self.inside -= 1
        return True

    async def _on_organic_entry(self, job: Job) -> Job:
        self._organic_queue.add(job)
        return job


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11")
def test_btauth_requests_in_a_stalled_hook_count_against_the_backlog(tmp_path: Any) -> None:
    """Requests past the nonce store but still in ``_blacklist_fn``, ``_verify_fn`` or
    ``_priority_fn`` counted nowhere: with a hook that stalls, every signed request
    piled up there with its body, past ``max_concurrent + max_backlog``. They count
    now, and the rest get 429 at once."""
    from organic_scoring.http import create_app, serve_in_thread

    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    receiver = validator.hotkey.ss58_address
    scorer = SlowVerifier(allowed_hotkeys=ANY_HOTKEY)
    settings = IntakeSettings(allowed_skew=0, max_concurrent=1, max_backlog=1)
    app = create_app(scorer, hotkey_ss58=receiver, protocol="btauth/1", settings=settings)

    def post(i: int) -> int:
        body = json.dumps({"text": f"job {i}"}).encode()
        headers = bt.http_auth.sign(
            client.hotkey, method="POST", path="/organic", body=body, receiver_ss58=receiver
        )
        answer = httpx.post(
            server.url + "/organic", content=body, headers=dict(headers), timeout=WAIT
        )
        return answer.status_code

    with serve_in_thread(app) as server, ThreadPoolExecutor(6) as pool:
        answers = [pool.submit(post, i) for i in range(6)]
        wait_until(lambda: sum(a.done() for a in answers) >= 4, "the refusals")
        assert scorer.most_inside <= 2
        scorer.opened.set()
        statuses = sorted(a.result() for a in answers)
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert scorer._organic_queue.size == 2


class Looked(BaseModel):
    """A request model whose validator has a bug: a KeyError for any text but "known"."""

    text: str

    @field_validator("text")
    @classmethod
    def _look_up(cls, text: str) -> str:
        return {"known": text}[text]


class LookedScorer(Recorder):
    async def _on_organic_entry(self, request: Looked) -> Looked:
        self._organic_queue.add(request)
        return request


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11")
def test_btauth_a_model_validator_that_raises_is_a_counted_500_not_a_crash(tmp_path: Any) -> None:
    """pydantic turns only ValueError and AssertionError into a ValidationError: any
    other exception of the model's validator, on a caller's input, escaped the gate as
    a plain-text 500, dropped the connection and was left out of the stats."""
    from organic_scoring.http import create_app, serve_in_thread

    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    receiver = validator.hotkey.ss58_address
    scorer = LookedScorer(allowed_hotkeys=ANY_HOTKEY)
    settings = IntakeSettings(allowed_skew=0)
    app = create_app(scorer, hotkey_ss58=receiver, protocol="btauth/1", settings=settings)
    with serve_in_thread(app) as server, httpx.Client(timeout=WAIT) as http:
        for text, status in (("unknown", 500), ("known", 200)):  # the same connection
            body = json.dumps({"text": text}).encode()
            headers = bt.http_auth.sign(
                client.hotkey, method="POST", path="/organic", body=body, receiver_ss58=receiver
            )
            answer = http.post(server.url + "/organic", content=body, headers=dict(headers))
            assert answer.status_code == status, answer.text
        assert answer.status_code == 200
    assert scorer._organic_queue.size == 1
    counted = {500: 1, 200: 1}  # each counted once its answer is sent
    wait_until(lambda: dict(scorer.stats.intake_requests["btauth/1"]) == counted, "the counts")


class Vetoing(BaseModel):
    """A request model whose validator raises the intake gate's own refusal."""

    text: str

    @field_validator("text")
    @classmethod
    def _veto(cls, text: str) -> str:
        from organic_scoring.intake._gate import Refused

        raise Refused(418, "the model chose this status")


class VetoingScorer(Recorder):
    async def _on_organic_entry(self, request: Vetoing) -> Vetoing:
        self._organic_queue.add(request)
        return request


def test_a_model_validator_raising_the_gates_refusal_gets_a_counted_500(tmp_path: Any) -> None:
    """The gate's (private) Refused raised by a model's validator is a validator's
    exception like any other: a counted 500, as the axon's screen answers it. Until the
    intake's two parse steps became one, signed HTTP answered the status it named."""
    from organic_scoring.http import OrganicClient, create_app, serve_in_thread

    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    receiver = validator.hotkey.ss58_address
    scorer = VetoingScorer(allowed_hotkeys=ANY_HOTKEY)
    settings = IntakeSettings(allowed_skew=0)
    app = create_app(scorer, hotkey_ss58=receiver, protocol="epistula", settings=settings)

    async def send(url: str) -> int:
        async with OrganicClient(client, url, receiver, protocol="epistula") as caller:
            return (await caller.send({"text": "anything"})).status_code

    with serve_in_thread(app) as server:
        assert asyncio.run(send(server.url + "/organic")) == 500
    assert scorer._organic_queue.size == 0
    wait_until(lambda: dict(scorer.stats.intake_requests["epistula"]) == {500: 1}, "the count")


@needs_axon
def test_axon_a_synapse_validator_that_raises_is_a_counted_500_not_a_crash(
    bt_wallets: Wallets,
) -> None:
    """The screen parses the synapse before bittensor checks the signature: a validator
    raising anything but ValueError on the body (any caller's, signed or not) escaped the
    screen as a plain-text 500 with a traceback logged, uncounted."""

    with serve_scorer(bt_wallets.server, attacher(LookScorer, ANY_HOTKEY)) as (axon, scorer):
        with httpx.Client(timeout=WAIT) as http:
            for prompt, status in (("unknown", 500), ("known", 200)):
                dendrite = offline_dendrite(bt_wallets.client)
                synapse = dendrite.preprocess_synapse_for_request(
                    axon.info(), Look(prompt="known"), timeout=WAIT
                )
                body = {**synapse.model_dump(), "prompt": prompt}
                url = f"http://127.0.0.1:{axon.port}/Look"
                response = http.post(url, headers=synapse.to_headers(), json=body)
                assert response.status_code == status, response.text
        assert scorer._organic_queue.size == 1
        counted = {500: 1, 200: 1}  # each counted once its answer is sent
        wait_until(lambda: dict(scorer.stats.intake_requests["axon"]) == counted, "the counts")


@needs_axon
@pytest.mark.parametrize(
    "types",
    [("text/plain", "application/json"), ("application/x-www-form-urlencoded", "application/json")],
)
def test_axon_a_second_content_type_does_not_carry_a_non_json_body_past_the_screen(
    bt_wallets: Wallets, types: tuple[str, str]
) -> None:
    """The screen read the last Content-Type header, bittensor's app the first: a JSON
    one after another passed the screen's 415 and bittensor answered 500, logged an
    ERROR, and the answer went uncounted."""

    with serve_scorer(bt_wallets.server, attacher(AskScorer, ANY_HOTKEY)) as (axon, scorer):
        url, headers, body = _signed(axon, bt_wallets.client, "typed")
        sent = [("content-type", kind) for kind in types] + list(headers.items())
        with httpx.Client(timeout=WAIT) as http:
            response = http.post(url, headers=sent, content=json.dumps(body).encode())
        assert 400 <= response.status_code < 500, response.text
        assert scorer._organic_queue.size == 0
        status = response.status_code  # counted once the answer is sent

        def counted() -> bool:
            return dict(scorer.stats.intake_requests.get("axon", {})) == {status: 1}

        wait_until(counted, "the refusal's count")


@pytest.mark.skipif(not HAS_HTTP_AUTH, reason="btauth/1 needs bittensor 11")
def test_btauth_a_chunked_body_longer_than_its_content_length_is_a_400(tmp_path: Any) -> None:
    """With Transfer-Encoding: chunked and a Content-Length both sent, the server frames
    the body by its chunks: one longer than the declared length got 413 "exceeds
    1048576 bytes", for a 13-byte body. The request is malformed: 400."""
    from organic_scoring.http import create_app, serve_in_thread

    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    receiver = validator.hotkey.ss58_address
    scorer = JobScorer(allowed_hotkeys=ANY_HOTKEY)
    settings = IntakeSettings(allowed_skew=0)
    app = create_app(scorer, hotkey_ss58=receiver, protocol="btauth/1", settings=settings)
    body = b'{"text": "x"}'
    with serve_in_thread(app) as server:
        headers = bt.http_auth.sign(
            client.hotkey, method="POST", path="/organic", body=body, receiver_ss58=receiver
        )
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            (
                "POST /organic HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n"
                f"Transfer-Encoding: chunked\r\n{head}\r\n{len(body):x}\r\n"
            ).encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"longer than its Content-Length" in answer
    assert scorer._organic_queue.size == 0
