"""A validator shaped like the bittensor subnet template's, with signed-HTTP organic intake
(bittensor 11).

The same validator as ``template_validator_axon.py``, on bittensor 11, which has no
axon, dendrite or synapse. What changes:

* organic prompts arrive over ``btauth/1`` signed HTTP: ``create_app(scorer,
  hotkey_ss58=...)`` builds the intake, which verifies every request's signature
  before any hook runs, and ``serve_in_thread`` serves it; the request type is the
  pydantic model that ``_on_organic_entry``'s first parameter names;
* callers (a user, the subnet's API gateway) sign with ``OrganicClient``, and so does
  the validator when it queries miners, for each miner's hotkey;
* blocks and the metagraph come from a ``bt.SyncClient``, and so do the weights: a
  ``WeightSetter`` over the same client (thread-safe) sets the score book's weights
  whenever the chain allows, reading the subnet's weights version first.

What stays: the ``Validator`` with a synchronous ``run()`` loop, one ``forward()`` and
one ``increment_step()`` per step, ``allowed_hotkeys``, a ``_blacklist_fn``, a
``ScoreBook`` that the scorer only updates, and ``stop()`` on shutdown. The
chain-facing objects are handed to ``Validator``, so tests/test_examples.py runs this
file against local stand-ins for the chain, with the real signed-HTTP server, client
and miners on 127.0.0.1. On a subnet, with a registered hotkey
(``pip install 'organic-scoring[http]'``)::

    python examples/template_validator_http.py --netuid 1 --network finney \\
        --wallet.name validator --wallet.hotkey default --port 8091
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import bittensor as bt
import httpx
from pydantic import BaseModel, Field

from organic_scoring import OrganicScoringBase
from organic_scoring.errors import OrganicRequestError
from organic_scoring.http import (
    OrganicClient,
    OrganicServer,
    RequestInfo,
    caller_hotkey,
    create_app,
    serve_in_thread,
)
from organic_scoring.intake import permitted_validators
from organic_scoring.synth_dataset import SynthDatasetEntry, default_dataset
from organic_scoring.weights import ScoreBook, WeightSetter

log = logging.getLogger("validator")

MINER_PATH = "/task"
"""Where miners take the validator's queries (this subnet's choice)."""


class OrganicPrompt(BaseModel):
    """An organic request to the validator: a real user's prompt to score miners on."""

    prompt: str = Field(min_length=1, max_length=4096)


class Receipt(BaseModel):
    """The validator's answer to an organic request."""

    queued: bool


class MinerTask(BaseModel):
    """What the validator asks each miner."""

    prompt: str


class MinerAnswer(BaseModel):
    """What a miner answers."""

    completion: str | None = None


class ValidatorScoring(OrganicScoringBase):
    """The validator's scoring: organic prompts first, synthetic ones when it is quiet.

    The intake hooks run on the HTTP server's thread; the scoring hooks on the
    scorer's own thread and event loop.
    """

    def __init__(self, validator: Validator, **kwargs: Any) -> None:
        self.validator = validator
        super().__init__(**kwargs)

    # -- intake: once per organic request, after its signature checked out --------------

    async def _on_organic_entry(self, request: OrganicPrompt) -> Receipt:
        # The intake has checked the signature: caller_hotkey() is who sent this.
        log.debug(f"organic prompt from {caller_hotkey()}")
        # Queue the prompt in the synthetic samples' shape, so one code path scores both.
        sample = SynthDatasetEntry(roles=["user"], messages=[request.prompt], organic=True)
        self._organic_queue.add(sample)
        return Receipt(queued=True)

    async def _blacklist_fn(self, request: RequestInfo) -> tuple[bool, str]:
        # Runs before the body is read: it knows who is calling, not what they sent.
        # A miner that could send organic prompts could send ones it knows the answer to.
        if request.hotkey in self.validator.metagraph.hotkeys:
            return True, "registered hotkeys may not send organic prompts"
        return False, ""

    # -- scoring: on the scorer's thread ------------------------------------------------

    async def _query_miners(self, sample: SynthDatasetEntry) -> dict[int, str | None]:
        task = MinerTask(prompt=sample.messages[-1])
        miners = self.validator.miners()
        answers = await asyncio.gather(*(self._ask(miner, task) for miner in miners))
        return {miner.uid: answer for miner, answer in zip(miners, answers, strict=True)}

    async def _ask(self, miner: Any, task: MinerTask) -> str | None:
        # OrganicClient signs any btauth/1 request; here one for the miner's hotkey.
        # A client per query keeps its connections on this (the scoring) event loop.
        url = f"http://{miner.axon}{MINER_PATH}"
        wallet, timeout = self.validator.wallet, self.validator.query_timeout
        async with OrganicClient(wallet, url, miner.hotkey, timeout=timeout) as client:
            try:
                answer = await client.call(task, MinerAnswer)
            except (OrganicRequestError, httpx.HTTPError, ValueError):
                return None  # refused, unreachable, too slow or malformed: no answer
        completion: str | None = answer.completion
        return completion

    async def _generate_rewards(
        self, sample: SynthDatasetEntry, responses: dict[int, str | None], reference: Any = None
    ) -> dict[int, float]:
        # A toy reward (did the miner answer?); a subnet judges the answer itself here.
        return {uid: 1.0 if completion else 0.0 for uid, completion in responses.items()}

    async def _set_weights(self, rewards: dict[int, float]) -> None:
        # Only the book: the validator's WeightSetter puts it on chain when the chain
        # allows (thread-safe: the setter reads it from its own thread).
        self.validator.scores.update_from(rewards)


