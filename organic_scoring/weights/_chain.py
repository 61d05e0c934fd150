"""Where the weight setter meets each bittensor's chain API: one :class:`Chain` over
9/10's ``Subtensor``/``AsyncSubtensor`` and 11's ``Client``/``SyncClient``; answers are
judged by the chain's error name, else by the SDK's words."""

from __future__ import annotations

import abc
import asyncio
import functools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np

from organic_scoring import _compat
from organic_scoring.weights._result import Outcome

__all__ = ["Chain", "ChainState", "SendPlan", "Verdict", "chain_for", "judge", "say", "unpack"]

U16_MAX = 65535

# Chain error names (module errors, and subtensor's CustomTransactionError names as
# bittensor 11 spells them) that mean "not yet" or "not you".
_TOO_SOON = frozenset(
    {
        "SettingWeightsTooFast",
        "CommittingWeightsTooFast",
        "TxRateLimitExceeded",
        "RateLimitExceeded",
    }
)
_NOT_PERMITTED = frozenset(
    {
        "NeuronNoValidatorPermit",
        "NotEnoughStakeToSetWeights",
        "StakeAmountTooLow",
        "HotKeyNotRegisteredInSubNet",
        "HotKeyNotRegisteredInNetwork",
        "HotKeyAccountNotExists",
        "NotRegistered",
    }
)
# subtensor's CustomTransactionError codes that a weights extrinsic can meet in the
# transaction pool, which bittensor 9/10 report only as "Custom error: N".
_CUSTOM_ERRORS = {
    1: "StakeAmountTooLow",
    4: "HotKeyAccountNotExists",
    6: "RateLimitExceeded",
    10: "HotKeyNotRegisteredInNetwork",
    19: "HotKeyNotRegisteredInSubNet",
}
_NAME_IN_TEXT = re.compile(r"returned `(\w+)\(")  # bittensor 9/10's format_error_message
_CUSTOM_IN_TEXT = re.compile(r"custom error:\s*(\d+)", re.IGNORECASE)
_RETRY_IN_TEXT = re.compile(r"retry in ~?(\d+) blocks", re.IGNORECASE)
_NOT_A_NAME = frozenset({"SubstrateRequestException", "UnknownError", "Custom type"})


@dataclass(frozen=True)
class ChainState:
    """What the chain says about this hotkey and subnet, read just before sending."""

    block: int
    uid: int | None
    since_last_update: int | None = None
    rate_limit: int = 0
    weights_version: int | None = None
    commit_reveal: bool = False
    min_allowed_weights: int = 0
    max_weight_limit: float = 1.0
    """The largest share of the total one uid may get, in (0, 1]."""
    n: int = 0
    mechanisms: int | None = None
    blocks_to_epoch: int | None = None


@dataclass(frozen=True)
class Verdict:
    """An answer judged: its outcome, in words, and the wait the chain named if any."""

    outcome: Outcome
    message: str
    retry_in_blocks: int | None = None


