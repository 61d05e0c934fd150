"""The intake gate alone: each step, its refusal and its status, without a transport."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from organic_scoring import ANY_HOTKEY
from organic_scoring.intake import InMemoryNonceStore, IntakeSettings, permitted_validators
from organic_scoring.intake._gate import Gate, Refused
from organic_scoring.intake._replay import Freshness
from organic_scoring.intake._request_type import request_type_of
from support.identity import hotkey
from support.scorers import Recorder

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]


class Ask(BaseModel):
    text: str
    priority: Any = 0.0


class Hooked(Recorder):
    """Intake hooks whose answers a test sets; each records the thread it ran on."""

    def __init__(self, **kwargs: Any) -> None:
        self.blacklist_answer: Any = False
        self.verify_answer: Any = True
        self.threads: dict[str, int] = {}
        super().__init__(**kwargs)

    async def _on_organic_entry(self, request: Ask) -> Any:
        if request.text == "boom":
            raise RuntimeError("handler failed")
        self._organic_queue.add(request.text)
        return {"ok": request.text}

    async def _blacklist_fn(self, subject: Any) -> Any:
        if isinstance(self.blacklist_answer, BaseException):
            raise self.blacklist_answer
        return self.blacklist_answer

    def _verify_fn(self, request: Ask) -> Any:  # a plain function: runs on a worker thread
        self.threads["verify"] = threading.get_ident()
        if isinstance(self.verify_answer, BaseException):
            raise self.verify_answer
        return self.verify_answer

    async def _priority_fn(self, request: Ask) -> Any:
        if isinstance(request.priority, BaseException):
            raise request.priority
        return request.priority


def refusal(call: Any) -> Refused:
    """What ``call()`` (a step, sync or async) refuses with."""

    def step() -> None:
        result = call()
        if asyncio.iscoroutine(result):
            asyncio.run(result)

    with pytest.raises(Refused) as refused:
        step()
    return refused.value


# -- before the body ------------------------------------------------------------------


FRIEND, STRANGER = hotkey("friend"), hotkey("stranger")


def test_screen_refuses_hotkeys_outside_the_allow_list() -> None:
    gate = Gate(Hooked(allowed_hotkeys=[FRIEND]), "test")
    gate.screen(FRIEND)
    assert refusal(lambda: gate.screen(STRANGER)).status == 403
    Gate(Hooked(), "test", allowed_hotkeys=ANY_HOTKEY).screen(STRANGER)  # open on purpose


def test_an_intake_must_be_told_who_may_call() -> None:
    """Closed unless opened: no allow-list on the intake or the scorer is an error."""
    with pytest.raises(ValueError, match="allowed_hotkeys: say who may send"):
        Gate(Hooked(), "test")


def test_allowed_hotkeys_may_be_a_policy() -> None:
    asked: list[str] = []

    def only_friends(caller: str) -> bool:
        asked.append(caller)
        return caller == FRIEND

    gate = Gate(Hooked(), "test", allowed_hotkeys=only_friends)
    gate.screen(FRIEND)
    assert refusal(lambda: gate.screen(STRANGER)).status == 403
    assert asked == [FRIEND, STRANGER]

    def broken(caller: str) -> bool:
        raise RuntimeError("metagraph not synced")

    assert refusal(lambda: Gate(Hooked(), "t", allowed_hotkeys=broken).screen(FRIEND)).status == 500


def test_permitted_validators_follow_the_metagraph() -> None:
    metagraph = SimpleNamespace(hotkeys=[FRIEND, STRANGER], validator_permit=[True, False])
    gate = Gate(Hooked(), "test", allowed_hotkeys=permitted_validators(metagraph))
    gate.screen(FRIEND)
    assert refusal(lambda: gate.screen(STRANGER)).status == 403
    metagraph.validator_permit = [False, True]  # the validator re-synced its metagraph
    gate.screen(STRANGER)
    neurons = [SimpleNamespace(hotkey=FRIEND, validator_permit=True)]  # bittensor 11's shape
    gate = Gate(
        Hooked(), "t", allowed_hotkeys=permitted_validators(SimpleNamespace(neurons=neurons))
    )
    gate.screen(FRIEND)
    assert refusal(lambda: gate.screen(STRANGER)).status == 403


@pytest.mark.parametrize("prefix", [0, 2, 63, 64, 1000])
def test_one_key_has_one_name(prefix: int) -> None:
    """Another network prefix spells the same key differently: refused before the
    allow-list, so neither it nor the nonce store nor a hook sees a second name."""
    gate = Gate(Hooked(allowed_hotkeys=[hotkey("friend", prefix)]), "test")  # matched as keys
    assert gate.identify(FRIEND) == FRIEND
    gate.screen(FRIEND)
    refused = refusal(lambda: gate.identify(hotkey("friend", prefix)))
    assert refused.status == 400
    assert FRIEND in refused.message  # says how to write it


@pytest.mark.parametrize("claimed", ["", "5Friend", FRIEND[:-1] + "x", "1" * 48, "é" * 48])
def test_what_is_not_an_address_is_refused(claimed: str) -> None:
    gate = Gate(Hooked(), "test", allowed_hotkeys=ANY_HOTKEY)
    assert refusal(lambda: gate.identify(claimed)).status == 401


def test_freshness_refuses_stale_future_and_pre_start_requests() -> None:
    start = time.time_ns()
    fresh = Freshness(max_age=10, allowed_skew=2, started_ns=start, store=Persistent())
    now = start + 5 * 10**9
    assert fresh.problem(now, now) is None
    assert "more than 10s ago" in str(fresh.problem(now - 11 * 10**9, now))
    assert "in the future" in str(fresh.problem(now + 3 * 10**9, now))
    assert "before this intake started" in str(fresh.problem(start - 1, now))
    assert fresh.window == 12


class Persistent(InMemoryNonceStore):
    persistent = True


def test_a_restart_puts_off_what_the_previous_process_may_have_accepted() -> None:
    """A request signed up to allowed_skew ahead of our clock, accepted just before a
    restart, is still 'after the start' of the new process: with a store that forgot
    it, requests signed before start + allowed_skew are put off (503, Retry-After)."""
    started = time.time_ns()
    ahead = started + int(1.5e9)  # signed 1.5 s ahead, allowed (skew 2 s)
    forgetful = Freshness(max_age=10, allowed_skew=2, started_ns=started)
    assert forgetful.problem(ahead, started) is None
    assert forgetful.settling(ahead, started) == 2.0
    later = started + int(2.1e9)
    assert forgetful.problem(later, later) is None
    assert forgetful.settling(later, later) is None
    remembers = Freshness(max_age=10, allowed_skew=2, started_ns=started, store=Persistent())
    assert remembers.settling(ahead, started) is None  # its store saw the first one

    gate = Gate(Hooked(), "test", allowed_hotkeys=ANY_HOTKEY)
    refused = refusal(lambda: gate.check_fresh(time.time_ns() + int(1.5e9)))
    assert refused.status == 503
    assert refused.headers == {"Retry-After": "2"}


def test_a_gate_refuses_what_was_signed_before_it_started() -> None:
    signed = time.time_ns()
    gate = Gate(
        Hooked(), "test", allowed_hotkeys=ANY_HOTKEY, settings=IntakeSettings(allowed_skew=0.2)
    )
    refused = refusal(lambda: gate.check_fresh(signed))
    assert (refused.status, refused.message) == (
        401,
        "the request was signed before this intake started; sign it again",
    )
    assert refusal(lambda: gate.check_fresh(time.time_ns())).status == 503  # settling
    time.sleep(0.25)
    gate.check_fresh(time.time_ns())


# -- replay -------------------------------------------------------------------------------


def test_remember_refuses_a_replay_and_says_503_when_the_store_fails() -> None:
    gate = Gate(Hooked(), "test", allowed_hotkeys=ANY_HOTKEY, nonce_store=Persistent())
    now = time.time_ns()
    asyncio.run(gate.remember(FRIEND, 1, now))
    asyncio.run(gate.remember(FRIEND, "a-uuid", now))  # string nonces (Epistula) beside ints
    asyncio.run(gate.remember(STRANGER, 1, now))
    assert refusal(lambda: gate.remember(FRIEND, 1, now)).status == 401

    class Down:  # says nothing of blocking: called off the event loop, failing there
        retention = 60.0
        persistent = True

        def check_and_store(self, hotkey: str, nonce: int | str) -> bool:
            raise ConnectionError("the store is down")

    down = Gate(Hooked(), "t", nonce_store=Down(), allowed_hotkeys=ANY_HOTKEY)
    assert refusal(lambda: down.remember(FRIEND, 1, time.time_ns())).status == 503


def test_remember_checks_freshness_again_after_the_body() -> None:
    """Headers fresh when they arrived, body trickled past max_age: by then the first
    copy's nonce may be forgotten, so the request must be refused as stale."""
    store = Persistent(retention=12)
    gate = Gate(
        Hooked(),
        "t",
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(max_age=10),
        nonce_store=store,
    )
    signed = time.time_ns() - int(10.5e9)  # fresh at the headers, stale by now
    assert "more than 10s ago" in refusal(lambda: gate.remember(FRIEND, 7, signed)).message
    assert len(store) == 0  # nothing remembered for a refused request


