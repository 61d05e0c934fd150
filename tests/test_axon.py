"""The axon intake: real axons on 127.0.0.1, queried by real dendrites from temp wallets.

What the axon does with each hook is checked from the caller's side: the status the
dendrite gets back, and whether the request reached the organic queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import typing
from typing import Any

import bittensor as bt
import httpx
import pytest

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_AXON
from organic_scoring.axon import attach_axon
from organic_scoring.intake import IntakeSettings
from support.axons import (
    BITTENSOR_WARNINGS,
    WAIT,
    Wallets,
    astream,
    attacher,
    make_wallets,
    offline_dendrite,
    query,
    running_axon,
    serve_scorer,
    settled,
)
from support.scorers import Recorder
from support.waiting import wait_until

needs_axon = pytest.mark.skipif(not HAS_AXON, reason="bittensor 11 has no axon")
pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]

if HAS_AXON:
    from support.axons import Ask, StreamAsk

    class Other:
        """Not a synapse."""


@pytest.fixture(scope="module")
def bt_wallets(tmp_path_factory: pytest.TempPathFactory) -> Wallets:
    """The axon's, a trusted caller's and a stranger's wallet, made once per module."""
    return make_wallets(tmp_path_factory.mktemp("wallets"))


# -- scorers -------------------------------------------------------------------------


class AskScorer(Recorder):
    """Answers an ``Ask`` and queues what scoring needs; ``boom`` makes it raise."""

    async def _on_organic_entry(self, synapse: Ask) -> Ask:
        if synapse.prompt == "boom":
            raise RuntimeError("the organic handler failed")
        synapse.completion = synapse.prompt.upper()
        self._organic_queue.add({"prompt": synapse.prompt, "hotkey": synapse.dendrite.hotkey})
        return synapse


def build(cls: type[AskScorer], **kwargs: Any) -> Any:
    """What ``serve_scorer`` needs to build ``cls`` on the axon it starts."""
    return lambda axon: cls(axon=axon, **kwargs)


def drain(scorer: Recorder) -> list[Any]:
    """Take every waiting entry out of the scorer's queue."""
    out = []
    while scorer._organic_queue.size:
        out.append(scorer._organic_queue.sample())
    return out


def status(reply: Any) -> int:
    return int(reply.dendrite.status_code)


# -- the organic path ----------------------------------------------------------------


@needs_axon
def test_organic_request_is_queued_then_scored_by_the_running_loop(bt_wallets: Wallets) -> None:
    with serve_scorer(bt_wallets.server, build(AskScorer, trigger_frequency=0.1)) as (axon, scorer):
        reply = query(axon, bt_wallets.client, Ask(prompt="hello"))
        assert status(reply) == 200
        assert reply.completion == "HELLO"
        assert scorer._organic_queue.size == 1

        scorer.start()
        scorer.done.wait_for(1)
        record = {"prompt": "hello", "hotkey": bt_wallets.client.hotkey.ss58_address}
        assert scorer.samples[0] == record
        assert scorer.logs[0]["is_organic_sample"] is True
        assert scorer._organic_queue.size == 0


@needs_axon
def test_scorer_can_attach_to_an_axon_that_is_already_serving(bt_wallets: Wallets) -> None:
    with running_axon(bt_wallets.server) as axon:
        scorer = AskScorer(axon=axon)
        settled(axon)
        reply = query(axon, bt_wallets.client, Ask(prompt="late"))
        assert status(reply) == 200
        assert [entry["prompt"] for entry in drain(scorer)] == ["late"]


@needs_axon
def test_entry_returning_none_answers_with_the_request_synapse(bt_wallets: Wallets) -> None:
    class Quiet(AskScorer):
        async def _on_organic_entry(self, synapse: Ask) -> None:
            synapse.completion = "noted"
            self._organic_queue.add(synapse.prompt)

    with serve_scorer(bt_wallets.server, build(Quiet)) as (axon, scorer):
        reply = query(axon, bt_wallets.client, Ask(prompt="hi"))
        assert status(reply) == 200
        assert reply.completion == "noted"
        assert drain(scorer) == ["hi"]