class Chain(abc.ABC):
    """One SDK shape: reads the state, fits the weights, sends them."""

    is_async: bool
    gap_extra: int = 0
    """Blocks past the rate limit before a send goes out (1 on bittensor 10)."""

    def __init__(self, handle: Any, *, is_async: bool) -> None:
        self.handle = handle
        self.is_async = is_async
        # One call at a time, even one abandoned after a cancellation: a bittensor 9/10
        # Subtensor holds one websocket that two threads must not use at once.
        self._one_at_a_time = threading.Lock()

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``: awaited when async, else on the worker thread."""
        if self.is_async:
            return await fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(
            functools.partial(_holding, self._one_at_a_time, fn, *args, **kwargs),
            abandon_on_cancel=True,
        )

    async def many(self, *calls: tuple[Callable[..., Any], tuple[Any, ...]]) -> list[Any]:
        """Several calls: concurrently when async, one after another on the worker."""
        if self.is_async:
            return list(await asyncio.gather(*(fn(*args) for fn, args in calls)))
        return [await self.call(fn, *args) for fn, args in calls]

    def wait_blocks(self, state: ChainState) -> int:
        """Blocks until a send of this hotkey's weights goes out and is allowed."""
        if state.since_last_update is None or state.rate_limit <= 0:
            return 0
        return max(0, state.rate_limit + self.gap_extra - state.since_last_update)

    @abc.abstractmethod
    async def read(self, hotkey: str, netuid: int, mechid: int, *, epoch: bool) -> ChainState:
        """The chain's state for ``hotkey`` (and the epoch, if asked)."""

    @abc.abstractmethod
    async def rate(self, uid: int, netuid: int) -> tuple[int | None, int]:
        """Blocks since the last update and the rate limit, read again."""

    @abc.abstractmethod
    def fit(self, weights: dict[int, float], state: ChainState) -> tuple[list[int], list[float]]:
        """The weights to send: padded to ``min_allowed_weights``, within the limits."""

    @staticmethod
    def pad(weights: dict[int, float], state: ChainState) -> dict[int, float]:
        """Padded to ``min_allowed_weights`` non-zero weights (docs/weights.md says how)."""
        nonzero = [uid for uid, weight in weights.items() if weight > 0.0]
        if len(nonzero) >= state.min_allowed_weights or nonzero == [state.uid]:
            return weights
        floor = max(weights.values()) / U16_MAX
        padded = dict(weights)
        for uid in range(max(state.n, max(weights) + 1)):
            if padded.get(uid, 0.0) <= 0.0:
                padded[uid] = floor
        return padded

    @abc.abstractmethod
    async def send(self, wallet: Any, plan: SendPlan) -> Any:
        """Send once; what the SDK returned (an exception it raised may propagate)."""

    def close(self) -> None:  # noqa: B027 - most shapes own nothing
        """Release what the chain object owns (nothing, unless overridden)."""


@dataclass(frozen=True)
class SendPlan:
    """What one send carries."""

    netuid: int
    mechid: int
    uids: list[int]
    weights: list[float]
    version_key: int
    commit_reveal: bool
    wait_for_inclusion: bool
    wait_for_finalization: bool
    block_time: float


# -- bittensor 9 and 10 ------------------------------------------------------------------