def test_a_nonce_store_must_outlast_the_freshness_window() -> None:
    with pytest.raises(ValueError, match="replays in the gap"):
        Gate(
            Hooked(),
            "test",
            settings=IntakeSettings(max_age=30),
            nonce_store=InMemoryNonceStore(retention=10),
            allowed_hotkeys=ANY_HOTKEY,
        )
    with pytest.raises(TypeError, match="check_and_store"):
        Gate(Hooked(), "test", nonce_store=object(), allowed_hotkeys=ANY_HOTKEY)  # type: ignore[arg-type]


def test_the_in_memory_store_forgets_after_its_retention() -> None:
    store = InMemoryNonceStore(retention=0.05)
    assert store.check_and_store("5Key", 7)
    assert not store.check_and_store("5Key", 7)
    time.sleep(0.06)
    assert store.check_and_store("5Key", 8)  # the expired pair was swept on the way
    assert len(store) == 1
    with pytest.raises(ValueError, match="retention"):
        InMemoryNonceStore(retention=0)


# -- the hooks: one verdict rule, one priority rule ---------------------------------------


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (False, None),
        (None, None),
        ((False, "fine"), None),
        (True, "blacklisted"),
        ((True, "not you"), "not you"),
        ([True, "a list works too"], "a list works too"),
        ((True,), "blacklisted"),
    ],
)
def test_blacklist_verdicts(answer: Any, refused: str | None) -> None:
    scorer = Hooked()
    scorer.blacklist_answer = answer
    gate = Gate(scorer, "test", allowed_hotkeys=ANY_HOTKEY)
    if refused is None:
        asyncio.run(gate.blacklist("subject", "5Key"))
    else:
        assert (refusal(lambda: gate.blacklist("s", "5Key")).message) == refused