@needs_axon
def test_handler_exception_answers_500_and_stops_neither_axon_nor_loop(
    bt_wallets: Wallets,
) -> None:
    with serve_scorer(bt_wallets.server, build(AskScorer, trigger_frequency=0.1)) as (axon, scorer):
        scorer.start()
        failed = query(axon, bt_wallets.client, Ask(prompt="boom"))
        assert status(failed) == 500
        assert failed.dendrite.status_message == "internal error"  # nothing of the exception
        assert scorer._organic_queue.size == 0

        reply = query(axon, bt_wallets.client, Ask(prompt="after"))
        assert status(reply) == 200
        scorer.done.wait_for(1)
        assert scorer.samples[0]["prompt"] == "after"
        assert scorer.is_running


# -- blacklist and allow-list --------------------------------------------------------


class BlockingScorer(AskScorer):
    """Blacklists the hotkeys in ``blocked``; records every call."""

    blocked: typing.ClassVar[set[str]] = set()

    def __init__(self, **kwargs: Any) -> None:
        self.blacklist_calls: list[Any] = []
        super().__init__(**kwargs)


class BlockBuiltinTuple(BlockingScorer):
    async def _blacklist_fn(self, synapse: Ask) -> tuple[bool, str]:
        self.blacklist_calls.append(synapse)
        hotkey = synapse.dendrite.hotkey
        return hotkey in self.blocked, f"{hotkey} is blocked"


class BlockTypingTuple(BlockingScorer):
    async def _blacklist_fn(self, synapse: Ask) -> typing.Tuple[bool, str]:  # noqa: UP006
        self.blacklist_calls.append(synapse)
        hotkey = synapse.dendrite.hotkey
        return hotkey in self.blocked, f"{hotkey} is blocked"


class BlockUnannotated(BlockingScorer):
    async def _blacklist_fn(self, request):  # type: ignore[no-untyped-def]
        self.blacklist_calls.append(request)
        hotkey = request.dendrite.hotkey
        return hotkey in self.blocked, f"{hotkey} is blocked"


class BlockSyncBareBool(BlockingScorer):
    def _blacklist_fn(self, req: Any) -> bool:  # type: ignore[override]
        self.blacklist_calls.append(req)
        return req.dendrite.hotkey in self.blocked


BLACKLISTS = [BlockBuiltinTuple, BlockTypingTuple, BlockUnannotated, BlockSyncBareBool]