class SubtensorChain(Chain):
    """A bittensor 9/10 ``Subtensor`` or ``AsyncSubtensor``."""

    def __init__(self, subtensor: Any, *, is_async: bool) -> None:
        super().__init__(subtensor, is_async=is_async)
        # 10's set_weights sends only when blocks_since_last_update > weights_rate_limit.
        self.gap_extra = 1 if _compat.BT_MAJOR >= 10 else 0

    async def read(self, hotkey: str, netuid: int, mechid: int, *, epoch: bool) -> ChainState:
        st = self.handle
        block, uid = await self.many(
            (st.get_current_block, ()), (st.get_uid_for_hotkey_on_subnet, (hotkey, netuid))
        )
        if uid is None:
            return ChainState(block=int(block), uid=None)
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (st.blocks_since_last_update, (netuid, uid)),
            (st.weights_rate_limit, (netuid,)),
            (st.get_subnet_hyperparameters, (netuid,)),
            (st.commit_reveal_enabled, (netuid,)),
            (st.min_allowed_weights, (netuid,)),
            (st.max_weight_limit, (netuid,)),
            (st.subnetwork_n, (netuid,)),
        ]
        if mechid:
            calls.append((st.get_mechanism_count, (netuid,)))
        if epoch:
            calls.append((st.get_next_epoch_start_block, (netuid,)))
        answers = await self.many(*calls)
        since, limit, hyper, commit_reveal, min_allowed, max_limit, n, *rest = answers
        mechanisms = int(rest.pop(0)) if mechid else None
        next_epoch = rest.pop(0) if epoch else None
        version = getattr(hyper, "weights_version", None)
        return ChainState(
            block=int(block),
            uid=int(uid),
            since_last_update=None if since is None else int(since),
            rate_limit=int(limit or 0),
            weights_version=None if version is None else int(version),
            commit_reveal=bool(commit_reveal),
            min_allowed_weights=int(min_allowed or 0),
            max_weight_limit=float(max_limit) if max_limit else 1.0,
            n=int(n or 0),
            mechanisms=mechanisms,
            blocks_to_epoch=None if next_epoch is None else max(0, int(next_epoch) - int(block)),
        )

    async def rate(self, uid: int, netuid: int) -> tuple[int | None, int]:
        st = self.handle
        since, limit = await self.many(
            (st.blocks_since_last_update, (netuid, uid)), (st.weights_rate_limit, (netuid,))
        )
        return (None if since is None else int(since)), int(limit or 0)

    def fit(self, weights: dict[int, float], state: ChainState) -> tuple[list[int], list[float]]:
        # The SDK's helper clips and normalises; its padding (1e-5) quantises to 0.
        from bittensor.utils.weight_utils import process_weights

        padded = self.pad(weights, state)
        n = max(state.n, max(padded) + 1)
        dense = np.zeros(n, dtype=np.float32)
        for uid, weight in padded.items():
            dense[uid] = weight
        fitted_uids, fitted = process_weights(
            uids=np.arange(n, dtype=np.int64),
            weights=dense,
            num_neurons=n,
            min_allowed_weights=state.min_allowed_weights,
            max_weight_limit=state.max_weight_limit,
        )
        return [int(u) for u in fitted_uids], [float(w) for w in fitted]

    async def send(self, wallet: Any, plan: SendPlan) -> Any:
        uids = np.asarray(plan.uids, dtype=np.int64)
        weights = np.asarray(plan.weights, dtype=np.float32)
        waits = {
            "wait_for_inclusion": plan.wait_for_inclusion,
            "wait_for_finalization": plan.wait_for_finalization,
        }
        if _compat.BT_MAJOR >= 10:
            return await self.call(
                self.handle.set_weights,
                wallet=wallet,
                netuid=plan.netuid,
                uids=uids,
                weights=weights,
                mechid=plan.mechid,
                version_key=plan.version_key,
                max_attempts=1,
                block_time=plan.block_time,
                **waits,
            )
        if self.is_async:
            from bittensor.core.extrinsics.asyncex import mechanism
        else:
            from bittensor.core.extrinsics import mechanism
        from bittensor.core.settings import DEFAULT_PERIOD

        common = {
            "subtensor": self.handle,
            "wallet": wallet,
            "netuid": plan.netuid,
            "mechid": plan.mechid,
            "uids": uids,
            "weights": weights,
            "version_key": plan.version_key,
            "period": DEFAULT_PERIOD,
            **waits,
        }
        if plan.commit_reveal:
            return await self.call(
                mechanism.commit_timelocked_mechanism_weights_extrinsic,
                block_time=plan.block_time,
                **common,
            )
        return await self.call(mechanism.set_mechanism_weights_extrinsic, **common)


# -- bittensor 11 ------------------------------------------------------------------------