def test_a_blacklist_hook_that_raises_is_a_500() -> None:
    scorer = Hooked()
    scorer.blacklist_answer = RuntimeError("broken hook")
    refused = refusal(
        lambda: Gate(scorer, "test", allowed_hotkeys=ANY_HOTKEY).blacklist("s", "5Key")
    )
    assert (refused.status, refused.message) == (500, "internal error")


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (True, None),
        (None, None),  # the bittensor style: raise to refuse, return nothing to accept
        (False, "rejected by the validator"),
        ((False, "too long"), "too long"),
        (ValueError("no"), "rejected by the validator"),
    ],
)
def test_verify_verdicts_and_a_plain_hook_runs_off_the_loop(
    answer: Any, refused: str | None
) -> None:
    scorer = Hooked()
    scorer.verify_answer = answer
    gate = Gate(scorer, "test", allowed_hotkeys=ANY_HOTKEY)

    async def main() -> int:
        await gate.verify(Ask(text="x"), "5Key")
        return threading.get_ident()

    if refused is None:
        assert asyncio.run(main()) != scorer.threads["verify"]
    else:
        result = refusal(lambda: gate.verify(Ask(text="x"), "5Key"))
        assert (result.status, result.message) == (403, refused)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (2.5, 2.5),
        (-1, -1.0),
        (math.inf, math.inf),
        (math.nan, -math.inf),
        (10**400, math.inf),
        (-(10**400), -math.inf),
    ],
)
def test_priority_is_a_float_and_nan_ranks_last(value: Any, expected: float) -> None:
    assert asyncio.run(
        Gate(Hooked(), "test", allowed_hotkeys=ANY_HOTKEY).priority(
            Ask(text="x", priority=value), "5K"
        )
    ) == (expected)


