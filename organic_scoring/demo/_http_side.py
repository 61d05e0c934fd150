"""The demo's signed-HTTP intake (the ``http`` extra): the app, and a signing client as the user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import bittensor as bt
from pydantic import BaseModel

from organic_scoring.demo._scorer import Ask, DemoScorer, Opener
from organic_scoring.http import OrganicClient, create_app, serve_in_thread
from organic_scoring.wallet import throwaway_wallet as make_wallet

__all__ = ["DemoAnswer", "DemoPrompt", "HttpDemoScorer", "http_intake", "user_opener"]


class DemoPrompt(BaseModel):
    prompt: str


class DemoAnswer(BaseModel):
    completion: str


class HttpDemoScorer(DemoScorer):
    async def _on_organic_entry(self, request: DemoPrompt) -> DemoAnswer:
        return DemoAnswer(completion=await self.answer_organic(request.prompt))


def user_opener(user: Any, url: str, hotkey: str, protocol: str) -> Opener:
    """Users signing with ``user``'s wallet, sending to ``url``."""

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
) -> Iterator[tuple[DemoScorer, Opener, str]]:
    """Serve a scorer's signed-HTTP intake (``protocol``: the app's default if None) on
    127.0.0.1; yield it, a user opener and a description."""
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
