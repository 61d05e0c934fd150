"""Attacks on the intake from a hostile caller's side, each against a real server on
127.0.0.1: what a request that should be refused gets, and whether it was queued."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from organic_scoring._compat import HAS_AXON
from organic_scoring.axon import attach_axon
from organic_scoring.intake import IntakeSettings
from support.axons import (
    BITTENSOR_WARNINGS,
    WAIT,
    Wallets,
    make_wallets,
    offline_dendrite,
    serve_scorer,
)
from support.scorers import Recorder

needs_axon = pytest.mark.skipif(not HAS_AXON, reason="bittensor 11 has no axon")
pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]

if HAS_AXON:
    from support.axons import Ask

    class AskScorer(Recorder):
        """Queues the prompt with the hotkey bittensor verified."""

        async def _on_organic_entry(self, synapse: Ask) -> Ask:
            self._organic_queue.add({"prompt": synapse.prompt, "hotkey": synapse.dendrite.hotkey})
            return synapse


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

    def attach(axon: Any) -> Any:
        scorer = AskScorer()
        settings = IntakeSettings(allowed_skew=0)
        attach_axon(scorer, axon, allowed_hotkeys=[allowed], settings=settings)
        return scorer

    with serve_scorer(bt_wallets.server, attach) as (axon, scorer):
        url, headers, body = _signed(axon, bt_wallets.stranger, "smuggled")
        raw = [(k, v) for k, v in headers.items() if k != "bt_header_dendrite_hotkey"]
        raw.insert(0, ("bt_header_dendrite_hotkey", allowed))  # what the screen reads
        raw.append((name, headers["bt_header_dendrite_hotkey"]))  # what bittensor reads
        with httpx.Client(timeout=WAIT) as http:
            response = http.post(url, headers=raw, json=body)
        assert scorer._organic_queue.size == 0, scorer._organic_queue.sample()
        assert response.status_code in (400, 401)
