"""A validator shaped like the bittensor subnet template's, with organic scoring (bittensor 9/10).

What it shows:

* the template's shape: a ``Validator`` holding the wallet, subtensor, metagraph,
  dendrite and axon, whose ``run()`` is a synchronous ``while`` loop doing one
  ``forward()`` per step until ``should_exit`` is set or Ctrl-C;
* organic scoring wired into that loop: the scorer is built with the axon (its
  ``_on_organic_entry`` becomes the axon's handler for ``OrganicPrompt``), runs with
  ``trigger="steps"``, is told ``increment_step()`` once per step, and ``stop()``
  ends it on shutdown;
* the intake hooks: ``allowed_hotkeys`` and a ``_blacklist_fn`` annotated
  ``Tuple[bool, str]`` as in the template (the library adapts any annotation);
* scores to weights: the scorer only updates a ``ScoreBook``; a ``WeightSetter``
  started beside it sets the book's weights whenever the chain allows (it reads the
  rate limit, the subnet's weights version and weight limits first). It has a
  subtensor connection of its own: its calls run on a worker thread, and one
  ``bt.Subtensor`` must not be used from two threads at once.

The chain-facing objects (subtensor, metagraph, weight setter) and the axon are handed
to ``Validator``, so tests/test_examples.py runs this file against local stand-ins for
the chain, with a real axon, a real dendrite and real miners on 127.0.0.1. On a
subnet, with a registered hotkey::

    python examples/template_validator_axon.py --netuid 1 --subtensor.network finney \\
        --wallet.name validator --wallet.hotkey default --axon.port 8091

(bittensor 9 reads the command line itself when imported, so there ``--help`` lists
bittensor's logging options rather than these.)
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import bittensor as bt

from organic_scoring import OrganicScoringBase
from organic_scoring.intake import permitted_validators
from organic_scoring.synth_dataset import SynthDatasetEntry, default_dataset
from organic_scoring.weights import ScoreBook, WeightSetter


class OrganicPrompt(bt.Synapse):  # type: ignore[misc]
    """An organic request to the validator: a real user's prompt to score miners on."""

    prompt: str = ""
    queued: bool = False
    # Hashing the prompt into the signature stops anyone altering it in transit.
    required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)


class MinerTask(bt.Synapse):  # type: ignore[misc]
    """What the validator asks each miner; the miner fills in the completion."""

    prompt: str = ""
    completion: str | None = None
    required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)


