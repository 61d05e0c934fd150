"""The demo's signed-HTTP intake: the app, and a signing client as the user.

btauth/1 on bittensor 11, Epistula on any major; the ``http`` extra must be installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import bittensor as bt
from pydantic import BaseModel

from organic_scoring.demo._scorer import DemoScorer
from organic_scoring.http import OrganicClient, create_app, serve_in_thread
from organic_scoring.wallet import throwaway_wallet as make_wallet

__all__ = ["DemoAnswer", "DemoPrompt", "HttpDemoScorer", "http_intake", "user_opener"]


class DemoPrompt(BaseModel):
    """An organic request: a prompt."""

    prompt: str


class DemoAnswer(BaseModel):
    """The validator's answer to it."""

    completion: str


class HttpDemoScorer(DemoScorer):
    """The demo scorer, taking organic traffic over signed HTTP."""

    async def _on_organic_entry(self, request: DemoPrompt) -> DemoAnswer:
        return DemoAnswer(completion=await self.answer_organic(request.prompt))


Ask = Callable[[str], Any]


def user_opener(
    user: Any, url: str, hotkey: str, protocol: str
) -> Callable[[], contextlib.AbstractAsyncContextManager[Ask]]:
    """A factory of users: each opens a signing client whose ``ask(prompt)`` sends one
    organic request to ``url`` and returns the completion."""

    @contextlib.asynccontextmanager
    async def open_user() -> AsyncIterator[Ask]:
        async with OrganicClient(user, url, hotkey, protocol=protocol, timeout=5.0) as client:

            async def ask(prompt: str) -> str:
                answer = await client.call(DemoPrompt(prompt=prompt), DemoAnswer)
                return str(answer.completion)

            yield ask

    return open_user


@contextlib.contextmanager
def http_intake(
    directory: str, build: Callable[..., DemoScorer], protocol: str | None = None
) -> Iterator[tuple[DemoScorer, Callable[[], contextlib.AbstractAsyncContextManager[Ask]], str]]:
    """Serve a scorer's signed-HTTP intake on 127.0.0.1; yield it, a user factory, a description.

    ``protocol`` is ``"btauth/1"`` or ``"epistula"`` (default: btauth/1 where
    ``bt.http_auth`` exists, else Epistula). The user factory opens an
    :class:`~organic_scoring.http.OrganicClient` signing with it as a separate user
    wallet; its ``ask(prompt)`` sends one organic request.
    """
    validator, user = make_wallet(directory, "validator"), make_wallet(directory, "user")
    hotkey = validator.hotkey.ss58_address
    scorer = build(HttpDemoScorer)
    user_hotkey = user.hotkey.ss58_address
    app = create_app(scorer, hotkey_ss58=hotkey, protocol=protocol, allowed_hotkeys=[user_hotkey])
    chosen = app.state.organic_intake.protocol.name
    with serve_in_thread(app, host="127.0.0.1", port=0) as server:
        url = f"{server.url}/organic"
        open_user = user_opener(user, url, hotkey, chosen)
        try:
            yield scorer, open_user, f"bittensor {bt.__version__}, {chosen} signed HTTP at {url}"
        finally:
            scorer.stop()
