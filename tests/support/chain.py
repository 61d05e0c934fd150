"""Local stand-ins for the chain that the example validators talk to.

Each stand-in method binds its arguments against the signature of the bittensor
method it replaces, so a call the real one would refuse (a misspelt keyword, a
missing argument) fails here too, and every call is recorded for the test to read.
Blocks come every ``block_time`` seconds instead of every twelve.

* bittensor 9/10: :class:`FakeSubtensor` (``set_weights``, ``wait_for_block``) and
  :class:`FakeMetagraph` (``hotkeys``, ``n``, ``axons``, ``sync``).
* bittensor 11: :class:`SetWeightsRecorder` (monkeypatched over ``bt.set_weights``)
  and :class:`FakeClient` (``wait_for_block``, ``subnets.metagraph``) serving a
  :class:`FakeMetagraph11` whose neurons carry ``uid``, ``hotkey`` and ``axon``.

:func:`real_metagraph` is no stand-in: the installed bittensor's own ``Metagraph``,
filled offline with the neurons a sync would have brought (9/10's ``n`` a numpy
array, 11's without ``n``).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt

from organic_scoring._compat import BT_MAJOR

BLOCK_TIME = 0.02
"""Seconds between the stand-in chain's blocks."""


class Calls:
    """Recorded calls of one method: each a dict of its bound arguments, defaults applied."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self._signature = inspect.signature(real)
        self._cond = threading.Condition()
        self.calls: list[dict[str, Any]] = []

    def record(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Bind a call as the real method would (raising TypeError if it could not)."""
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self", None)
        with self._cond:
            self.calls.append(arguments)
            self._cond.notify_all()
        return arguments

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> None:
        """Wait until ``predicate(calls)`` holds; fail after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.calls), timeout):
                raise AssertionError(f"waited {timeout}s; calls so far: {self.calls}")

    def __len__(self) -> int:
        with self._cond:
            return len(self.calls)


class _Blocks:
    """A block counter that ticks every ``block_time`` seconds."""

    def __init__(self, block_time: float) -> None:
        self.block_time = block_time
        self.block = 0

    def next(self) -> int:
        time.sleep(self.block_time)  # the stand-in's block time, not a timing check
        self.block += 1
        return self.block


# -- bittensor 9/10 ----------------------------------------------------------------------


class FakeSubtensor:
    """A ``bt.Subtensor`` stand-in: records ``set_weights``, makes blocks quickly."""

    def __init__(self, block_time: float = BLOCK_TIME) -> None:
        real = bt.Subtensor
        self.set_weights_calls = Calls(real.set_weights)
        self.wait_for_block_calls = Calls(real.wait_for_block)
        self._blocks = _Blocks(block_time)

    def set_weights(self, *args: Any, **kwargs: Any) -> Any:
        """Record the call; answer success the way this bittensor does."""
        self.set_weights_calls.record(self, *args, **kwargs)
        if BT_MAJOR >= 10:
            from bittensor.core.types import ExtrinsicResponse

            return ExtrinsicResponse(success=True, message="weights set (stand-in)")
        return True, "weights set (stand-in)"

    def wait_for_block(self, *args: Any, **kwargs: Any) -> bool:
        """Record the call and return once the next block is made."""
        self.wait_for_block_calls.record(self, *args, **kwargs)
        self._blocks.next()
        return True


class FakeMetagraph:
    """A ``bt.Metagraph`` stand-in: fixed ``hotkeys`` and ``axons``; ``sync`` is recorded."""

    def __init__(self, hotkeys: Sequence[str], axons: Sequence[Any]) -> None:
        self.hotkeys = list(hotkeys)
        self.axons = list(axons)
        self.sync_calls = Calls(bt.Metagraph.sync)

    @property
    def n(self) -> int:
        """How many uids the subnet has."""
        return len(self.hotkeys)

    def sync(self, *args: Any, **kwargs: Any) -> None:
        """Record the call; the subnet does not change."""
        self.sync_calls.record(self, *args, **kwargs)


def real_metagraph(hotkeys: Sequence[str], netuid: int = 1) -> Any:
    """The installed bittensor's ``Metagraph`` holding one neuron per hotkey, made offline."""
    if BT_MAJOR >= 11:
        zero = bt.Balance(0)
        neurons = [
            bt.MetagraphNeuron(
                uid=uid,
                hotkey=hotkey,
                coldkey="coldkey",
                active=True,
                validator_permit=False,
                last_update=0,
                block_at_registration=0,
                rank=0.0,
                trust=0.0,
                consensus=0.0,
                incentive=0.0,
                dividends=0.0,
                pruning_score=0.0,
                emission=zero,
                alpha_stake=zero,
                tao_stake=zero,
                total_stake=zero,
                axon=None,
                identity=None,
                commitment=None,
            )
            for uid, hotkey in enumerate(hotkeys)
        ]
        return bt.Metagraph(
            netuid=netuid,
            mechid=0,
            name="local",
            symbol="L",
            block=1,
            tempo=360,
            last_step=0,
            blocks_since_last_step=1,
            owner_hotkey="owner",
            owner_coldkey="owner",
            network_registered_at=0,
            num_uids=len(neurons),
            max_uids=256,
            price=None,
            moving_price=None,
            identity=None,
            neurons=neurons,
            commitments={},
            unregistered_commitments={},
            raw={},
        )
    from dataclasses import replace

    metagraph = bt.Metagraph(netuid=netuid, network="local", sync=False)
    null = bt.NeuronInfo.get_null_neuron()
    metagraph.neurons = [
        replace(
            null,
            uid=uid,
            hotkey=hotkey,
            axon_info=bt.AxonInfo(
                version=0, ip="127.0.0.1", port=1, ip_type=4, hotkey=hotkey, coldkey="coldkey"
            ),
        )
        for uid, hotkey in enumerate(hotkeys)
    ]
    metagraph._set_metagraph_attributes(block=1)  # what sync() does with what it fetched
    return metagraph