@pytest.mark.parametrize("value", [True, "3", None, RuntimeError("broken")])
def test_a_priority_that_is_not_a_number_is_a_500(value: Any) -> None:
    gate = Gate(Hooked(), "test", allowed_hotkeys=ANY_HOTKEY)
    assert refusal(lambda: gate.priority(Ask(text="x", priority=value), "5K")).status == 500


def test_hooks_the_scorer_does_not_override_cost_nothing_and_refuse_nothing() -> None:
    class Plain(Recorder):
        async def _on_organic_entry(self, request: Ask) -> Any:
            return None

    gate = Gate(Plain(), "test", allowed_hotkeys=ANY_HOTKEY)

    async def main() -> Any:
        request = Ask(text="x")
        await gate.blacklist("subject", "5Key")
        await gate.verify(request, "5Key")
        return request, await gate.priority(request, "5Key")

    request, priority = asyncio.run(main())
    assert (request.text, priority) == ("x", 0.0)


# -- admission, handling, counting --------------------------------------------------------


def test_admission_orders_waiters_by_priority_and_refuses_past_the_backlog() -> None:
    gate = Gate(
        Hooked(),
        "test",
        settings=IntakeSettings(max_concurrent=1, max_backlog=2),
        allowed_hotkeys=ANY_HOTKEY,
    )
    order: list[str] = []

    async def enter(name: str, priority: float, hold: asyncio.Event | None = None) -> None:
        async with gate.admitted(priority) as admitted:
            assert admitted
            order.append(name)
            if hold is not None:
                await hold.wait()

    async def main() -> None:
        hold = asyncio.Event()
        first = asyncio.ensure_future(enter("first", 0, hold))
        await asyncio.sleep(0)
        low = asyncio.ensure_future(enter("low", 1))
        high = asyncio.ensure_future(enter("high", 5))
        await asyncio.sleep(0)
        assert gate.waiting == 2
        with pytest.raises(Refused) as full:
            async with gate.admitted(9):
                pass
        assert (full.value.status, full.value.headers) == (429, {"Retry-After": "1"})
        hold.set()
        await asyncio.gather(first, low, high)
        assert (gate.in_flight, gate.waiting) == (0, 0)

    asyncio.run(main())
    assert order == ["first", "high", "low"]


def test_a_waiter_whose_caller_leaves_gives_up_its_place() -> None:
    gate = Gate(
        Hooked(),
        "test",
        settings=IntakeSettings(max_concurrent=1, max_backlog=2),
        allowed_hotkeys=ANY_HOTKEY,
    )

    async def main() -> bool:
        hold, left = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with gate.admitted(0):
                await hold.wait()

        async def gone() -> None:
            await left.wait()

        async def waiter() -> bool:
            async with gate.admitted(1, gone) as admitted:
                return admitted

        first = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        second = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        left.set()
        stayed = await second
        assert gate.waiting == 0
        hold.set()
        await first
        return stayed

    assert asyncio.run(main()) is False
    assert gate.in_flight == 0