@needs_axon
@pytest.mark.parametrize("cls", BLACKLISTS, ids=lambda c: c.__name__)
def test_blacklist_override_in_any_style_refuses_with_403(
    bt_wallets: Wallets, cls: type[BlockingScorer], monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = bt_wallets.stranger.hotkey.ss58_address
    monkeypatch.setattr(cls, "blocked", {stranger})
    with serve_scorer(bt_wallets.server, build(cls)) as (axon, scorer):
        refused = query(axon, bt_wallets.stranger, Ask(prompt="let me in"))
        assert status(refused) == 403
        assert refused.dendrite.status_message in ("blacklisted", f"{stranger} is blocked")
        assert scorer._organic_queue.size == 0

        reply = query(axon, bt_wallets.client, Ask(prompt="hello"))
        assert status(reply) == 200
        assert [entry["prompt"] for entry in drain(scorer)] == ["hello"]
        assert all(isinstance(seen, Ask) for seen in scorer.blacklist_calls)
        assert len(scorer.blacklist_calls) == 2


@needs_axon
def test_allow_list_refuses_other_hotkeys_before_the_user_blacklist(bt_wallets: Wallets) -> None:
    client = bt_wallets.client.hotkey.ss58_address
    with serve_scorer(bt_wallets.server, build(BlockBuiltinTuple, allowed_hotkeys=[client])) as (
        axon,
        scorer,
    ):
        refused = query(axon, bt_wallets.stranger, Ask(prompt="let me in"))
        assert status(refused) == 403
        assert "allowed_hotkeys" in refused.dendrite.status_message
        assert scorer.blacklist_calls == []

        reply = query(axon, bt_wallets.client, Ask(prompt="hello"))
        assert status(reply) == 200
        assert len(scorer.blacklist_calls) == 1
        assert [entry["hotkey"] for entry in drain(scorer)] == [client]


@needs_axon
def test_allow_list_works_without_a_blacklist_override(bt_wallets: Wallets) -> None:
    client = bt_wallets.client.hotkey.ss58_address
    with serve_scorer(bt_wallets.server, build(AskScorer, allowed_hotkeys={client})) as (
        axon,
        scorer,
    ):
        assert status(query(axon, bt_wallets.stranger, Ask(prompt="no"))) == 403
        assert status(query(axon, bt_wallets.client, Ask(prompt="yes"))) == 200
        assert [entry["prompt"] for entry in drain(scorer)] == ["yes"]


@needs_axon
def test_allow_list_reads_the_settings_even_when_config_is_shadowed(bt_wallets: Wallets) -> None:
    class Shadowing(AskScorer):
        config = {"allowed_hotkeys": None}  # a subclass's own attribute of that name

    client = bt_wallets.client.hotkey.ss58_address
    with serve_scorer(bt_wallets.server, build(Shadowing, allowed_hotkeys=[client])) as (
        axon,
        scorer,
    ):
        assert status(query(axon, bt_wallets.stranger, Ask(prompt="no"))) == 403
        assert scorer._organic_queue.size == 0


# -- priority --------------------------------------------------------------------------


@needs_axon
def test_priority_hook_is_called_for_each_request_and_its_failure_refuses(
    bt_wallets: Wallets,
) -> None:
    class Prioritising(AskScorer):
        def __init__(self, **kwargs: Any) -> None:
            self.priority_calls: list[str] = []
            super().__init__(**kwargs)

        def _priority_fn(self, synapse):  # type: ignore[no-untyped-def]
            hotkey = synapse.dendrite.hotkey
            self.priority_calls.append(hotkey)
            if hotkey == bt_wallets.stranger.hotkey.ss58_address:
                raise RuntimeError("no priority for strangers")
            return 3  # an int: the adapter hands bittensor a float

    with serve_scorer(bt_wallets.server, build(Prioritising)) as (axon, scorer):
        assert status(query(axon, bt_wallets.client, Ask(prompt="a"))) == 200
        assert scorer.priority_calls == [bt_wallets.client.hotkey.ss58_address]

        assert status(query(axon, bt_wallets.stranger, Ask(prompt="b"))) == 500
        assert [entry["prompt"] for entry in drain(scorer)] == ["a"]


# -- verify --------------------------------------------------------------------------


class Verifying(AskScorer):
    """Accepts or refuses by the ``verdict`` class attribute; records every call."""

    verdict: typing.ClassVar[Any] = True

    def __init__(self, **kwargs: Any) -> None:
        self.verify_calls: list[Any] = []
        super().__init__(**kwargs)

    async def _verify_fn(self, synapse: Ask) -> bool:
        self.verify_calls.append(synapse)
        if isinstance(self.verdict, BaseException):
            raise self.verdict
        return typing.cast(bool, self.verdict)


class VerifyingSync(Verifying):
    def _verify_fn(self, message):  # type: ignore[no-untyped-def,override]
        self.verify_calls.append(message)
        if isinstance(self.verdict, BaseException):
            raise self.verdict
        return self.verdict


@needs_axon
@pytest.mark.parametrize("cls", [Verifying, VerifyingSync], ids=["async", "sync"])
@pytest.mark.parametrize(
    ("verdict", "expected"),
    [(True, 200), (None, 200), (False, 403), (ValueError("bad prompt"), 403)],
    ids=["true", "none", "false", "raises"],
)
def test_verify_override_accepts_or_refuses_with_403(
    bt_wallets: Wallets,
    cls: type[Verifying],
    verdict: Any,
    expected: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cls, "verdict", verdict)
    with serve_scorer(bt_wallets.server, build(cls)) as (axon, scorer):
        reply = query(axon, bt_wallets.client, Ask(prompt="hi"))
        assert status(reply) == expected
        assert len(scorer.verify_calls) == 1
        assert scorer._organic_queue.size == (1 if expected == 200 else 0)


def _signed_request(axon: Any, wallet: Any, prompt: str) -> tuple[str, dict[str, str], Any]:
    """The URL, headers and JSON body a dendrite signed by ``wallet`` would send."""
    dendrite = offline_dendrite(wallet)
    synapse = dendrite.preprocess_synapse_for_request(axon.info(), Ask(prompt=prompt), timeout=WAIT)
    url = f"http://127.0.0.1:{axon.port}/Ask"
    return url, synapse.to_headers(), synapse.model_dump()


def _tampered(headers: dict[str, str]) -> dict[str, str]:
    signature = headers["bt_header_dendrite_signature"]
    flipped = "1" if signature[-1] != "1" else "2"
    return {**headers, "bt_header_dendrite_signature": signature[:-1] + flipped}


def _unsigned(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "bt_header_dendrite_signature"}


@needs_axon
@pytest.mark.parametrize("spoil", [_tampered, _unsigned], ids=["tampered", "missing"])
@pytest.mark.parametrize("cls", [Verifying, AskScorer], ids=["permissive-verify", "no-verify"])
def test_bad_or_missing_signature_is_refused_even_with_a_permissive_verify(
    bt_wallets: Wallets, cls: type[AskScorer], spoil: Any
) -> None:
    with serve_scorer(bt_wallets.server, build(cls)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "sneaky")
        with httpx.Client(timeout=WAIT) as http:
            refused = http.post(url, headers=spoil(headers), json=body)
            assert refused.status_code == 401
            assert scorer._organic_queue.size == 0
            assert getattr(scorer, "verify_calls", []) == []

            # The same request, unspoiled, goes through: only the signature differed.
            accepted = http.post(url, headers=headers, json=body)
            assert accepted.status_code == 200
            assert scorer._organic_queue.size == 1


@needs_axon
def test_impersonating_an_allowed_hotkey_is_refused(bt_wallets: Wallets) -> None:
    client = bt_wallets.client.hotkey.ss58_address
    with serve_scorer(bt_wallets.server, build(Verifying, allowed_hotkeys=[client])) as (
        axon,
        scorer,
    ):
        # The stranger claims the trusted hotkey but can only sign with its own key.
        dendrite = offline_dendrite(bt_wallets.stranger)
        synapse = dendrite.preprocess_synapse_for_request(axon.info(), Ask(prompt="x"), WAIT)
        forged = bt_wallets.stranger.hotkey.sign(
            f"{synapse.dendrite.nonce}.{client}.{synapse.axon.hotkey}."
            f"{synapse.dendrite.uuid}.{synapse.body_hash}"
        )
        synapse.dendrite.hotkey = client
        synapse.dendrite.signature = f"0x{forged.hex()}"
        response = httpx.post(
            f"http://127.0.0.1:{axon.port}/Ask",
            headers=synapse.to_headers(),
            json=synapse.model_dump(),
            timeout=WAIT,
        )
        assert response.status_code == 401
        assert scorer._organic_queue.size == 0
        assert scorer.verify_calls == []


@needs_axon
def test_a_replayed_request_is_refused_even_with_a_permissive_verify(bt_wallets: Wallets) -> None:
    with serve_scorer(bt_wallets.server, build(Verifying)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "once")
        with httpx.Client(timeout=WAIT) as http:
            assert http.post(url, headers=headers, json=body).status_code == 200
            assert http.post(url, headers=headers, json=body).status_code == 401
        assert [entry["prompt"] for entry in drain(scorer)] == ["once"]
        assert len(scorer.verify_calls) == 1


@needs_axon
@pytest.mark.parametrize(
    "edit",
    [
        {},
        {"bt_header_dendrite_version": "100"},  # bittensor's pre-7.2 nonce rules
        {"timeout": "1000000.0"},  # widens bittensor's own freshness window
    ],
    ids=["unchanged", "old-version", "huge-timeout"],
)
def test_a_replay_with_unsigned_headers_edited_is_refused(
    bt_wallets: Wallets, edit: dict[str, str]
) -> None:
    with serve_scorer(bt_wallets.server, build(AskScorer)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "once")
        with httpx.Client(timeout=WAIT) as http:
            assert http.post(url, headers=headers, json=body).status_code == 200
            replayed = http.post(url, headers={**headers, **edit}, json=body)
        assert replayed.status_code == 401
        assert [entry["prompt"] for entry in drain(scorer)] == ["once"]


@needs_axon
def test_freshness_is_the_signed_nonces_whatever_the_timeout_header_says(
    bt_wallets: Wallets,
) -> None:
    def build_short_lived(axon: Any) -> AskScorer:
        scorer = AskScorer()
        attach_axon(
            scorer,
            axon,
            settings=IntakeSettings(max_age=0.5, allowed_skew=0),
            allowed_hotkeys=ANY_HOTKEY,
        )
        return scorer

    with serve_scorer(bt_wallets.server, build_short_lived) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "late")
        time.sleep(0.6)  # older than max_age when it arrives
        edited = {**headers, "timeout": "1000000.0", "bt_header_dendrite_version": "100"}
        with httpx.Client(timeout=WAIT) as http:
            refused = http.post(url, headers=edited, json=body)
        assert refused.status_code == 401
        assert "more than 0.5s ago" in refused.headers.get("bt_header_axon_status_message", "")
        assert scorer._organic_queue.size == 0


