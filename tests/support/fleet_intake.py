"""An intake worker process of a fleet, for the fleet tests.

``python -m support.fleet_intake REDIS_URL NAME PORT VALIDATOR_HOTKEY`` serves the
signed-HTTP intake (the installed bittensor's default protocol) on 127.0.0.1:PORT
for an intake-only scorer whose ``_on_organic_entry`` stores each request in the
shared RedisOrganicQueue, with replay protection in a RedisNonceStore. It prints
``ready`` once serving; when stdin closes it stops, checks that no thread of ours is
left, and exits 0 (3 if something was left behind). The tests kill it -9 too.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from pydantic import BaseModel

from organic_scoring import ANY_HOTKEY, OrganicScoringBase
from organic_scoring.intake import IntakeSettings


class Ask(BaseModel):
    """An organic request of the fleet tests: a numbered prompt."""

    id: str
    text: str


class Taken(BaseModel):
    """The intake's answer: the request's number."""

    id: str


class IntakeOnly(OrganicScoringBase):
    """A scorer used only for its intake: it stores requests and never scores."""

    async def _on_organic_entry(self, request: Ask) -> Taken:
        await self._organic_queue.aadd(request.model_dump())
        return Taken(id=request.id)

    async def _query_miners(self, sample: Any) -> Any:
        raise NotImplementedError("an intake-only worker does not score")

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        raise NotImplementedError("an intake-only worker does not score")

    async def _set_weights(self, rewards: Any) -> None:
        raise NotImplementedError("an intake-only worker does not score")


def main() -> None:
    url, name, port, validator = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    from organic_scoring.http import create_app, serve_in_thread
    from organic_scoring.intake import RedisNonceStore
    from organic_scoring.organic_queue import RedisOrganicQueue

    queue = RedisOrganicQueue(url, name=name)
    nonces = RedisNonceStore(url)
    intake = IntakeOnly(organic_queue=queue)
    app = create_app(
        intake,
        hotkey_ss58=validator,
        nonce_store=nonces,
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    server = serve_in_thread(app, host="127.0.0.1", port=port)
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()
    nonces.close()
    queue.close()
    left = [t.name for t in threading.enumerate() if t.name.startswith("organic-scoring")]
    sys.exit(3 if left else 0)


if __name__ == "__main__":
    main()