def test_handle_counts_acceptances_and_handler_errors_and_record_counts_answers() -> None:
    scorer = Hooked()
    gate = Gate(scorer, "my-transport", allowed_hotkeys=ANY_HOTKEY)

    async def main() -> Any:
        began = time.perf_counter()
        result = await gate.handle(Ask(text="hello"))
        gate.record(200, began)
        with pytest.raises(RuntimeError):
            await gate.handle(Ask(text="boom"))
        gate.record(500, began)
        gate.record(500, began)
        return result

    assert asyncio.run(main()) == {"ok": "hello"}
    stats = scorer.stats
    assert (stats.organic_accepted, stats.organic_handler_errors) == (1, 1)
    assert dict(stats.intake_requests["my-transport"]) == {200: 1, 500: 2}
    assert stats.as_dict()["intake_requests"] == {"my-transport": {200: 1, 500: 2}}


def test_the_gate_needs_a_scorer() -> None:
    with pytest.raises(TypeError, match="OrganicScoringBase"):
        Gate(object(), "test", allowed_hotkeys=ANY_HOTKEY)  # type: ignore[arg-type]


# -- the request type ---------------------------------------------------------------------


class Model(BaseModel):
    text: str


def test_the_request_type_is_the_first_parameters_annotation_even_as_a_string() -> None:
    class Stringly(Recorder):
        async def _on_organic_entry(self, request: Model, extra: NotImportable = None) -> Any:  # type: ignore[name-defined]  # noqa: F821
            return None

    Stringly._on_organic_entry.__annotations__["request"] = "Model"
    assert request_type_of(Stringly(), BaseModel) is Model


@pytest.mark.parametrize(
    ("annotation", "match"),
    [
        (None, "annotation: missing"),
        (Any, "must be annotated with a pydantic model"),
        (BaseModel, "must be annotated with a pydantic model"),
        ("Nowhere", "cannot resolve the annotation 'Nowhere'"),
    ],
)
def test_a_missing_or_wrong_request_type_is_a_clear_error(annotation: Any, match: str) -> None:
    class Odd(Recorder):
        async def _on_organic_entry(self, request):  # type: ignore[no-untyped-def]
            return None

    if annotation is not None:
        Odd._on_organic_entry.__annotations__["request"] = annotation
    with pytest.raises(TypeError, match=match):
        request_type_of(Odd(), BaseModel, "; a hint")


def test_a_millisecond_timestamp_is_in_the_future_only_from_its_earliest_moment() -> None:
    """Epistula signs to the millisecond: its claim is that millisecond's last
    nanosecond, so with allowed_skew=0 a request checked within that very millisecond
    would look ahead of the clock; judged from the millisecond's start it is not."""
    started = 1_000_000_000_000_000_000
    fresh = Freshness(max_age=10, allowed_skew=0, started_ns=started, store=Persistent())
    now = started + 5_000_000_000 + 300_000  # 0.3 ms into a millisecond
    latest = now - 300_000 + 999_999  # the claim of a request signed in that millisecond
    assert "in the future" in str(fresh.problem(latest, now))
    assert fresh.problem(latest, now, resolution_ns=1_000_000) is None
    assert "in the future" in str(fresh.problem(latest + 1_000_000, now, resolution_ns=1_000_000))


def test_a_millisecond_timestamp_goes_stale_from_its_earliest_moment() -> None:
    """Judged from its last nanosecond, an Epistula request accepted at the edge of
    allowed_skew stayed fresh up to a millisecond longer than ``max_age +
    allowed_skew`` after it was accepted: a store keeping nonces exactly that long
    (which check_retention accepts) had forgotten it, and a replay got in."""
    started = 1_000_000_000_000_000_000
    fresh = Freshness(max_age=10, allowed_skew=2, started_ns=started, store=Persistent())
    accepted = started + 5_000_000_000
    earliest = accepted + 2_000_000_000  # as far ahead as allowed_skew lets it be
    latest = earliest + 999_999
    assert fresh.problem(latest, accepted, resolution_ns=1_000_000) is None
    forgotten = accepted + int(fresh.window * 1e9)  # a store with retention == window
    assert fresh.problem(latest, forgotten, resolution_ns=1_000_000) is None
    assert "ago" in str(fresh.problem(latest, forgotten + 1, resolution_ns=1_000_000))
