"""IntakeSettings, and the gate's one pipeline driven through a wire of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from organic_scoring import ANY_HOTKEY
from organic_scoring.intake import IntakeSettings
from organic_scoring.intake._gate import Claim, Gate, Refused, Wire
from support.identity import hotkey
from support.scorers import Recorder

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]

FRIEND = hotkey("friend")
STRANGER = hotkey("stranger")


def test_the_defaults_are_the_documented_ones() -> None:
    settings = IntakeSettings()
    assert settings.model_dump() == {
        "max_age": 10.0,
        "allowed_skew": 2.0,
        "max_body_bytes": 1 << 20,
        "body_timeout": 10.0,
        "max_unverified_bytes": 16 << 20,
        "max_unverified_bytes_per_hotkey": 4 << 20,
        "max_concurrent": 32,
        "max_backlog": 256,
        "header_timeout": 10.0,
        "max_header_bytes": 32 * 1024,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_age", 0),
        ("max_age", float("nan")),
        ("allowed_skew", -1),
        ("max_body_bytes", 1.5),
        ("max_body_bytes", True),
        ("body_timeout", 0),
        ("max_unverified_bytes", 0),
        ("max_unverified_bytes_per_hotkey", "4"),
        ("max_concurrent", 0),
        ("max_backlog", -1),
        ("header_timeout", float("inf")),
        ("max_header_bytes", 1023),
    ],
)
def test_a_bad_value_fails_at_construction_naming_its_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        IntakeSettings(**{field: value})


def test_an_unknown_field_or_a_budget_smaller_than_a_body_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_bodybytes"):
        IntakeSettings(max_bodybytes=10)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="must hold at least one body of max_body_bytes"):
        IntakeSettings(max_body_bytes=2048, max_unverified_bytes_per_hotkey=1024)


def test_settings_are_frozen_values_and_seconds_may_be_whole_numbers() -> None:
    settings = IntakeSettings(max_age=30, allowed_skew=0)
    assert (settings.max_age, settings.allowed_skew) == (30.0, 0.0)
    with pytest.raises(ValidationError, match="frozen"):
        settings.max_age = 5  # type: ignore[misc]
    assert settings == IntakeSettings(max_age=30.0, allowed_skew=0.0)
    assert hash(settings) == hash(IntakeSettings(max_age=30.0, allowed_skew=0.0))


def test_the_gate_takes_the_settings_and_nothing_else() -> None:
    settings = IntakeSettings(max_age=30, max_concurrent=2, max_backlog=0)
    gate = Gate(Shop(), "test", settings, allowed_hotkeys=ANY_HOTKEY)
    assert gate.settings is settings
    assert gate.freshness.max_age == 30.0
    assert (gate.budget.total, gate.budget.per_hotkey) == (16 << 20, 4 << 20)
    with pytest.raises(TypeError, match="IntakeSettings"):
        Gate(Shop(), "test", {"max_age": 30}, allowed_hotkeys=ANY_HOTKEY)  # type: ignore[arg-type]


# -- the pipeline: one order, whatever the wire -------------------------------------------


class Order(BaseModel):
    item: str


class Shop(Recorder):
    async def _on_organic_entry(self, request: Order) -> Any:
        self._organic_queue.add(request.item)
        return f"sold {request.item}"


class ScriptedWire(Wire):
    """A transport of the test's own: headers and body given, every call recorded."""

    def __init__(self, claimed: str, body: bytes, *, signed: bool = True) -> None:
        self.claimed = claimed
        self.body = body
        self.signed = signed
        self.scope = {"type": "http", "client": ("127.0.0.1", 40000)}
        self.calls: list[str] = []
        self.answer: tuple[int, Any] | None = None
        self.sent = False

    async def receive(self) -> dict[str, Any]:  # type: ignore[override]
        self.calls.append("receive")
        if self.sent:
            await asyncio.Event().wait()  # nothing more: the caller stays
        self.sent = True
        return {"type": "http.request", "body": self.body, "more_body": False}

    def claim(self) -> Claim:
        self.calls.append("claim")
        return Claim(hotkey=self.claimed, signed_at_ns=time.time_ns(), nonce=time.time_ns())

    def content_length(self) -> str | None:
        self.calls.append("content_length")
        return str(len(self.body))

    def check(self, claim: Claim, body: bytes) -> Any:
        self.calls.append("check")
        if not self.signed:
            raise Refused(401, "bad signature")
        return {"caller": claim.hotkey}

    @contextlib.contextmanager
    def entered(self, claim: Claim, caller: Any) -> Iterator[Any]:
        self.calls.append("entered")
        yield caller

    def parse(self, body: bytes) -> Order:
        self.calls.append("parse")
        return Order.model_validate_json(body)

    async def respond(self, result: Any) -> int:
        self.calls.append("respond")
        self.answer = (200, result)
        return 200

    async def refuse(self, refused: Refused) -> None:
        self.calls.append("refuse")
        self.answer = (refused.status, refused.message)