@needs_axon
@pytest.mark.parametrize(
    "edit",
    [{}, {"bt_header_dendrite_version": "100", "timeout": "1000000.0"}],
    ids=["unchanged", "edited"],
)
def test_a_request_replayed_to_a_restarted_axon_is_refused(
    bt_wallets: Wallets, edit: dict[str, str]
) -> None:
    with serve_scorer(bt_wallets.server, build(AskScorer)) as (axon, first):
        url, headers, body = _signed_request(axon, bt_wallets.client, "captured")
        with httpx.Client(timeout=WAIT) as http:
            assert http.post(url, headers=headers, json=body).status_code == 200
    # The validator restarts: a new axon and scorer, bittensor's nonce memory empty (as it
    # is once its entries expire), so edited unsigned headers pass bittensor's own check.
    with serve_scorer(bt_wallets.server, build(AskScorer)) as (axon, scorer):
        url = f"http://127.0.0.1:{axon.port}/Ask"
        with httpx.Client(timeout=WAIT) as http:
            replayed = http.post(url, headers={**headers, **edit}, json=body)
        assert replayed.status_code == 401
        assert "before this intake started" in replayed.headers["bt_header_axon_status_message"]
        assert scorer._organic_queue.size == 0
    assert [entry["prompt"] for entry in drain(first)] == ["captured"]


