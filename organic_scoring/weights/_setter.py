"""WeightSetter: weights to the chain when the chain allows, on every bittensor major."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from organic_scoring import _compat
from organic_scoring._defaults import DEFAULT_BLOCK_TIME, DEFAULT_RETRY_BLOCKS, DEFAULT_STOP_TIMEOUT
from organic_scoring._log import log
from organic_scoring.weights._background import Background, Run, running_loop
from organic_scoring.weights._book import ScoreBook, _check_unit, check_int
from organic_scoring.weights._chain import ChainState, SendPlan, chain_for, judge, say
from organic_scoring.weights._emit import check_weights
from organic_scoring.weights._result import OUTCOMES, Outcome, WeightSetterStats, WeightsResult

__all__ = ["WeightSetter", "WeightsSource"]

WeightsSource: TypeAlias = (
    ScoreBook | Mapping[int, float] | np.ndarray | Callable[[], ScoreBook | Mapping[int, float]]
)
"""What weights come from: a :class:`ScoreBook`, ``{uid: weight}``, a 1-D array indexed
by uid, or a function returning one of the first two (called at every attempt)."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    netuid: int = Field(ge=0)
    mechid: int = Field(default=0, ge=0)
    version_key: int | None = Field(default=None, ge=0)
    in_last_blocks: int | None = Field(default=None, gt=0)
    burn: tuple[int, float] | None = Field(default=None, strict=False)
    wait_for_inclusion: bool = True
    wait_for_finalization: bool = False
    block_time: float = Field(default=DEFAULT_BLOCK_TIME, gt=0)
    retry_blocks: int = Field(default=DEFAULT_RETRY_BLOCKS, gt=0)

    @field_validator("burn", mode="before")
    @classmethod
    def _check_burn(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError("burn must be a (uid, fraction) pair")
        uid, fraction = value
        return (check_int(uid, "the burn uid"), _check_unit(fraction, "the burn fraction"))


class WeightSetter:
    """Sets weights on chain when the chain allows it, on bittensor 9, 10 and 11: once
    (:meth:`set`) or in the background (:meth:`start`, :meth:`run`).

    Args:
        netuid: The subnet.
        wallet: The validator's wallet (its hotkey signs); on 11 anything
            ``bt.resolve_signer`` takes.
        subtensor: bittensor 9/10: a connected ``bt.Subtensor`` or
            ``bt.AsyncSubtensor``; 11: a ``bt.Client``, ``bt.SyncClient`` or
            ``bt.Subtensor``. Blocking calls run on a worker thread, one at a time.
        network: bittensor 11 only, instead of ``subtensor``: the setter opens a
            ``bt.SyncClient(network)`` of its own, released by :meth:`close`.
        version_key: The version key to send; None reads the subnet's weights
            version at every attempt.
        mechid: The subnet mechanism whose weights are set.
        in_last_blocks: Set weights only in the last this many blocks before the
            subnet's next epoch; None: whenever the rate limit allows.
        burn: ``(uid, fraction)``: ``fraction`` of the total weight to ``uid``, the
            rest as the book says.
        active: Whether this process may set weights now (in a fleet:
            ``scoring.holds_scorer_role``); asked on a worker thread before the reads
            and again just before each send. None: always.
        wait_for_inclusion, wait_for_finalization: Whether a send waits for its
            block (to learn the verdict) or for finality.
        block_time: Seconds per block, for the background run's waits.
        retry_blocks: Blocks the background run waits after a refusal or an error.

    Raises:
        pydantic.ValidationError: A setting is out of range (a ``ValueError``).
        ValueError: The SDK handle and ``network`` do not fit this bittensor major.
        TypeError: ``subtensor`` is not a client this major has.
    """

    def __init__(
        self,
        netuid: int,
        wallet: Any,
        subtensor: Any = None,
        *,
        network: str | None = None,
        version_key: int | None = None,
        mechid: int = 0,
        in_last_blocks: int | None = None,
        burn: tuple[int, float] | None = None,
        active: Callable[[], bool] | None = None,
        wait_for_inclusion: bool = True,
        wait_for_finalization: bool = False,
        block_time: float = DEFAULT_BLOCK_TIME,
        retry_blocks: int = DEFAULT_RETRY_BLOCKS,
    ) -> None:
        self._settings = _Settings(  # the arguments named as its fields
            **{k: v for k, v in locals().items() if k in _Settings.model_fields}
        )
        if wallet is None:
            raise ValueError("wallet is required: its hotkey signs the weights")
        if active is not None and not callable(active):
            raise TypeError(f"active must be a function returning a bool, got {active!r}")
        self._wallet = wallet
        self._active = active
        self._chain = chain_for(subtensor, network)
        self._hotkey: str | None = None
        self._stats_lock = threading.Lock()
        self._attempts: dict[Outcome, int] = dict.fromkeys(OUTCOMES, 0)
        self._last: WeightsResult | None = None
        self._last_success_block: int | None = None
        self._last_success_time: float | None = None
        self._since: int | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._background = Background("weight setter", "organic-scoring-weight-setter")
        self._metrics: list[Callable[[], None]] = []

    # -- facts ------------------------------------------------------------------------

    @property
    def netuid(self) -> int:
        """The subnet."""
        return self._settings.netuid

    @property
    def mechid(self) -> int:
        """The subnet mechanism."""
        return self._settings.mechid

    @property
    def is_running(self) -> bool:
        """True from :meth:`start` (or :meth:`run`) until the background run has ended."""
        return self._background.running

    @property
    def stats(self) -> WeightSetterStats:
        """A consistent snapshot of the attempts so far."""
        with self._stats_lock:
            return WeightSetterStats(
                attempts=dict(self._attempts),
                last_result=self._last,
                last_success_block=self._last_success_block,
                last_success_time=self._last_success_time,
                blocks_since_last_update=self._since,
                running=self._background.running,
            )

    def __repr__(self) -> str:
        return (
            f"WeightSetter(netuid={self.netuid}, mechid={self.mechid}, running={self.is_running})"
        )

    # -- one attempt ------------------------------------------------------------------

    async def set(self, weights: WeightsSource) -> WeightsResult:
        """Set ``weights`` (a :data:`WeightsSource`; only proportions matter) now if the
        chain allows it; never raises for the chain's answer. Sends nothing when no uid
        has a positive weight, when it is too soon (``"rate_limited"``), or when the
        chain would refuse the version key.

        Raises:
            ValueError: ``weights`` holds a negative or non-finite number, or a uid
                that is not an int >= 0. Nothing was sent.
        """
        chosen = _weights_of(weights)
        async with self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            result = await self._attempt(chosen)
        self._record(result)
        return result

    async def _may_send(self) -> bool:
        """``active()``, off the event loop (it may be a Redis round trip); True without."""
        active = self._active
        if active is None:
            return True
        try:
            return bool(await anyio.to_thread.run_sync(active))
        except Exception as exc:
            log.warning(f"weight setter: active() failed, so nothing is sent: {exc!r}")
            return False

    async def _attempt(self, chosen: dict[int, float]) -> WeightsResult:
        s = self._settings
        if not await self._may_send():
            return WeightsResult(False, _NOT_ACTIVE, outcome="not_permitted")
        positive = {uid: weight for uid, weight in chosen.items() if weight > 0.0}
        burn_all = s.burn is not None and s.burn[1] == 1.0
        if not positive and not burn_all:
            return WeightsResult(False, _NOTHING_TO_SEND, outcome="rejected")
        try:
            hotkey = self._hotkey_address()
        except Exception as exc:
            return WeightsResult(
                False, f"cannot use the wallet's hotkey: {say(exc)}", exc, outcome="error"
            )
        try:
            state = await self._chain.read(
                hotkey, s.netuid, s.mechid, epoch=s.in_last_blocks is not None
            )
        except Exception as exc:
            return WeightsResult(
                False, f"could not read the chain: {say(exc)}", exc, outcome="error"
            )
        with self._stats_lock:
            self._since = state.since_last_update
        refusal = self._check(state, positive)
        if refusal is not None:
            return refusal
        version = s.version_key if s.version_key is not None else state.weights_version
        assert version is not None  # _check refused otherwise
        try:
            uids, values = self._chain.fit(self._with_burn(positive), state)
        except Exception as exc:
            log.error(f"weight setter: fitting the weights failed: {exc!r}", exc_info=exc)
            return WeightsResult(
                False, f"could not fit the weights: {say(exc)}", exc, outcome="error"
            )
        if not await self._may_send():  # again: the reads take time
            return WeightsResult(False, _NOT_ACTIVE, outcome="not_permitted", block=state.block)
        plan = SendPlan(
            netuid=s.netuid,
            mechid=s.mechid,
            uids=uids,
            weights=values,
            version_key=version,
            commit_reveal=state.commit_reveal,
            wait_for_inclusion=s.wait_for_inclusion,
            wait_for_finalization=s.wait_for_finalization,
            block_time=s.block_time,
        )
        try:
            raw: Any = await self._chain.send(self._wallet, plan)
            verdict = judge(raw, committed=state.commit_reveal)
        except Exception as exc:
            raw = exc
            verdict = judge(exc)
        retry, message = verdict.retry_in_blocks, verdict.message
        done = verdict.outcome in ("set", "committed")
        if done:
            retry = state.rate_limit + self._chain.gap_extra
            message = f"{message} ({len(uids)} uids, version_key {version}, block {state.block})"
        elif verdict.outcome == "rate_limited" and retry is None:
            retry = await self._blocks_left(state)
        return WeightsResult(
            done, message, raw, outcome=verdict.outcome, block=state.block, retry_in_blocks=retry
        )

    def _check(self, state: ChainState, positive: dict[int, float]) -> WeightsResult | None:
        """The refusal or the wait that applies before anything is sent, if any."""
        s = self._settings

        def refuse(outcome: Outcome, message: str, retry: int | None = None) -> WeightsResult:
            return WeightsResult(
                False, message, outcome=outcome, block=state.block, retry_in_blocks=retry
            )

        if state.uid is None:
            return refuse(
                "not_permitted",
                f"hotkey {self._hotkey} is not registered on subnet {s.netuid}: nothing was sent",
            )
        if state.mechanisms is not None and s.mechid >= state.mechanisms:
            return refuse(
                "rejected",
                f"subnet {s.netuid} has {state.mechanisms} mechanism(s); mechid {s.mechid} "
                "is not one: nothing was sent",
            )
        if s.version_key is None and state.weights_version is None:
            return refuse(
                "error",
                f"could not read subnet {s.netuid}'s weights version: nothing was sent "
                "(version_key= sets one)",
            )
        if (
            s.version_key is not None
            and state.weights_version is not None
            and s.version_key < state.weights_version
        ):
            return refuse(
                "rejected",
                f"version_key {s.version_key} is below subnet {s.netuid}'s weights version "
                f"{state.weights_version}, which the chain refuses: nothing was sent",
            )
        outside = [uid for uid in positive if state.n and uid >= state.n]
        if s.burn is not None and state.n and s.burn[0] >= state.n:
            outside.append(s.burn[0])
        if outside:
            return refuse(
                "rejected",
                f"uid(s) {sorted(set(outside))} are not in subnet {s.netuid}, which has "
                f"{state.n} uids: nothing was sent",
            )
        wait = self._chain.wait_blocks(state)
        if wait > 0:
            return refuse(
                "rate_limited",
                f"too soon: {state.since_last_update} blocks since this hotkey's last update, "
                f"the rate limit is {state.rate_limit}; retry in {wait} blocks",
                wait,
            )
        window = s.in_last_blocks
        to_epoch = state.blocks_to_epoch
        if window is not None and to_epoch is not None and to_epoch > window:
            return refuse(
                "rate_limited",
                f"waiting for the last {window} blocks of the epoch "
                f"({to_epoch} blocks to the next one)",
                to_epoch - window,
            )
        return None

    def _with_burn(self, positive: dict[int, float]) -> dict[int, float]:
        burn = self._settings.burn
        if burn is None:
            return positive
        uid, fraction = burn
        total = math.fsum(positive.values())
        mixed = {u: (1.0 - fraction) * w / total for u, w in positive.items()} if total else {}
        mixed[uid] = mixed.get(uid, 0.0) + fraction
        return {u: w for u, w in mixed.items() if w > 0.0}

    async def _blocks_left(self, state: ChainState) -> int:
        """Blocks until the chain takes weights again, read afresh after a "too soon"."""
        if state.uid is None:
            return 1
        try:
            since, limit = await self._chain.rate(state.uid, self._settings.netuid)
        except Exception:
            return 1
        fresh = dataclasses.replace(state, since_last_update=since, rate_limit=limit)
        return max(1, self._chain.wait_blocks(fresh))

    def _hotkey_address(self) -> str:
        if self._hotkey is None:
            self._hotkey = _compat.hotkey_signer(self._wallet).ss58_address
        return self._hotkey

    def _record(self, result: WeightsResult) -> None:
        with self._stats_lock:
            self._attempts[result.outcome] += 1
            self._last = result
            if result.success:
                self._last_success_block = result.block
                self._last_success_time = time.time()
        where = f"netuid {self.netuid}" + (f" mechid {self.mechid}" if self.mechid else "")
        line = f"weights {result.outcome} on {where}: {result.message}"
        if result.success or result.message == _NOTHING_TO_SEND:
            log.info(line)
        elif result.outcome == "rate_limited":
            # Nothing sent: a wait, not news. The chain's own "too soon" is news.
            (log.info if result.raw is not None else log.debug)(line)
        elif result.outcome == "error":
            log.error(line)
        else:
            log.warning(line)

    # -- the background run -----------------------------------------------------------

    async def run(self, weights: WeightsSource) -> None:
        """Set ``weights`` whenever the chain allows, until :meth:`stop` or cancelled.

        Between attempts it waits the blocks the chain asks for, or ``retry_blocks``
        after a refusal, an error or invalid weights (logged).

        Raises:
            RuntimeError: The setter is already running.
        """
        await self._background.run_here(self._body(weights))

    def start(self, weights: WeightsSource) -> None:
        """Run :meth:`run` in the background: a task of the running loop, else a thread.

        Raises:
            RuntimeError: Already running; or an async client without a running loop
                (it belongs to its event loop: start from a coroutine on it).
        """
        if self._chain.is_async and running_loop() is None:
            raise RuntimeError(
                "this subtensor is async and belongs to its event loop: call start() from a "
                "coroutine on that loop, or await setter.run(weights)"
            )
        self._background.start(self._body(weights))

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the background run and wait up to ``timeout`` seconds for an attempt in
        flight (then cancelled, if :meth:`start` started it). Idempotent; any thread. On
        the run's own event loop it only asks: ``await`` :meth:`aclose` there."""
        self._background.stop(timeout)

    async def aclose(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the background run and release the setter's own client, without
        blocking the calling event loop."""
        await self._background.aclose(timeout)
        await asyncio.to_thread(self._close_chain)

    def close(self) -> None:
        """Stop the background run and release the setter's own client (``network=``).
        Idempotent; the setter stays usable."""
        self.stop()
        self._close_chain()

    def _close_chain(self) -> None:
        self._chain.close()
        for unregister in self._metrics:
            unregister()
        self._metrics.clear()

    def __enter__(self) -> WeightSetter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> WeightSetter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _body(self, weights: WeightsSource) -> Callable[[Run], Awaitable[None]]:
        async def body(run: Run) -> None:
            s = self._settings
            log.info(f"weight setter: started on netuid {s.netuid}")
            try:
                while not run.stopping:
                    blocks = s.retry_blocks
                    try:
                        result = await self.set(weights)
                    except ValueError as exc:
                        log.error(f"weight setter: the weights are not valid: {exc}")
                    except Exception as exc:
                        log.error(f"weight setter: the attempt failed: {exc!r}", exc_info=exc)
                    else:
                        if result.outcome in ("set", "committed", "rate_limited"):
                            blocks = max(1, result.retry_in_blocks or 1)
                    if not run.stopping:
                        await run.sleep(blocks * s.block_time)
            finally:
                log.info(f"weight setter: stopped on netuid {s.netuid}")

        return body

    # -- metrics ----------------------------------------------------------------------

    def export_metrics(
        self, registry: Any = None, *, labels: Mapping[str, str] | None = None
    ) -> None:
        """Export this setter's figures (``organic_scoring_weights_*``, labelled ``netuid``,
        ``mechid`` and ``labels``) on ``registry`` (default: prometheus_client's), read
        at scrape time; :meth:`close` removes them.

        Raises:
            ValueError: This registry already exports a setter with these labels.
        """
        from organic_scoring.weights._metrics import export

        own = {"netuid": str(self.netuid), "mechid": str(self.mechid)}
        self._metrics.append(export(lambda: self.stats, own, registry, labels or {}))


_NOTHING_TO_SEND = "no uid has a positive weight: nothing was sent"
_NOT_ACTIVE = "not the active scorer: nothing was sent"


def _weights_of(weights: Any) -> dict[int, float]:
    if callable(weights) and not isinstance(weights, (ScoreBook, Mapping)):
        weights = weights()
    if isinstance(weights, ScoreBook):
        return weights.as_dict()
    if isinstance(weights, np.ndarray):
        if weights.ndim != 1:
            raise ValueError(f"a weights array must be 1-D (indexed by uid), got {weights.ndim}-D")
        weights = dict(enumerate(weights.tolist()))
    return check_weights(weights)