# -- bittensor 11 ------------------------------------------------------------------------


class SetWeightsRecorder:
    """Stands in for ``bt.set_weights``: records each call, answers success.

    Install it with ``monkeypatch.setattr(bittensor, "set_weights", recorder)``.
    """

    def __init__(self) -> None:
        self.real = bt.set_weights
        self.calls = Calls(self.real)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.record(*args, **kwargs)
        return bt.ExtrinsicResult(success=True, message="weights set (stand-in)")


@dataclass(frozen=True)
class FakeNeuron:
    """The fields of a bittensor 11 ``MetagraphNeuron`` the examples read."""

    uid: int
    hotkey: str
    axon: str | None
    """``"ip:port"`` where the neuron serves, or None."""


@dataclass
class FakeMetagraph11:
    """A bittensor 11 ``Metagraph`` stand-in: ``neurons`` by uid, and ``hotkeys``."""

    netuid: int
    neurons: list[FakeNeuron]

    @property
    def hotkeys(self) -> list[str]:
        """The neurons' hotkeys, by uid."""
        return [neuron.hotkey for neuron in self.neurons]


class _FakeSubnets:
    def __init__(self, metagraph: FakeMetagraph11) -> None:
        from bittensor.namespaces import Subnets

        self._metagraph = metagraph
        self.metagraph_calls = Calls(Subnets.metagraph)

    def metagraph(self, *args: Any, **kwargs: Any) -> FakeMetagraph11:
        """Record the call; return the one subnet there is."""
        arguments = self.metagraph_calls.record(self, *args, **kwargs)
        assert arguments["netuid"] == self._metagraph.netuid, arguments
        return self._metagraph


@dataclass
class FakeClient:
    """A ``bt.SyncClient`` stand-in: blocks come quickly, one subnet's metagraph."""

    metagraph: FakeMetagraph11
    block_time: float = BLOCK_TIME
    subnets: _FakeSubnets = field(init=False)
    wait_for_block_calls: Calls = field(init=False)
    closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.subnets = _FakeSubnets(self.metagraph)
        self.wait_for_block_calls = Calls(bt.SyncClient.wait_for_block)
        self._blocks = _Blocks(self.block_time)

    def wait_for_block(self, *args: Any, **kwargs: Any) -> int:
        """Record the call and return once the next block is made."""
        self.wait_for_block_calls.record(self, *args, **kwargs)
        return self._blocks.next()

    def close(self) -> None:
        """Record that the client was closed."""
        self.closed = True
