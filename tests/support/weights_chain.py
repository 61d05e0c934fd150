"""A simulated chain behind each bittensor major's own classes, for the weight setter.

:class:`SimChain` is the chain: a block clock, registered hotkeys, each hotkey's last
update per mechanism, the weights rate limit, the subnet's weights version, its weight
limits, commit-reveal (commits are revealed once their reveal period has passed), and
subtensor's rules for a weights extrinsic, answered with the chain's own error names
and texts (:data:`CHAIN_ERRORS`; a test checks them against bittensor 11's catalog).

In front of it, the installed bittensor's real classes, so the SDK's own code does
the work and words the answers:

- bittensor 9/10 (:func:`sim_subtensor`): a subclass of the SDK's ``Subtensor`` or
  ``AsyncSubtensor``, built without connecting. The public read methods the setter
  (and the SDK's own ``set_weights``) call are answered from the chain; every other
  method is the SDK's, and its extrinsics reach the chain through a stand-in
  ``substrate`` (``compose_call``, ``create_signed_extrinsic``, ``submit_extrinsic``),
  so ``set_weights``, the extrinsic functions and ``sign_and_send_extrinsic`` run as
  they would against a node, with a dispatch error or a pool rejection as a node
  gives them.
- bittensor 11 (:func:`sim_client`): the SDK's own ``bt.Client`` or ``bt.SyncClient``
  over :class:`SimSubstrate`, an in-memory implementation of the SDK's ``Substrate``
  contract (storage queries, a runtime call, compose, fee, submit).

Every simulated method binds its arguments against the installed SDK's signature of
the method it stands for (:class:`~support.chain.Calls`), so a call the real one
would refuse fails here too, and each call is recorded: ``calls[name]``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bittensor as bt

from organic_scoring._compat import BT_MAJOR
from support.chain import Calls

U16_MAX = 65535
MECHANISM_STRIDE = 4096
"""A mechanism's storage index is ``mechid * 4096 + netuid`` (subtensor's layout)."""

CHAIN_ERRORS = {
    "SettingWeightsTooFast": "A transactor exceeded the rate limit for setting weights.",
    "CommittingWeightsTooFast": "A transactor exceeded the rate limit for setting weights.",
    "IncorrectWeightVersionKey": (
        "A validator is attempting to set weights from a validator with incorrect weight version."
    ),
    "NeuronNoValidatorPermit": (
        "The caller is attempting to set non-self weights without being a permitted validator."
    ),
    "HotKeyNotRegisteredInSubNet": "The hotkey is not registered in subnet",
    "UidVecContainInvalidOne": (
        "The caller is attempting to set weight to at least one UID that does not exist in "
        "the metagraph."
    ),
    "WeightVecLengthIsLow": (
        "The dispatch is attempting to set weights on chain with fewer elements than are allowed."
    ),
    "MaxWeightExceeded": (
        "The dispatch is attempting to set weights on chain with weight value exceeding the "
        "configured max weight limit (currently `u16::MAX`)."
    ),
    "CommitRevealEnabled": "Attempting to call set_weights when commit/reveal is enabled",
    "CommitRevealDisabled": "Attemtping to commit/reveal weights when disabled.",
    "MechanismDoesNotExist": "Subnet mechanism does not exist.",
}
"""subtensor's texts (its runtime metadata's docs) for the errors the simulation raises."""

RATE_LIMIT_POOL_CODE = 6
"""subtensor's ``CustomTransactionError::RateLimitExceeded``, as the pool answers it."""


@dataclass(frozen=True)
class Answer:
    """The chain's answer to one extrinsic: ok, a dispatch error, or a pool rejection."""

    error: str | None = None
    pool_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.pool_code is None


@dataclass
class Extrinsic:
    """One weights extrinsic the chain received, and what it answered."""

    signer: str
    function: str
    params: dict[str, Any]
    block: int
    answer: Answer


@dataclass
class Commit:
    """A timelocked weights commit, revealed by the chain ``reveal_at``."""

    uid: int
    mechid: int
    block: int
    reveal_at: int
    revealed: bool = False