class ClientChain(Chain):
    """A bittensor 11 ``bt.Client`` or ``bt.SyncClient``, or one of its own for ``network``."""

    _handle: Any

    def __init__(self, client: Any, *, is_async: bool, network: str | None = None) -> None:
        super().__init__(client, is_async=is_async)
        self._network = network
        self._lock = threading.Lock()

    @property
    def handle(self) -> Any:
        if self._network is None:
            return self._handle
        with self._lock:
            if self._handle is None:
                import bittensor as bt

                self._handle = bt.SyncClient(self._network)
            return self._handle

    @handle.setter
    def handle(self, value: Any) -> None:
        self._handle = value

    async def read(self, hotkey: str, netuid: int, mechid: int, *, epoch: bool) -> ChainState:
        import bittensor as bt

        client = self.handle
        block = int(
            await client.block() if self.is_async else await self.call(lambda: client.block)
        )
        uid = await self.call(client.neurons.uid, hotkey, netuid)
        if uid is None:
            return ChainState(block=block, uid=None)
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (client.epochs.blocks_since_last_update, (netuid, uid)),
            (client.hyperparameters.weights_rate_limit, (netuid,)),
            (client.query, (bt.storage.SubtensorModule.WeightsVersionKey, [netuid])),
            (client.subnets.commit_reveal_enabled, (netuid,)),
            (client.hyperparameters.min_allowed_weights, (netuid,)),
            (client.hyperparameters.max_weight_limit, (netuid,)),
            (client.subnets.subnet, (netuid,)),
        ]
        if mechid:
            calls.append((client.subnets.mechanism_count, (netuid,)))
        if epoch:
            calls.append((client.epochs.blocks_until_next_epoch, (netuid,)))
        answers = await self.many(*calls)
        since, limit, version, commit_reveal, min_allowed, max_limit, subnet, *rest = answers
        mechanisms = int(rest.pop(0)) if mechid else None
        to_epoch = rest.pop(0) if epoch else None
        return ChainState(
            block=block,
            uid=int(uid),
            since_last_update=None if since is None else int(since),
            rate_limit=int(limit or 0),
            weights_version=None if version is None else int(version),
            commit_reveal=bool(commit_reveal),
            min_allowed_weights=int(min_allowed or 0),
            max_weight_limit=(int(max_limit) / U16_MAX) if max_limit else 1.0,
            n=int(getattr(subnet, "neuron_count", 0) or 0),
            mechanisms=mechanisms,
            blocks_to_epoch=None if to_epoch is None else int(to_epoch),
        )

    async def rate(self, uid: int, netuid: int) -> tuple[int | None, int]:
        client = self.handle
        since, limit = await self.many(
            (client.epochs.blocks_since_last_update, (netuid, uid)),
            (client.hyperparameters.weights_rate_limit, (netuid,)),
        )
        return (None if since is None else int(since)), int(limit or 0)

    def fit(self, weights: dict[int, float], state: ChainState) -> tuple[list[int], list[float]]:
        # bt.SetWeights clips and quantises itself, and refuses too few weights.
        padded = self.pad(weights, state)
        uids = sorted(padded)
        return uids, [padded[uid] for uid in uids]

    async def send(self, wallet: Any, plan: SendPlan) -> Any:
        import bittensor as bt

        intent = bt.SetWeights(
            netuid=plan.netuid,
            weights=dict(zip(plan.uids, plan.weights, strict=True)),
            mechid=plan.mechid,
            version_key=plan.version_key,
        )
        try:
            return await self.call(
                self.handle.execute,
                intent,
                wallet,
                wait_for_inclusion=plan.wait_for_inclusion,
                wait_for_finalization=plan.wait_for_finalization,
            )
        except bt.BittensorError as exc:  # the SDK's preflight refused, before signing
            return exc

    def close(self) -> None:
        if self._network is None:
            return
        with self._lock:
            client, self._handle = self._handle, None
        if client is not None:
            client.close()


# -- choosing one ------------------------------------------------------------------------


def chain_for(subtensor: Any, network: str | None) -> Chain:
    """The :class:`Chain` for what the caller passed, or a clear error."""
    if _compat.BT_MAJOR < 11:
        if network is not None:
            raise ValueError(
                f"network= picks bittensor 11's own client; on bittensor {_compat.BT_MAJOR} "
                "pass your connected subtensor (a bt.Subtensor or bt.AsyncSubtensor)"
            )
        if subtensor is None:
            raise ValueError(
                f"subtensor is required on bittensor {_compat.BT_MAJOR}: pass a connected "
                "bt.Subtensor or bt.AsyncSubtensor"
            )
        if not callable(getattr(subtensor, "set_weights", None)):
            raise TypeError(
                f"subtensor must be a bt.Subtensor or bt.AsyncSubtensor, got "
                f"{type(subtensor).__name__}"
            )
        return SubtensorChain(subtensor, is_async=_compat.is_async_subtensor(subtensor))
    import bittensor as bt

    if (subtensor is None) == (network is None):
        raise ValueError(
            "on bittensor 11 pass either subtensor= (a bt.Client, bt.SyncClient or "
            "bt.Subtensor) or network= (the setter then keeps a client of its own), not both"
        )
    if network is not None:
        return ClientChain(None, is_async=False, network=network)
    if isinstance(subtensor, bt.Client):
        return ClientChain(subtensor, is_async=True)
    if isinstance(subtensor, bt.SyncClient):
        return ClientChain(subtensor, is_async=False)
    raise TypeError(
        f"subtensor must be a bt.Client, bt.SyncClient or bt.Subtensor on bittensor 11, "
        f"got {type(subtensor).__name__}"
    )