class Validator:
    """A subnet validator in the template's shape that scores miners on organic traffic.

    Args:
        wallet: The validator's wallet.
        client: A ``bt.SyncClient`` (``wait_for_block``, ``subnets.metagraph``).
        metagraph: The subnet's metagraph (``hotkeys``, ``neurons``).
        weight_setter: Sets the score book's weights on chain; ``run()`` starts it.
        netuid: The subnet.
        host, port: Where the organic intake listens (port 0: any free port).
        organic_steps: Steps per scoring iteration (fewer while organic prompts wait).
        allowed_hotkeys: The hotkeys that may send organic prompts (default: those
            with a validator permit in the metagraph).
        query_timeout: Seconds each miner gets to answer.
        sync_every: Steps between metagraph syncs.
    """

    def __init__(
        self,
        *,
        wallet: Any,
        client: Any,
        metagraph: Any,
        weight_setter: WeightSetter,
        netuid: int,
        host: str = "127.0.0.1",
        port: int = 8091,
        organic_steps: int = 1,
        allowed_hotkeys: Iterable[str] | None = None,
        query_timeout: float = 12.0,
        sync_every: int = 100,
    ) -> None:
        self.wallet = wallet
        self.client = client
        self.metagraph = metagraph
        self.weight_setter = weight_setter
        self.netuid = netuid
        self.host, self.port = host, port
        self.query_timeout = query_timeout
        self.sync_every = sync_every
        self.step = 0
        self.should_exit = False
        self.scores = ScoreBook(len(metagraph.hotkeys), alpha=0.1)
        self.scores.sync(metagraph.hotkeys)
        self.organic = ValidatorScoring(
            self,
            synth_dataset=default_dataset(),
            trigger="steps",
            trigger_frequency=organic_steps,
            allowed_hotkeys=allowed_hotkeys,
        )
        # The intake takes only requests signed for this validator's hotkey, from the
        # hotkeys allowed (by default, validators with a permit on the subnet).
        self.intake = create_app(
            self.organic,
            hotkey_ss58=wallet.hotkey.ss58_address,
            allowed_hotkeys=None if allowed_hotkeys else permitted_validators(metagraph),
        )
        self.server: OrganicServer | None = None

    def run(self) -> None:
        """Serve organic prompts and step until ``should_exit`` is set (or Ctrl-C)."""
        self.server = serve_in_thread(self.intake, host=self.host, port=self.port)
        self.organic.start()  # from sync code: the scorer gets a thread of its own
        self.weight_setter.start(self.scores)  # and so does the weight setter
        log.info(f"validator on netuid {self.netuid}, organic intake at {self.server.url}/organic")
        try:
            while not self.should_exit:
                self.forward()
                self.step += 1
                self.organic.increment_step()  # wakes the scorer at once; safe from any thread
                if self.step % self.sync_every == 0:
                    self.sync()
        finally:
            self.shutdown()

    def forward(self) -> None:
        """One validator step: wait for the next block.

        The template queries miners here. In this validator the organic scorer does
        the querying (organic prompts first, synthetic ones when it is quiet), so a
        step only paces it; a subnet's other per-step work would go here too.
        """
        self.client.wait_for_block()

    def sync(self) -> None:
        """Follow the subnet: refresh the metagraph; replaced miners start from zero."""
        metagraph = self.client.subnets.metagraph(self.netuid)
        if metagraph is not None:
            self.metagraph = metagraph
        reset = self.scores.sync(self.metagraph.hotkeys)
        log.info(f"step {self.step}: metagraph synced, {len(reset)} uids reset")

    def miners(self) -> list[Any]:
        """The neurons to query: every one serving, except this validator.

        A large subnet would query a random sample of them each round.
        """
        me = self.wallet.hotkey.ss58_address
        return [n for n in self.metagraph.neurons if n.axon and n.hotkey != me]

    def shutdown(self) -> None:
        """Stop scoring (an iteration in flight may finish), the weight setter, the intake."""
        self.organic.stop()
        self.weight_setter.stop()
        if self.server is not None:
            self.server.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, in the template's dotted style."""
    parser = argparse.ArgumentParser(description="A subnet validator with organic scoring.")
    parser.add_argument("--netuid", type=int, required=True)
    parser.add_argument("--network", default="finney")
    parser.add_argument("--wallet.name", dest="wallet_name", default="default")
    parser.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default")
    parser.add_argument("--wallet.path", dest="wallet_path", default="~/.bittensor/wallets")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--organic.steps", dest="organic_steps", type=int, default=1)
    parser.add_argument(
        "--organic.allowed_hotkeys", dest="allowed_hotkeys", nargs="*", default=None
    )
    parser.add_argument("--logging.debug", dest="debug", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the validator from the command line and run it until Ctrl-C."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO)
    wallet = bt.Wallet(args.wallet_name, args.wallet_hotkey, path=args.wallet_path)
    client = bt.SyncClient(args.network)
    try:
        metagraph = client.subnets.metagraph(args.netuid)
        if metagraph is None:
            sys.exit(f"there is no subnet {args.netuid} on {args.network}")
        validator = Validator(
            wallet=wallet,
            client=client,
            metagraph=metagraph,
            weight_setter=WeightSetter(args.netuid, wallet, client),
            netuid=args.netuid,
            host=args.host,
            port=args.port,
            organic_steps=args.organic_steps,
            allowed_hotkeys=args.allowed_hotkeys,
        )
        # Gateways find the intake where the chain says this hotkey serves; publish your
        # public ip:port once with client.execute(bt.ServeAxon(netuid, ip, port), wallet).
        validator.run()
    except KeyboardInterrupt:
        pass  # run() has already stopped the scorer, the weight setter and the intake
    finally:
        client.close()


if __name__ == "__main__":
    main()