class ValidatorScoring(OrganicScoringBase):
    """The validator's scoring: organic prompts first, synthetic ones when it is quiet.

    The intake hooks run on the axon's thread; the scoring hooks on the scorer's own
    thread and event loop.
    """

    def __init__(self, validator: Validator, **kwargs: Any) -> None:
        self.validator = validator
        super().__init__(**kwargs)

    # -- intake: once per organic request, on the axon's thread -------------------------

    async def _on_organic_entry(self, synapse: OrganicPrompt) -> OrganicPrompt:
        # Queue the prompt in the synthetic samples' shape, so one code path scores both.
        sample = SynthDatasetEntry(roles=["user"], messages=[synapse.prompt], organic=True)
        self._organic_queue.add(sample)
        synapse.queued = True
        return synapse

    async def _blacklist_fn(self, synapse: OrganicPrompt) -> typing.Tuple[bool, str]:  # noqa: UP006
        # A miner that could send organic prompts could send ones it knows the answer to.
        if synapse.dendrite.hotkey in self.validator.metagraph.hotkeys:
            return True, "registered hotkeys may not send organic prompts"
        return False, ""

    # -- scoring: on the scorer's thread ------------------------------------------------

    async def _query_miners(self, sample: SynthDatasetEntry) -> dict[int, str | None]:
        validator = self.validator
        uids = validator.miner_uids()
        if not uids:
            return {}
        # A dendrite's HTTP session belongs to the event loop that opened it: open and
        # close it here, on the scoring loop, around each round of queries (rounds do
        # not overlap unless max_concurrent_iterations > 1).
        async with validator.dendrite as dendrite:
            replies = await dendrite.forward(
                axons=[validator.metagraph.axons[uid] for uid in uids],
                synapse=MinerTask(prompt=sample.messages[-1]),
                timeout=validator.query_timeout,
                deserialize=False,
            )
        return {uid: reply.completion for uid, reply in zip(uids, replies, strict=True)}

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
        subtensor: A connected ``bt.Subtensor`` (``wait_for_block``).
        metagraph: The subnet's ``bt.Metagraph`` (``hotkeys``, ``axons``, ``sync``).
        axon: The axon organic requests arrive on; ``run()`` starts it.
        weight_setter: Sets the score book's weights on chain; ``run()`` starts it.
        netuid: The subnet.
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
        subtensor: Any,
        metagraph: Any,
        axon: Any,
        weight_setter: WeightSetter,
        netuid: int,
        organic_steps: int = 1,
        allowed_hotkeys: Iterable[str] | None = None,
        query_timeout: float = 12.0,
        sync_every: int = 100,
    ) -> None:
        self.wallet = wallet
        self.subtensor = subtensor
        self.metagraph = metagraph
        self.axon = axon
        self.weight_setter = weight_setter
        self.dendrite = bt.Dendrite(wallet=wallet)
        self.netuid = netuid
        self.query_timeout = query_timeout
        self.sync_every = sync_every
        self.step = 0
        self.should_exit = False
        self.scores = ScoreBook(len(metagraph.hotkeys), alpha=0.1)
        self.scores.sync(metagraph.hotkeys)
        # Given the axon, the scorer attaches its organic handler and hooks to it.
        self.organic = ValidatorScoring(
            self,
            axon=axon,
            synth_dataset=default_dataset(),
            trigger="steps",
            trigger_frequency=organic_steps,
            # By default, validators with a permit on the subnet may send organic prompts.
            allowed_hotkeys=allowed_hotkeys or permitted_validators(metagraph),
        )

    def run(self) -> None:
        """Serve organic prompts and step until ``should_exit`` is set (or Ctrl-C)."""
        self.axon.start()
        self.organic.start()  # from sync code: the scorer gets a thread of its own
        self.weight_setter.start(self.scores)  # and so does the weight setter
        bt.logging.info(f"validator running on netuid {self.netuid}")
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
        self.subtensor.wait_for_block()

    def sync(self) -> None:
        """Follow the subnet: refresh the metagraph; replaced miners start from zero."""
        self.metagraph.sync(subtensor=self.subtensor)
        reset = self.scores.sync(self.metagraph.hotkeys)
        bt.logging.info(f"step {self.step}: metagraph synced, {len(reset)} uids reset")

    def miner_uids(self) -> list[int]:
        """The uids to query: every neuron serving an axon, except this validator.

        A large subnet would query a random sample of them each round.
        """
        me = self.wallet.hotkey.ss58_address
        hotkeys = self.metagraph.hotkeys
        return [
            uid
            for uid, axon in enumerate(self.metagraph.axons)
            if axon.is_serving and hotkeys[uid] != me
        ]

    def shutdown(self) -> None:
        """Stop scoring (an iteration in flight may finish), the weight setter, the axon."""
        self.organic.stop()
        self.weight_setter.stop()
        self.axon.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, in the template's dotted style."""
    parser = argparse.ArgumentParser(description="A subnet validator with organic scoring.")
    parser.add_argument("--netuid", type=int, required=True)
    parser.add_argument("--subtensor.network", dest="network", default="finney")
    parser.add_argument("--wallet.name", dest="wallet_name", default="default")
    parser.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default")
    parser.add_argument("--wallet.path", dest="wallet_path", default="~/.bittensor/wallets")
    parser.add_argument("--axon.port", dest="axon_port", type=int, default=8091)
    parser.add_argument("--axon.external_ip", dest="external_ip", default=None)
    parser.add_argument("--organic.steps", dest="organic_steps", type=int, default=1)
    parser.add_argument(
        "--organic.allowed_hotkeys", dest="allowed_hotkeys", nargs="*", default=None
    )
    parser.add_argument("--logging.debug", dest="debug", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the validator from the command line and run it until Ctrl-C."""
    args = parse_args(argv)
    if args.debug:
        bt.logging.set_debug(True)
    else:
        bt.logging.set_info(True)
    wallet = bt.Wallet(name=args.wallet_name, hotkey=args.wallet_hotkey, path=args.wallet_path)
    subtensor = bt.Subtensor(network=args.network)
    metagraph = subtensor.metagraph(args.netuid)
    axon = bt.Axon(wallet=wallet, port=args.axon_port, external_ip=args.external_ip)
    # The weight setter's own connection: its calls run on a thread of their own.
    weights_subtensor = bt.Subtensor(network=args.network)
    validator = Validator(
        wallet=wallet,
        subtensor=subtensor,
        metagraph=metagraph,
        axon=axon,
        weight_setter=WeightSetter(args.netuid, wallet, weights_subtensor),
        netuid=args.netuid,
        organic_steps=args.organic_steps,
        allowed_hotkeys=args.allowed_hotkeys,
    )
    # Tell the chain where the axon listens, so users and gateways can find it.
    subtensor.serve_axon(netuid=args.netuid, axon=axon)
    try:
        validator.run()
    except KeyboardInterrupt:
        pass  # run() has already stopped the scorer, the weight setter and the axon
    finally:
        weights_subtensor.close()
        subtensor.close()


if __name__ == "__main__":
    main()