def _gate(**limits: Any) -> Gate:
    settings = IntakeSettings(allowed_skew=0, **limits)
    return Gate(Shop(), "scripted", settings, allowed_hotkeys=[FRIEND])


def test_the_gate_runs_every_step_in_its_order_through_the_wire() -> None:
    gate = _gate()
    wire = ScriptedWire(FRIEND, b'{"item": "tea"}')
    assert asyncio.run(gate.serve(wire)) == 200
    assert wire.calls == [
        "claim",
        "content_length",
        "receive",
        "check",
        "entered",
        "parse",
        "respond",
    ]
    assert wire.answer == (200, "sold tea")
    assert gate.budget.held == 0


@pytest.mark.parametrize(
    ("wire", "status", "calls"),
    [
        (ScriptedWire(STRANGER, b'{"item": "tea"}'), 403, ["claim", "refuse"]),
        (ScriptedWire(FRIEND, b"x" * 100), 413, ["claim", "content_length", "refuse"]),
        (
            ScriptedWire(FRIEND, b'{"item": "tea"}', signed=False),
            401,
            ["claim", "content_length", "receive", "check", "refuse"],
        ),
        (
            ScriptedWire(FRIEND, b'{"item": 1}'),
            422,
            ["claim", "content_length", "receive", "check", "entered", "parse", "refuse"],
        ),
    ],
    ids=["outsider", "too-long", "forged", "not-the-model"],
)
def test_a_refusal_ends_the_pipeline_at_its_step(
    wire: ScriptedWire, status: int, calls: list[str]
) -> None:
    gate = _gate(max_body_bytes=64)
    if status == 422:  # the wire's parse raises pydantic's error: map it as transports do
        original = wire.parse

        def parse(body: bytes) -> Order:
            try:
                return original(body)
            except ValidationError:
                raise Refused(422, "not an order") from None

        wire.parse = parse  # type: ignore[method-assign]
    assert asyncio.run(gate.serve(wire)) == status
    assert wire.calls == calls
    assert wire.answer is not None
    assert wire.answer[0] == status
    assert gate.budget.held == 0  # the body's share came back whatever the refusal


class SlowWire(ScriptedWire):
    """A wire from ``host`` that declares a body of ``length`` bytes and never sends it."""

    def __init__(self, host: str, length: int) -> None:
        super().__init__(FRIEND, b"")
        self.scope = {"type": "http", "client": (host, 40000)}
        self.length = length

    async def receive(self) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def content_length(self) -> str | None:
        return str(self.length)


@pytest.mark.parametrize(
    "forgers",
    [
        ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"],
        ["127.0.0.2", "::ffff:127.0.0.2", "::ffff:7f00:2", "127.0.0.2"],
    ],
    ids=["one-ipv6-network", "ipv4-mapped-spellings"],
)
def test_the_spellings_and_networks_of_one_host_share_its_budget(forgers: list[str]) -> None:
    # A host has a whole /64 of IPv6 addresses and two spellings of its IPv4 one: none
    # of them is another address's share of the claimed hotkey, nor of the budget.
    gate = _gate(
        max_body_bytes=1024, max_unverified_bytes=4096, max_unverified_bytes_per_hotkey=1024
    )

    async def run() -> tuple[list[int], int]:
        statuses: list[int] = []
        tasks = []
        for host in forgers:
            task = asyncio.ensure_future(gate.receive(SlowWire(host, 1024)))
            await asyncio.sleep(0.01)
            if task.done():
                with pytest.raises(Refused) as refused:
                    task.result()
                statuses.append(refused.value.status)
            else:
                tasks.append(task)
                statuses.append(0)  # held
        genuine = ScriptedWire(FRIEND, b'{"item": "tea"}')
        genuine.scope = {"type": "http", "client": ("2001:db8:1::1", 40000)}
        answered = await gate.serve(genuine)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return statuses, answered

    statuses, answered = asyncio.run(run())
    assert statuses == [0, 429, 429, 429]
    assert answered == 200
    assert gate.budget.held == 0
