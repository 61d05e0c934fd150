"""The signing client's errors say what the intake said, on every protocol here."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.http import OrganicClient, OrganicRequestError, create_app, serve_in_thread
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import parity_scorer

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
    app = create_app(scorer, hotkey_ss58=wallets.validator_hotkey, protocol=protocol)

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