# -- judging answers ---------------------------------------------------------------------


def judge(raw: Any, *, committed: bool = False) -> Verdict:
    """The outcome of what a send returned (or raised), on any major."""
    if isinstance(raw, BaseException):
        return _judge_exception(raw)
    success, message, error = unpack(raw)
    if success:
        done: Outcome = "committed" if committed else "set"
        return Verdict(done, message or ("weights committed" if committed else "weights set"))
    if not message and error is None:  # 10's set_weights made no attempt
        return Verdict("rate_limited", "the SDK sent nothing: too soon to set weights")
    if isinstance(error, BaseException) and getattr(error, "code", None) is not None:
        return _judge_exception(error, message)  # 11's ChainError
    names = [_name_in(message)]
    if isinstance(error, dict):  # 10's receipt error: {"type", "name", "docs"}
        names.append(str(error.get("name") or ""))
    elif isinstance(error, BaseException):  # 10's typed pool errors (TxRateLimitExceeded)
        names.append(type(error).__name__)
    refused = names[0] is not None or (isinstance(error, dict) and bool(error.get("name")))
    return _judge_names(message or _describe(error), names, refused=refused)


def _judge_exception(exc: BaseException, message: str = "") -> Verdict:
    message = message or _describe(exc)
    code = getattr(exc, "code", None)
    if code is None:  # anything but bittensor 11's coded errors
        lineage = {cls.__name__ for cls in type(exc).__mro__}
        if "BittensorError" in lineage and not lineage & _CONNECTION_ERRORS:
            return Verdict("rejected", message)  # 11's SDK refused the input
        named = _name_in(message)
        return _judge_names(message, [type(exc).__name__, named], refused=named is not None)
    code_text = str(getattr(code, "value", code))
    name = getattr(exc, "name", None)
    if name in _TOO_SOON or code_text == "rate_limited":
        retry = _RETRY_IN_TEXT.search(message)
        return Verdict("rate_limited", message, int(retry.group(1)) if retry else None)
    if name in _NOT_PERMITTED or code_text in ("not_registered", "not_authorized"):
        return Verdict("not_permitted", message)
    if code_text in ("unknown", "internal") and not name:
        return Verdict("error", message)
    return Verdict("rejected", message)


_CONNECTION_ERRORS = frozenset({"RpcConnectionError", "ConnectionNotReady"})


def unpack(raw: Any) -> tuple[bool, str, Any]:
    """``(success, message, error)`` of what a send returned: 10's ExtrinsicResponse,
    11's ExtrinsicResult (``success``, ``message``, ``error``) or 9's ``(success, message)``."""
    success = getattr(raw, "success", None)
    if success is None:
        success, message = raw
        return bool(success), str(message or ""), None
    return bool(success), str(getattr(raw, "message", None) or ""), getattr(raw, "error", None)


def say(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe(error: Any) -> str:
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    return str(error)


def _name_in(text: str) -> str | None:
    """The chain error named in bittensor 9/10's words, if any."""
    found = _NAME_IN_TEXT.search(text)
    if found and found.group(1) not in _NOT_A_NAME:
        return found.group(1)
    custom = _CUSTOM_IN_TEXT.search(text)
    if custom:
        return _CUSTOM_ERRORS.get(int(custom.group(1)), f"Custom({custom.group(1)})")
    return None


def _judge_names(message: str, names: Sequence[str | None], *, refused: bool) -> Verdict:
    """Judge by the error names found; ``refused``: the chain named its error."""
    named = [name for name in names if name]
    lowered = message.lower()
    if any(name in _TOO_SOON for name in named) or "too soon" in lowered:
        # "too soon": 9's set_weights, "Perhaps it is too soon to commit weights!"
        return Verdict("rate_limited", message)
    if any(name in _NOT_PERMITTED for name in named) or "not registered" in lowered:
        return Verdict("not_permitted", message)
    return Verdict("rejected" if refused else "error", message)


def _holding(lock: threading.Lock, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with lock:
        return fn(*args, **kwargs)
