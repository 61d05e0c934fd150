"""The signing client's errors say what the intake said, on every protocol here."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.errors import OrganicRequestError
from organic_scoring.http import OrganicClient, create_app, serve_in_thread
from organic_scoring.intake import IntakeSettings
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import Job, parity_scorer

pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks")]

PROTOCOLS = ["btauth/1", "epistula"] if HAS_HTTP_AUTH else ["epistula"]


class Order(BaseModel):
    """A request with several fields, to get several validation errors at once."""

    text: str
    count: int
    size: int
    colour: str
    note: str


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_422_names_its_first_field_errors(wallets: Wallets, protocol: str) -> None:  # noqa: F811
    scorer = parity_scorer(Order)
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol=protocol,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )

    async def call(payload: object) -> OrganicRequestError:
        url = server.url + "/organic"
        async with OrganicClient(
            wallets.client, url, wallets.validator_hotkey, protocol=protocol
        ) as client:
            with pytest.raises(OrganicRequestError) as info:
                await client.call(payload)
        return info.value

    with serve_in_thread(app) as server:
        one = asyncio.run(call({"text": 5, "count": 1, "size": 1, "colour": "red", "note": ""}))
        many = asyncio.run(call({"count": "many"}))
        shape = asyncio.run(call([1, 2]))
    assert one.status_code == 422
    assert str(one) == (
        "422: request body does not match the schema (text: Input should be a valid string)"
    )
    # The first three errors, then how many more there were.
    assert str(many).startswith("422: request body does not match the schema (text: Field")
    assert "count: Input should be a valid integer" in str(many)
    assert str(many).endswith("; and 2 more)")
    assert str(shape) == (
        "422: request body does not match the schema (body: Input should be an object)"
    )
    assert str(OrganicRequestError(403, "refused")) == "403: refused"


def test_the_client_waits_out_a_new_intakes_settling_window_signing_each_attempt(
    wallets: Wallets,  # noqa: F811
) -> None:
    """A freshly started intake with an in-memory nonce store puts requests off (503,
    Retry-After) for allowed_skew seconds; the client waits and signs again."""
    scorer = parity_scorer(Job)
    hotkey = wallets.validator_hotkey
    app = create_app(scorer, hotkey_ss58=hotkey, protocol="epistula", allowed_hotkeys=ANY_HOTKEY)
    seen: list[str] = []

    async def call() -> Any:
        async with OrganicClient(
            wallets.client,
            "http://intake/organic",
            wallets.validator_hotkey,
            protocol="epistula",
            transport=httpx.ASGITransport(app=Recording(app, seen)),
        ) as client:
            return await client.send(Job(text="t"))

    response = asyncio.run(call())
    assert response.status_code == 200
    assert len(seen) >= 2  # put off at least once, then accepted
    assert len(set(seen)) == len(seen)  # a new signature (a new UUID) every attempt
    with_no_retries = OrganicClient(
        wallets.client, "http://x/organic", wallets.validator_hotkey, retries=0
    )
    assert with_no_retries.retries == 0
    asyncio.run(with_no_retries.aclose())
    with pytest.raises(ValueError, match="max_in_flight"):
        OrganicClient(wallets.client, "http://x/organic", "5F", max_in_flight=0)


class Recording:
    """An ASGI app that notes each request's Epistula UUID before passing it on."""

    def __init__(self, app: Any, seen: list[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(headers.get(b"epistula-uuid", b"").decode())
        await self.app(scope, receive, send)