class SimChain:
    """One subnet's weights state and rules, and a block clock.

    The clock moves by :meth:`advance`, and, with ``block_time`` (seconds), by itself.
    """

    def __init__(
        self,
        *,
        netuid: int = 1,
        n: int = 8,
        tempo: int = 99,
        rate_limit: int = 10,
        weights_version: int | None = 0,
        commit_reveal: bool = False,
        reveal_period: int = 1,
        min_allowed_weights: int = 1,
        max_weight_limit: int = U16_MAX,
        mechanisms: int = 1,
        block: int = 1000,
        block_time: float | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.netuid = netuid
        self.n = n
        self.tempo = tempo
        self.rate_limit = rate_limit
        self.weights_version = weights_version
        self.commit_reveal = commit_reveal
        self.reveal_period = reveal_period
        self.min_allowed_weights = min_allowed_weights
        self.max_weight_limit = max_weight_limit
        self.mechanisms = mechanisms
        self.block_time = block_time
        self.hotkeys: dict[str, int] = {}
        self.permitted: set[int] | None = None
        """uids with a validator permit; None: every registered uid."""
        self.last_update: dict[tuple[int, int], int] = {}
        self.weights: dict[tuple[int, int], dict[int, int]] = {}
        self.commits: list[Commit] = []
        self.extrinsics: list[Extrinsic] = []
        self.pool_rate_limit = False
        """Refuse a too-early extrinsic in the transaction pool (``Custom error: 6``)
        rather than in the pallet (``SettingWeightsTooFast``)."""
        self.down = False
        """Every read and send fails as with an unreachable node."""
        self.before_submit: list[Callable[[SimChain], None]] = []
        """Called (under the chain's lock) as each extrinsic arrives: another process's
        doing between the setter's read and its send."""
        self._base = block
        self._t0 = time.monotonic()

    # -- the clock ------------------------------------------------------------------

    @property
    def block(self) -> int:
        with self.lock:
            ticks = 0
            if self.block_time:
                ticks = int((time.monotonic() - self._t0) / self.block_time)
            return self._base + ticks

    def advance(self, blocks: int) -> None:
        with self.lock:
            self._base += blocks

    # -- state ----------------------------------------------------------------------

    def register(self, hotkey: str, uid: int | None = None) -> int:
        with self.lock:
            uid = len(self.hotkeys) if uid is None else uid
            self.hotkeys[hotkey] = uid
            return uid

    def uid_of(self, hotkey: str) -> int | None:
        with self.lock:
            return self.hotkeys.get(hotkey)

    def last_update_of(self, uid: int, mechid: int = 0) -> int:
        with self.lock:
            return self.last_update.get((mechid, uid), 0)

    def since_last_update(self, uid: int, mechid: int = 0) -> int:
        return self.block - self.last_update_of(uid, mechid)

    def next_epoch_start(self) -> int:
        """The block of the next epoch: ``(block + netuid + 1) % (tempo + 1) == 0``."""
        block, period = self.block, self.tempo + 1
        return block + (period - (block + self.netuid + 1) % period or period)

    def last_epoch_block(self) -> int:
        return self.next_epoch_start() - (self.tempo + 1)

    def reveal(self) -> list[Commit]:
        """Reveal the commits whose reveal block has come; returns them."""
        block = self.block
        with self.lock:
            due = [c for c in self.commits if not c.revealed and c.reveal_at <= block]
            for commit in due:
                commit.revealed = True
            return due

    def check_up(self) -> None:
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")

    # -- the rules ------------------------------------------------------------------

    def submit(self, signer: str, function: str, params: dict[str, Any]) -> Answer:
        """Apply one weights extrinsic as subtensor would; record it and the answer."""
        self.check_up()
        with self.lock:
            for hook in self.before_submit:
                hook(self)
            block = self.block
            answer = self._judge(signer, function, params, block)
            self.extrinsics.append(Extrinsic(signer, function, dict(params), block, answer))
            return answer

    def _judge(self, signer: str, function: str, params: dict[str, Any], block: int) -> Answer:
        committing = function == "commit_timelocked_mechanism_weights"
        if function not in ("set_mechanism_weights", "commit_timelocked_mechanism_weights"):
            raise AssertionError(f"the simulated chain takes weights extrinsics only: {function}")
        if committing and not self.commit_reveal:
            return Answer("CommitRevealDisabled")
        if not committing and self.commit_reveal:
            return Answer("CommitRevealEnabled")
        mechid = int(params["mecid"])
        if int(params["netuid"]) != self.netuid or mechid >= self.mechanisms:
            return Answer("MechanismDoesNotExist")
        uid = self.hotkeys.get(signer)
        if uid is None:
            return Answer("HotKeyNotRegisteredInSubNet")
        dests = [] if committing else [int(d) for d in params["dests"]]
        values = [] if committing else [int(v) for v in params["weights"]]
        self_weight = dests == [uid]
        if not committing and int(params["version_key"]) < (self.weights_version or 0):
            return Answer("IncorrectWeightVersionKey")
        last = self.last_update.get((mechid, uid), 0)
        if last and block - last < self.rate_limit:
            if self.pool_rate_limit:
                return Answer(pool_code=RATE_LIMIT_POOL_CODE)
            return Answer("CommittingWeightsTooFast" if committing else "SettingWeightsTooFast")
        if self.permitted is not None and uid not in self.permitted and not self_weight:
            return Answer("NeuronNoValidatorPermit")
        if not committing:
            if any(d >= self.n for d in dests) or len(set(dests)) != len(dests):
                return Answer("UidVecContainInvalidOne")
            if len(dests) < self.min_allowed_weights and not self_weight:
                return Answer("WeightVecLengthIsLow")
            total = sum(values)
            if (
                not self_weight
                and self.max_weight_limit < U16_MAX
                and total
                and max(values) * U16_MAX > (self.max_weight_limit + 1) * total
            ):
                return Answer("MaxWeightExceeded")
            self.weights[(mechid, uid)] = dict(zip(dests, values, strict=True))
        else:
            reveal_at = self.next_epoch_start() + self.reveal_period * (self.tempo + 1)
            self.commits.append(Commit(uid, mechid, block, reveal_at))
        self.last_update[(mechid, uid)] = block
        return Answer()

    def sent(self, function: str | None = None) -> list[Extrinsic]:
        """The extrinsics received (of ``function`` only, if given)."""
        with self.lock:
            return [x for x in self.extrinsics if function is None or x.function == function]


# -- bittensor 9 and 10 ------------------------------------------------------------------


@dataclass
class SimCall:
    """A composed call, as the chain will read it."""

    call_module: str
    call_function: str
    call_params: dict[str, Any]


@dataclass
class SimExtrinsic:
    call: SimCall
    signer: str
    nonce: int | None
    era: Any


@dataclass
class SyncReceipt:
    """What ``submit_extrinsic`` returns once the block is in, as the SDK reads it."""

    is_success: bool
    error_message: dict[str, Any] | None
    total_fee_amount: int = 0
    block_hash: str = "0x" + "00" * 32
    extrinsic_hash: str = "0x" + "11" * 32


class AsyncReceipt:
    """The async receipt: its fields are awaitables, as ``AsyncExtrinsicReceipt``'s are."""

    def __init__(self, receipt: SyncReceipt) -> None:
        self._receipt = receipt
        self.block_hash = receipt.block_hash
        self.extrinsic_hash = receipt.extrinsic_hash

    @property
    async def is_success(self) -> bool:
        return self._receipt.is_success

    @property
    async def error_message(self) -> dict[str, Any] | None:
        return self._receipt.error_message

    @property
    async def total_fee_amount(self) -> int:
        return self._receipt.total_fee_amount


def _dispatch_error(name: str) -> dict[str, Any]:
    """A dispatch error the way the SDK's receipt decodes it from the chain's events."""
    return {"type": "Module", "name": name, "docs": [CHAIN_ERRORS[name]]}


def _pool_rejection(code: int) -> Exception:
    """A transaction-pool rejection as the websocket interface raises it."""
    from async_substrate_interface.errors import SubstrateRequestException

    payload = {"code": 1010, "message": "Invalid Transaction", "data": f"Custom error: {code}"}
    return SubstrateRequestException(str(payload))


class _SimSubstrate910:
    """The ``substrate`` of a simulated 9/10 subtensor: carries extrinsics to the chain."""

    def __init__(self, chain: SimChain, real: type, asynchronous: bool) -> None:
        self.chain = chain
        self.asynchronous = asynchronous
        self.real = real
        self.calls = {
            name: Calls(getattr(real, name))
            for name in (
                "compose_call",
                "get_account_next_index",
                "create_signed_extrinsic",
                "submit_extrinsic",
                "clear_nonce_cache_for_account",
                "close",
            )
            if hasattr(real, name)
        }
        self._nonce = 0

    def _record(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if name not in self.calls:
            raise AssertionError(f"the installed SDK's substrate has no {name}")
        return self.calls[name].record(self, *args, **kwargs)

    def _answer(self, value: Any, name: str) -> Any:
        """``value``, or a coroutine of it where the real method is a coroutine function."""
        if not inspect.iscoroutinefunction(getattr(self.real, name)):
            return value

        async def answer() -> Any:
            return value

        return answer()

    def compose_call(self, *args: Any, **kwargs: Any) -> Any:
        a = self._record("compose_call", *args, **kwargs)
        return self._answer(
            SimCall(a["call_module"], a["call_function"], a["call_params"]), "compose_call"
        )

    def get_account_next_index(self, *args: Any, **kwargs: Any) -> Any:
        self._record("get_account_next_index", *args, **kwargs)
        self._nonce += 1
        return self._answer(self._nonce, "get_account_next_index")

    def create_signed_extrinsic(self, *args: Any, **kwargs: Any) -> Any:
        a = self._record("create_signed_extrinsic", *args, **kwargs)
        signed = SimExtrinsic(a["call"], a["keypair"].ss58_address, a["nonce"], a["era"])
        return self._answer(signed, "create_signed_extrinsic")

    def submit_extrinsic(self, *args: Any, **kwargs: Any) -> Any:
        a = self._record("submit_extrinsic", *args, **kwargs)
        extrinsic: SimExtrinsic = a["extrinsic"]

        def outcome() -> Any:
            call = extrinsic.call
            answer = self.chain.submit(extrinsic.signer, call.call_function, call.call_params)
            if answer.pool_code is not None:
                raise _pool_rejection(answer.pool_code)
            receipt = SyncReceipt(
                is_success=answer.ok,
                error_message=None if answer.error is None else _dispatch_error(answer.error),
            )
            return AsyncReceipt(receipt) if self.asynchronous else receipt

        if not inspect.iscoroutinefunction(self.real.submit_extrinsic):
            return outcome()

        async def submitted() -> Any:
            return outcome()

        return submitted()

    def clear_nonce_cache_for_account(self, *args: Any, **kwargs: Any) -> Any:
        self._record("clear_nonce_cache_for_account", *args, **kwargs)
        return self._answer(None, "clear_nonce_cache_for_account")

    def close(self, *args: Any, **kwargs: Any) -> Any:
        self._record("close", *args, **kwargs)
        return self._answer(None, "close")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the simulated substrate does not serve {name!r}")


def _hyperparameters(chain: SimChain) -> Any:
    """The SDK's own ``SubnetHyperparameters``, filled with the chain's values."""
    from bittensor.core.chain_data import SubnetHyperparameters

    known = {
        "tempo": chain.tempo,
        "weights_version": chain.weights_version,
        "weights_rate_limit": chain.rate_limit,
        "min_allowed_weights": chain.min_allowed_weights,
        "max_weight_limit": chain.max_weight_limit,
        "commit_reveal_weights_enabled": chain.commit_reveal,
        "commit_reveal_period": chain.reveal_period,
    }
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(SubnetHyperparameters):
        if f.name in known:
            kwargs[f.name] = known[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = 0
    return SubnetHyperparameters(**kwargs)


def _epoch_schedule(chain: SimChain) -> Any:
    from bittensor.core.types import EpochScheduleState

    block = chain.block
    last = chain.last_epoch_block()
    return EpochScheduleState(
        last_epoch_block=last,
        pending_epoch_at=0,
        subnet_epoch_index=last // (chain.tempo + 1),
        tempo=chain.tempo,
        blocks_since_last_step=block - last,
        current_block=block,
    )


def _fee() -> Any:
    return bt.Balance.from_rao(0)


# name -> what the chain answers, from the bound arguments
_READS_910: dict[str, Callable[[SimChain, dict[str, Any]], Any]] = {
    "get_current_block": lambda c, a: c.block,
    "get_uid_for_hotkey_on_subnet": lambda c, a: (
        c.uid_of(a["hotkey_ss58"]) if a["netuid"] == c.netuid else None
    ),
    "blocks_since_last_update": lambda c, a: c.since_last_update(a["uid"]),
    "weights_rate_limit": lambda c, a: c.rate_limit,
    "get_subnet_hyperparameters": lambda c, a: _hyperparameters(c),
    "commit_reveal_enabled": lambda c, a: c.commit_reveal,
    "min_allowed_weights": lambda c, a: c.min_allowed_weights,
    "max_weight_limit": lambda c, a: c.max_weight_limit / U16_MAX,
    "subnetwork_n": lambda c, a: c.n,
    "get_mechanism_count": lambda c, a: c.mechanisms,
    "get_next_epoch_start_block": lambda c, a: c.next_epoch_start(),
    "tempo": lambda c, a: c.tempo,
    "get_subnet_reveal_period_epochs": lambda c, a: c.reveal_period,
    "get_epoch_schedule_state": lambda c, a: _epoch_schedule(c),
    "get_extrinsic_fee": lambda c, a: _fee(),
    "compose_call": lambda c, a: SimCall(a["call_module"], a["call_function"], a["call_params"]),
}
"""The public methods a simulated 9/10 subtensor answers itself (where the installed
SDK has them); ``compose_call`` is 10's, 9 composes through ``substrate``."""


def _sim_method(name: str, real: Callable[..., Any], asynchronous: bool) -> Callable[..., Any]:
    answer = _READS_910[name]

    def sync_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = self.calls[name].record(self, *args, **kwargs)
        self.chain.check_up()
        return answer(self.chain, bound)

    async def async_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = self.calls[name].record(self, *args, **kwargs)
        self.chain.check_up()
        await asyncio.sleep(0)
        return answer(self.chain, bound)

    method = async_method if asynchronous else sync_method
    method.__name__ = name
    method.__doc__ = f"Simulated {real.__qualname__}."
    return method


_CLASSES: dict[bool, type] = {}


def _sim_class(asynchronous: bool) -> type:
    if asynchronous in _CLASSES:
        return _CLASSES[asynchronous]
    base = bt.AsyncSubtensor if asynchronous else bt.Subtensor
    namespace: dict[str, Any] = {}
    for name in _READS_910:
        real = getattr(base, name, None)
        if real is not None:
            namespace[name] = _sim_method(name, real, asynchronous)

    simulated = tuple(namespace)

    def __init__(self: Any, chain: SimChain) -> None:  # never the SDK's: no connection
        self.chain = chain
        self.network = "local"
        self.chain_endpoint = "ws://127.0.0.1:9944"
        self.log_verbose = False
        self.calls = {name: Calls(getattr(base, name)) for name in simulated}
        substrate_class = _substrate_class(asynchronous)
        self.substrate = _SimSubstrate910(chain, substrate_class, asynchronous)

    def __repr__(self: Any) -> str:
        return f"Sim{base.__name__}(block={self.chain.block})"

    namespace.update(__init__=__init__, __repr__=__repr__, __str__=__repr__)
    cls = type(f"Sim{base.__name__}", (base,), namespace)
    _CLASSES[asynchronous] = cls
    return cls


def _substrate_class(asynchronous: bool) -> type:
    if asynchronous:
        from async_substrate_interface.async_substrate import AsyncSubstrateInterface

        return AsyncSubstrateInterface
    from async_substrate_interface.sync_substrate import SubstrateInterface

    return SubstrateInterface


def sim_subtensor(chain: SimChain, *, asynchronous: bool = False) -> Any:
    """The installed bittensor 9/10's ``Subtensor`` (or ``AsyncSubtensor``) over ``chain``."""
    assert BT_MAJOR < 11, "bittensor 9/10 only"
    return _sim_class(asynchronous)(chain)


# -- bittensor 11 ------------------------------------------------------------------------


class SimSubstrate:
    """bittensor 11's ``Substrate`` contract in memory, over a :class:`SimChain`.

    Serves the storage items, runtime call and writes that the setter's reads and
    ``bt.SetWeights`` use; anything else is an AssertionError, so a new read shows.
    """

    def __init__(self, chain: SimChain) -> None:
        assert BT_MAJOR >= 11, "bittensor 11 only"
        self.chain = chain
        self.token_symbols: dict[int, str] = {}
        real = bt.RpcSubstrate
        self.calls = {
            name: Calls(getattr(real, name))
            for name in (
                "connect",
                "close",
                "block_hash",
                "block_number",
                "block_time",
                "query",
                "query_map",
                "runtime_call",
                "compose",
                "estimate_fee",
                "submit",
            )
        }

    def balance(self, rao: int, netuid: int = 0) -> Any:
        return bt.Balance.from_rao(rao)

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        self.calls["connect"].record(self, *args, **kwargs)

    async def close(self, *args: Any, **kwargs: Any) -> None:
        self.calls["close"].record(self, *args, **kwargs)

    async def block_hash(self, *args: Any, **kwargs: Any) -> str:
        a = self.calls["block_hash"].record(self, *args, **kwargs)
        self.chain.check_up()
        block = self.chain.block if a["block"] is None else a["block"]
        return f"0x{block:064x}"

    async def block_number(self, *args: Any, **kwargs: Any) -> int:
        self.calls["block_number"].record(self, *args, **kwargs)
        self.chain.check_up()
        return self.chain.block

    async def block_time(self, *args: Any, **kwargs: Any) -> float:
        self.calls["block_time"].record(self, *args, **kwargs)
        return self.chain.block_time or 12.0

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        a = self.calls["query"].record(self, *args, **kwargs)
        self.chain.check_up()
        return self._storage(a["module"], a["storage_function"], list(a["params"] or []))

    async def query_map(self, *args: Any, **kwargs: Any) -> Any:
        a = self.calls["query_map"].record(self, *args, **kwargs)
        # The token symbols a client reads when it connects: not simulated, which the
        # client tolerates (and so writes no symbol cache).
        raise bt.ChainError(f"query_map {a['storage_function']} is not simulated")

    async def runtime_call(self, *args: Any, **kwargs: Any) -> Any:
        a = self.calls["runtime_call"].record(self, *args, **kwargs)
        self.chain.check_up()
        if (a["api"], a["method"]) == ("SubnetInfoRuntimeApi", "get_next_epoch_start_block"):
            return self.chain.next_epoch_start() if a["params"] == [self.chain.netuid] else None
        raise AssertionError(f"runtime call {a['api']}.{a['method']} is not simulated")

    async def compose(self, *args: Any, **kwargs: Any) -> Any:
        a = self.calls["compose"].record(self, *args, **kwargs)
        return a["call"]  # the generated Call (module, function, params) as it is

    async def estimate_fee(self, *args: Any, **kwargs: Any) -> Any:
        self.calls["estimate_fee"].record(self, *args, **kwargs)
        return bt.Balance.from_rao(0)

    async def submit(self, *args: Any, **kwargs: Any) -> Any:
        from bittensor._transport.errors import SubstrateRequestException
        from bittensor.result import ChainError, chain_error_from_substrate_request

        a = self.calls["submit"].record(self, *args, **kwargs)
        self.chain.check_up()
        module, function, params = a["call"]
        assert module == "SubtensorModule", module
        answer = self.chain.submit(a["keypair"].ss58_address, function, params)
        if answer.pool_code is not None:  # as RpcSubstrate._failed_submit words it
            chain_error = chain_error_from_substrate_request(
                SubstrateRequestException(f"Invalid Transaction: Custom error: {answer.pool_code}")
            )
            return bt.ExtrinsicResult(False, chain_error.message, error=chain_error)
        if not (a["wait_for_inclusion"] or a["wait_for_finalization"]):
            return bt.ExtrinsicResult(True, "Submitted (not waiting).")
        if answer.error is not None:  # as RpcSubstrate._result_from_report words it
            text = CHAIN_ERRORS[answer.error]
            return bt.ExtrinsicResult(
                False,
                text,
                block_hash=f"0x{self.chain.block:064x}",
                error=ChainError(text, answer.error),
            )
        return bt.ExtrinsicResult(
            True,
            "Success",
            block_hash=f"0x{self.chain.block:064x}",
            extrinsic_id=f"{self.chain.block}-0001",
            fee=bt.Balance.from_rao(0),
        )

    def _storage(self, module: str, item: str, params: list[Any]) -> Any:
        chain = self.chain
        assert module == "SubtensorModule", (module, item)
        netuid_items = {
            "WeightsSetRateLimit": chain.rate_limit,
            "WeightsVersionKey": chain.weights_version,
            "CommitRevealWeightsEnabled": chain.commit_reveal,
            "MinAllowedWeights": chain.min_allowed_weights,
            "MaxWeightsLimit": chain.max_weight_limit,
            "SubnetEpochConsensus": "Yuma",
            "Tempo": chain.tempo,
            "Burn": 0,
            "SubnetworkN": chain.n,
            "MechanismCountCurrent": chain.mechanisms,
            "RevealPeriodEpochs": chain.reveal_period,
            "LastEpochBlock": chain.last_epoch_block(),
            "PendingEpochAt": 0,
            "SubnetEpochIndex": chain.last_epoch_block() // (chain.tempo + 1),
            "BlocksSinceLastStep": chain.block - chain.last_epoch_block(),
        }
        if item == "WeightsVersionKey" and chain.weights_version is None:
            return None  # a node that cannot say
        if item == "Uids":
            netuid, hotkey = params
            return chain.uid_of(hotkey) if netuid == chain.netuid else None
        if item == "LastUpdate":
            (index,) = params
            mechid, netuid = divmod(int(index), MECHANISM_STRIDE)
            if netuid != chain.netuid or mechid >= chain.mechanisms:
                return []
            return [chain.last_update_of(uid, mechid) for uid in range(chain.n)]
        if item in netuid_items:
            assert params == [chain.netuid], (item, params)
            return netuid_items[item]
        raise AssertionError(f"storage {module}.{item} is not simulated")


def sim_client(chain: SimChain, *, asynchronous: bool = False) -> Any:
    """bittensor 11's own ``bt.Client`` (async) or ``bt.SyncClient`` over ``chain``.

    Close a ``SyncClient`` after use (it runs a thread of its own).
    """
    substrate = SimSubstrate(chain)
    if asynchronous:
        return bt.Client("local", substrate=substrate)
    return bt.SyncClient("local", substrate=substrate)


def close_sync_client(client: Any) -> None:
    """Close a bittensor 11 ``SyncClient`` completely.

    Its ``close()`` stops the private event loop and joins its thread but leaves the
    loop unclosed (a ResourceWarning when collected); that loop is closed here too.
    """
    client.close()
    runner = getattr(client, "_loop_thread", None)
    loop = getattr(runner, "_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed():
        loop.close()


def sim_for(chain: SimChain, *, asynchronous: bool = False) -> Any:
    """What a validator passes as ``subtensor=`` on the installed major, over ``chain``."""
    if BT_MAJOR >= 11:
        return sim_client(chain, asynchronous=asynchronous)
    return sim_subtensor(chain, asynchronous=asynchronous)


def calls_of(handle: Any) -> dict[str, Calls]:
    """Every recorded method of a simulated subtensor or client, by name."""
    if BT_MAJOR >= 11:
        client = getattr(handle, "_client", handle)
        return dict(client._substrate.calls)
    return {**handle.calls, **{f"substrate.{k}": v for k, v in handle.substrate.calls.items()}}


__all__ = [
    "CHAIN_ERRORS",
    "Answer",
    "Commit",
    "Extrinsic",
    "SimChain",
    "SimSubstrate",
    "calls_of",
    "close_sync_client",
    "sim_client",
    "sim_for",
    "sim_subtensor",
]