@needs_axon
def test_hooks_and_handler_see_the_signed_caller_not_the_bodys_claim(
    bt_wallets: Wallets,
) -> None:
    class Seeing(BlockBuiltinTuple):
        async def _on_organic_entry(self, synapse: Ask) -> Any:
            self.handler_saw = synapse.dendrite.hotkey
            return synapse

    with serve_scorer(bt_wallets.server, build(Seeing)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "who am i")
        body["dendrite"]["hotkey"] = bt_wallets.stranger.hotkey.ss58_address  # the body lies
        with httpx.Client(timeout=WAIT) as http:
            assert http.post(url, headers=headers, json=body).status_code == 200
        client = bt_wallets.client.hotkey.ss58_address
        assert [s.dendrite.hotkey for s in scorer.blacklist_calls] == [client]
        assert scorer.handler_saw == client


# -- streaming -----------------------------------------------------------------------

TOKENS = ("organic ", "tokens ", "stream ", "back")


class Streamer(Recorder):
    """Streams TOKENS to the caller and queues the full text once it is sent.

    After the first token it waits until the caller has it: the response is
    really streamed, not buffered and sent whole.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.first_token_seen = threading.Event()
        super().__init__(**kwargs)

    async def _on_organic_entry(self, synapse: StreamAsk) -> Any:
        async def token_streamer(send: Any) -> None:
            sent = []
            for index, token in enumerate(TOKENS):
                await send(
                    {"type": "http.response.body", "body": token.encode(), "more_body": True}
                )
                sent.append(token)
                if index == 0:
                    seen = await asyncio.to_thread(self.first_token_seen.wait, WAIT)
                    assert seen, "the caller never received the first token"
            self._organic_queue.add({"prompt": synapse.prompt, "completion": "".join(sent)})

        return synapse.create_streaming_response(token_streamer)


@needs_axon
def test_streamed_response_reaches_the_caller_while_its_record_is_queued(
    bt_wallets: Wallets,
) -> None:
    with serve_scorer(bt_wallets.server, lambda axon: Streamer(axon=axon)) as (axon, scorer):

        def on_chunk(chunk: Any) -> None:
            scorer.first_token_seen.set()

        chunks, final = asyncio.run(
            astream(axon, bt_wallets.client, StreamAsk(prompt="tell me"), on_chunk)
        )
        assert "".join(chunks) == "".join(TOKENS)
        assert chunks[0] == TOKENS[0]
        assert status(final) == 200
        assert drain(scorer) == [{"prompt": "tell me", "completion": "".join(TOKENS)}]


# -- construction --------------------------------------------------------------------


class NoAnnotation(Recorder):
    async def _on_organic_entry(self, synapse):  # type: ignore[no-untyped-def]
        return synapse


class NotASynapse(Recorder):
    async def _on_organic_entry(self, synapse: Other) -> Any:
        return synapse


class BareSynapse(Recorder):
    async def _on_organic_entry(self, synapse: bt.Synapse) -> Any:
        return synapse


class Unresolvable(Recorder):
    async def _on_organic_entry(self, synapse: NoSuchSynapse) -> Any:  # noqa: F821
        return synapse


@needs_axon
@pytest.mark.parametrize(
    "cls", [NoAnnotation, NotASynapse, BareSynapse, Unresolvable], ids=lambda c: c.__name__
)
def test_entry_without_a_synapse_annotation_fails_at_construction(
    bt_wallets: Wallets, cls: type[Recorder]
) -> None:
    with (
        running_axon(bt_wallets.server) as axon,
        pytest.raises(TypeError, match=r"_on_organic_entry"),
    ):
        cls(axon=axon)


@needs_axon
def test_non_axon_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="bittensor Axon"):
        AskScorer(axon=object())


@needs_axon
def test_second_handler_for_the_same_synapse_fails_at_construction(bt_wallets: Wallets) -> None:
    with (
        serve_scorer(bt_wallets.server, build(AskScorer)) as (axon, _),
        pytest.raises(ValueError, match="already has a handler for Ask"),
    ):
        AskScorer(axon=axon)


@needs_axon
def test_the_axon_gets_the_gates_screen_and_verify_and_no_priority_pool(
    bt_wallets: Wallets,
) -> None:
    # bittensor's priority pool does not order requests; the gate's admission does.
    with serve_scorer(bt_wallets.server, build(BlockTypingTuple)) as (axon, _):
        assert axon.blacklist_fns["Ask"] is not None
        assert axon.verify_fns["Ask"] is not None
        assert axon.priority_fns["Ask"] is None


@pytest.mark.skipif(HAS_AXON, reason="bittensor 9/10 have an axon")
def test_axon_on_bittensor_11_points_to_the_signed_http_intake() -> None:
    with pytest.raises(RuntimeError, match=r"organic_scoring\.http"):
        AskScorer(axon=object())


# -- benchmark smoke -----------------------------------------------------------------


def test_bench_axon_runs() -> None:
    from benchmarks import bench_axon

    rows = bench_axon.run(quick=True)
    if not HAS_AXON:
        assert rows == []
        return
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"name", "ours_rps", "bare_rps", "ratio"}
        assert row["ours_rps"] > 0
        assert row["bare_rps"] > 0
    for row in rows[:2]:  # throughput, ours against a bare handler
        assert row["ratio"] == pytest.approx(row["ours_rps"] / row["bare_rps"])
    refusal = rows[2]  # cost: an outsider's refusal against a valid request
    assert refusal["ratio"] == pytest.approx(refusal["bare_rps"] / refusal["ours_rps"])


# -- the screen in front of bittensor's axon: cheap refusals, 4xx never 500 ----------------


if HAS_AXON:

    class Unsigned(bt.Synapse):  # type: ignore[misc]
        """bittensor's default: required_hash_fields is empty, no field is signed."""

        prompt: str = ""

    class UnsignedScorer(Recorder):
        async def _on_organic_entry(self, synapse: Unsigned) -> Unsigned:
            return synapse


def _attach_screened(**limits: Any) -> Any:
    return attacher(AskScorer, ANY_HOTKEY, **limits)


def _post(url: str, headers: Any, body: Any) -> httpx.Response:
    with httpx.Client(timeout=WAIT) as http:
        if isinstance(body, bytes):
            return http.post(url, headers=headers, content=body)
        return http.post(url, headers=headers, json=body)


@needs_axon
def test_repeated_authentication_headers_are_refused_not_last_one_wins(
    bt_wallets: Wallets,
) -> None:
    with serve_scorer(bt_wallets.server, _attach_screened()) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "twice")
        raw = [(k, v) for k, v in headers.items()]
        raw.insert(0, ("bt_header_dendrite_hotkey", bt_wallets.stranger.hotkey.ss58_address))
        refused = _post(url, raw, body)
        assert refused.status_code == 400
        assert "repeated" in refused.json()["message"]
        assert refused.headers["bt_header_axon_status_code"] == "400"
        assert scorer._organic_queue.size == 0


@needs_axon
@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (lambda body: b"{not json", 400),
        (lambda body: json.dumps({**body, "prompt": {"a": 1}}).encode(), 422),
    ],
    ids=["not-json", "wrong-type"],
)
def test_a_body_that_is_not_the_synapse_gets_4xx_not_500(
    bt_wallets: Wallets, edit: Any, status: int
) -> None:
    with serve_scorer(bt_wallets.server, _attach_screened()) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "typed")
        refused = _post(url, {**headers, "content-type": "application/json"}, edit(body))
        assert refused.status_code == status
        assert scorer._organic_queue.size == 0


@needs_axon
def test_a_body_over_the_limit_or_too_slow_is_refused_before_bittensor(
    bt_wallets: Wallets,
) -> None:
    with serve_scorer(
        bt_wallets.server, _attach_screened(max_body_bytes=2048, body_timeout=0.5)
    ) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "x" * 4096)
        assert _post(url, headers, body).status_code == 413
        url, headers, body = _signed_request(axon, bt_wallets.client, "slow")
        sent = json.dumps(body).encode()
        lines = ["POST /Ask HTTP/1.1", "Host: x", f"Content-Length: {len(sent)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        with socket.create_connection(("127.0.0.1", axon.port), timeout=WAIT) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + sent[:5])
            assert sock.recv(64).split(b" ", 2)[1] == b"408"
        assert scorer._organic_queue.size == 0


@needs_axon
def test_bodies_read_before_bittensor_checks_the_signature_share_the_budget(
    bt_wallets: Wallets,
) -> None:
    limits = {"max_body_bytes": 2048, "max_unverified_bytes_per_hotkey": 2048}
    with serve_scorer(bt_wallets.server, _attach_screened(**limits)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "held")
        with _held_body(axon.port, headers):
            wait_until(lambda: scorer_gate(axon).budget.held == 2048, "the body to be held")
            url, headers, body = _signed_request(axon, bt_wallets.client, "next")
            refused = _post(url, headers, body)
            assert refused.status_code == 429  # this hotkey's share is taken
            assert refused.headers["retry-after"] == "1"
        wait_until(lambda: scorer_gate(axon).budget.held == 0, "the share to come back")
        url, headers, body = _signed_request(axon, bt_wallets.client, "after")
        assert _post(url, headers, body).status_code == 200
        assert scorer._organic_queue.size == 1


@needs_axon
def test_a_slow_body_from_another_address_leaves_the_hotkey_its_share_here(
    bt_wallets: Wallets,
) -> None:
    # Anyone can claim an allowed hotkey: the share is per claimed hotkey and address.
    limits = {"max_body_bytes": 2048, "max_unverified_bytes_per_hotkey": 2048}
    with serve_scorer(bt_wallets.server, _attach_screened(**limits)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "held")
        with _held_body(axon.port, headers, source="127.0.0.2"):
            wait_until(lambda: scorer_gate(axon).budget.held == 2048, "the body to be held")
            url, headers, body = _signed_request(axon, bt_wallets.client, "next")
            assert _post(url, headers, body).status_code == 200
        assert scorer._organic_queue.size == 1


@needs_axon
def test_one_address_claiming_many_hotkeys_leaves_room_for_callers_elsewhere(
    bt_wallets: Wallets,
) -> None:
    # Under ANY_HOTKEY anyone may claim any hotkey: one address claiming several holds
    # at most all of the budget but one hotkey's share.
    from support.identity import hotkey

    limits = {
        "max_body_bytes": 2048,
        "max_unverified_bytes": 4 * 2048,
        "max_unverified_bytes_per_hotkey": 2048,
    }
    with serve_scorer(bt_wallets.server, _attach_screened(**limits)) as (axon, scorer):
        url, headers, body = _signed_request(axon, bt_wallets.client, "held")
        with contextlib.ExitStack() as stack:
            for n, name in enumerate(("one", "two", "three", "four")):
                claimed = {**headers, "bt_header_dendrite_hotkey": hotkey(name)}
                sock = stack.enter_context(_held_body(axon.port, claimed, source="127.0.0.2"))
                if n < 3:
                    wait_until(
                        lambda held=2048 * (n + 1): scorer_gate(axon).budget.held == held,
                        "a body held",
                    )
            time.sleep(0.3)  # the fourth is answered, or held
            url, headers, body = _signed_request(axon, bt_wallets.client, "mine")
            assert _post(url, headers, body).status_code == 200
            assert sock.recv(64).split(b" ", 2)[1] == b"503"  # the fourth
        assert scorer._organic_queue.size == 1


def _held_body(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> socket.socket:
    """A connection from ``source`` (any loopback address) that sent a request's headers,
    declaring a 2048-byte body, and one byte of it; the rest never comes."""
    lines = ["POST /Ask HTTP/1.1", "Host: x", "Content-Length: 2048"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT, source_address=(source, 0))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"{")
    return sock


def scorer_gate(axon: Any) -> Any:
    return axon._organic_scoring_screens["/Ask"].gate


@needs_axon
def test_a_synapse_that_signs_no_field_is_refused_unless_allowed(bt_wallets: Wallets) -> None:
    with running_axon(bt_wallets.server) as axon:
        with pytest.raises(ValueError, match="required_hash_fields"):
            attach_axon(UnsignedScorer(), axon, allowed_hotkeys=ANY_HOTKEY)
        attach_axon(UnsignedScorer(), axon, allowed_hotkeys=ANY_HOTKEY, allow_unsigned_body=True)
