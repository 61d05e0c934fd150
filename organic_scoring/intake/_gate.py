"""The intake gate: one pipeline behind every transport.

A transport (the axon, btauth/1 HTTP, Epistula HTTP) turns its wire format into the
gate's inputs and calls these steps in this order; each one refuses by raising
:class:`Refused` with the status every transport answers with:

==========  =====================================================  ======
step        what                                                   refusal
==========  =====================================================  ======
identify    the claimed hotkey is an SS58 address (401) written     401/400
            the canonical way, format 42 (400)
screen      ``allowed_hotkeys`` admits the hotkey, before any       403
            byte of the body is read or any signature verified
fresh       signed at most ``max_age`` ago, not ahead by more than  401
            ``allowed_skew``, and not before the intake started
(the transport reads the body and verifies the signature: 401 when it fails)
remember    still fresh, and the (hotkey, nonce) pair was never     401
            accepted before (the nonce store failing: 503); no     429
            store call while ``max_concurrent + max_backlog``
            requests are already in it or holding a slot or
            waiting for one
blacklist   ``_blacklist_fn`` refuses (403); raises (500)
(the transport parses the request: 400 or 422)
verify      ``_verify_fn`` returns False or raises                  403
priority    ``_priority_fn``, a number (NaN ranks last); raises     500
admit       ``max_concurrent`` requests at once, the rest wait,     429
            highest priority first, at most ``max_backlog`` of them
handle      ``receive_organic(request)``: counted as accepted, or   500
            as a handler error when ``_on_organic_entry`` raises
            (503 when the organic queue is unavailable)
==========  =====================================================  ======

Cheap steps come first, so an outsider costs no signature check and no nonce.
``_blacklist_fn`` / ``_verify_fn`` answer with a flag or ``(flag, reason)``;
``_verify_fn`` returning None accepts. Plain-function hooks run on worker threads;
while ``max(4, max_concurrent)`` abandoned calls still run, a plain hook's step fails
at once with :class:`RuntimeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import anyio

from organic_scoring._defaults import DEFAULT_ALLOWED_SKEW, DEFAULT_MAX_AGE
from organic_scoring._log import log
from organic_scoring._loop.hooks import Hook, PlainCalls, overrides, ungrouped
from organic_scoring._redact import describe_error
from organic_scoring.base import OrganicScoringBase, runtime
from organic_scoring.errors import QueueUnavailable
from organic_scoring.intake._admission import AdmissionGate, BacklogFull
from organic_scoring.intake._identity import AllowedHotkeys, admits, canonical, hotkey_policy
from organic_scoring.intake._quota import Quota
from organic_scoring.intake._replay import (
    Freshness,
    InMemoryNonceStore,
    NonceStore,
    NonceStoreFailure,
    aremember,
    check_retention,
)
from organic_scoring.organic_queue._base import request_key

__all__ = ["Gate", "Refused"]


class Refused(Exception):
    """The gate refuses a request: answer ``status`` with ``message`` (safe to show)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.detail = detail


class Gate:
    """One scorer's intake pipeline; each transport builds one and calls its steps.

    Args:
        scorer: The scorer whose hooks the gate runs.
        transport: A label for the stats (``"axon"``, ``"btauth/1"``, ``"epistula"``).
        max_concurrent: Requests handled at once.
        max_backlog: Requests allowed to wait for a slot; more get 429.
        max_age, allowed_skew: The freshness window (seconds).
        nonce_store: Where accepted nonces are kept; default an
            :class:`~organic_scoring.intake.InMemoryNonceStore`. Share one (Redis)
            between processes serving the same hotkey.

    The gate belongs to one event loop at a time (the server's).
    """

    def __init__(
        self,
        scorer: OrganicScoringBase,
        transport: str,
        *,
        max_concurrent: int = 32,
        max_backlog: int = 256,
        max_age: float = DEFAULT_MAX_AGE,
        allowed_skew: float = DEFAULT_ALLOWED_SKEW,
        nonce_store: NonceStore | None = None,
        allowed_hotkeys: Any = None,
        quota: Quota | None = None,
    ) -> None:
        if not isinstance(scorer, OrganicScoringBase):
            raise TypeError(f"scoring must be an OrganicScoringBase, got {type(scorer).__name__}")
        self.transport = transport
        # Read through the base class's descriptor: a subclass may shadow ``config``.
        config = OrganicScoringBase.__dict__["config"].__get__(scorer, type(scorer))
        if allowed_hotkeys is None:
            allowed_hotkeys = config.allowed_hotkeys
        self.allowed: AllowedHotkeys = hotkey_policy(allowed_hotkeys)
        if quota is not None and not isinstance(quota, Quota):
            raise TypeError(f"quota must be an organic_scoring.intake.Quota, got {quota!r}")
        self.quota = quota
        if nonce_store is None:
            nonce_store = InMemoryNonceStore(retention=max(60.0, max_age + allowed_skew))
        self.freshness = Freshness(max_age, allowed_skew, time.time_ns(), nonce_store)
        check_retention(nonce_store, self.freshness.window)
        self.nonce_store: NonceStore = nonce_store
        self._redacting = config.redact is not False
        self._stats = runtime(scorer).stats
        self._handler = Hook(
            functools.partial(OrganicScoringBase.receive_organic, scorer), "_on_organic_entry"
        )
        self._blacklist = _overridden(scorer, "_blacklist_fn")
        self._verify = _overridden(scorer, "_verify_fn")
        self._priority = _overridden(scorer, "_priority_fn")
        self._admission = AdmissionGate(max_concurrent, max_backlog)
        self._capacity = max_concurrent + max_backlog
        self._remembering = 0  # requests in the nonce store's call now
        self._plain = PlainCalls(max(4, max_concurrent), "the intake's plain hooks")
        self._outages = _Outages(transport)

    @property
    def in_flight(self) -> int:
        """Requests holding a handler slot now."""
        return self._admission.active

    @property
    def waiting(self) -> int:
        """Requests waiting for a handler slot now."""
        return self._admission.waiting

    # -- before the body: cheap ---------------------------------------------------

    def identify(self, claimed: str) -> str:
        """The caller's identity: ``claimed`` if it is a canonical SS58 hotkey.

        Raises:
            Refused: 401 when ``claimed`` is not an SS58 address; 400 when it is one
                written with another network prefix than 42 (the same key has one
                spelling per prefix, and every later step keys on the spelling).
        """
        try:
            hotkey = canonical(claimed)
        except (ValueError, TypeError):
            raise Refused(401, "the claimed hotkey is not an SS58 address") from None
        if hotkey != claimed:
            raise Refused(400, f"write the hotkey in SS58 format 42: {hotkey}")
        return hotkey

    def screen(self, hotkey: str) -> None:
        """Refuse (403) a hotkey that ``allowed_hotkeys`` does not admit."""
        try:
            allowed = admits(self.allowed, hotkey)
        except Exception as exc:
            raise self.hook_failed("allowed_hotkeys", hotkey, exc) from exc
        if not allowed:
            raise Refused(403, "this hotkey is not in the validator's allowed_hotkeys")

    def check_fresh(self, signed_at_ns: int, resolution_ns: int = 1) -> None:
        """Refuse (401) a request signed outside the window or before the intake started;
        put off (503, ``Retry-After``) one signed in the first ``allowed_skew`` seconds
        after the start, which a previous process with a forgetful nonce store may
        have accepted already."""
        freshness = self.freshness
        problem = freshness.problem(signed_at_ns, resolution_ns=resolution_ns)
        if problem is not None:
            raise Refused(401, problem)
        wait = freshness.settling(signed_at_ns)
        if wait is not None:
            raise Refused(
                503,
                f"this intake started less than {freshness.allowed_skew:g}s ago and cannot "
                "yet tell a replay from a new request; sign it again in a moment",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    # -- after the signature -----------------------------------------------------

    async def remember(
        self, hotkey: str, nonce: int | str, signed_at_ns: int, resolution_ns: int = 1
    ) -> None:
        """Refuse (401) a replayed nonce, or a request no longer fresh; 503 when the
        nonce store itself fails; 429 (``Retry-After``) without asking the store when
        as many requests as admission control holds (``max_concurrent +
        max_backlog``) are in the store's call, in a slot or waiting for one.

        Freshness is re-checked here, after the body was read. A store whose
        ``blocking`` is not False is called on a worker thread.
        """
        self.check_fresh(signed_at_ns, resolution_ns)
        admission = self._admission
        # Admission control before the store: a store that hangs holds a bounded
        # number of requests, and the rest are told at once to come back.
        if self._remembering + admission.active + admission.waiting >= self._capacity:
            raise Refused(
                429,
                "too many organic requests waiting, try again later",
                headers={"Retry-After": "1"},
            )
        self._remembering += 1
        try:
            fresh = await self._remember(hotkey, nonce)
        finally:
            self._remembering -= 1
        if not fresh:
            raise Refused(401, "this request was already accepted (a replay)")
        request_key.set(f"{hotkey}:{nonce}")  # a queue's idempotent add keys by it

    async def _remember(self, hotkey: str, nonce: int | str) -> bool:
        try:
            fresh = await aremember(self.nonce_store, hotkey, nonce)
        except NonceStoreFailure as exc:
            self._outages.refused("the nonce store", exc.__cause__ or exc)
            raise Refused(503, "replay protection is unavailable, try again later") from exc
        self._outages.answers("the nonce store")
        return fresh

    async def charge(self, hotkey: str) -> None:
        """Spend one request of ``hotkey``'s quota: 429 (``Retry-After``) when it has
        none left; 503 when the quota's store fails. Called once the signature is
        checked, so a forged claim spends nothing."""
        quota = self.quota
        if quota is None:
            return
        try:
            if quota.blocking:
                wait = await anyio.to_thread.run_sync(quota.take, hotkey)
            else:
                wait = quota.take(hotkey)
        except Exception as exc:
            self._outages.refused("the quota store", exc)
            raise Refused(
                503, "quotas are unavailable, try again later", headers={"Retry-After": "1"}
            ) from exc
        self._outages.answers("the quota store")
        if wait > 0:
            raise Refused(
                429,
                "this hotkey is over its quota, try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def blacklist(self, subject: Any, hotkey: str) -> None:
        """Run ``_blacklist_fn(subject)``: 403 when it refuses, 500 when it raises."""
        if self._blacklist is None:
            return
        try:
            result = await self._call(self._blacklist, subject)
        except Exception as exc:
            raise self.hook_failed("_blacklist_fn", hotkey, exc) from exc
        reason = _refusal(result, refuse_when=True, default="blacklisted")
        if reason is not None:
            raise Refused(403, reason)

    async def verify(self, request: Any, hotkey: str) -> None:
        """Run ``_verify_fn(request)``: 403 when it returns False or raises."""
        if self._verify is None:
            return
        try:
            result = await self._call(self._verify, request)
        except Exception as exc:
            error = describe_error(exc, self._redacting)
            log.debug(f"organic intake: _verify_fn raised {error} for {hotkey}")
            raise Refused(403, "rejected by the validator") from exc
        reason = _refusal(result, refuse_when=False, default="rejected by the validator")
        if reason is not None:
            raise Refused(403, reason)

    async def priority(self, request: Any, hotkey: str) -> float:
        """``_priority_fn(request)`` as a float (0.0 when not overridden; NaN ranks last).

        Raises:
            Refused: 500 when the hook raises or returns something that is not a number.
        """
        if self._priority is None:
            return 0.0
        try:
            value = await self._call(self._priority, request)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"_priority_fn must return a number, got {value!r}")
        except Exception as exc:
            raise self.hook_failed("_priority_fn", hotkey, exc) from exc
        value = float(value)
        return -math.inf if math.isnan(value) else value

    @contextlib.asynccontextmanager
    async def admitted(
        self, priority: float, gone: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> AsyncIterator[bool]:
        """Hold a handler slot for the block; yields False if the caller left while waiting.

        ``gone`` returns once the caller has hung up; without it, a waiting request
        waits until its turn.

        Raises:
            Refused: 429 when every slot is taken and the backlog is full.
        """
        admission = self._admission
        if not admission.try_enter():
            try:
                waiter = admission.queue(priority)
            except BacklogFull:
                raise Refused(
                    429,
                    "too many organic requests waiting, try again later",
                    headers={"Retry-After": "1"},
                ) from None
            if not await _wait_for_turn(admission, waiter, gone):
                yield False
                return
        try:
            yield True
        finally:
            admission.leave()

    async def handle(self, request: Any) -> Any:
        """``receive_organic(request)``: what ``_on_organic_entry`` returned.

        Raises:
            Refused: 503 when the handler failed because the organic queue is
                unavailable (a :class:`~organic_scoring.errors.QueueUnavailable`, such
                as a Redis outage, raised or behind what was raised): the request
                was not accepted, and the caller may try again.
            Exception: Whatever else the handler raised (counted as a handler error).
        """
        try:
            result = await self._call(self._handler, request)
        except Exception as exc:
            if _queue_unavailable(exc):
                self._outages.refused("the organic queue", exc)
                raise Refused(
                    503,
                    "the organic queue is unavailable, try again later",
                    headers={"Retry-After": "1"},
                ) from exc
            raise
        self._outages.answers("the organic queue")
        return result

    async def pass_through(self, subject: Any, request: Callable[[], Any], hotkey: str) -> Any:
        """The hook steps every transport shares, in order: blacklist, the request
        (``request()`` parses it, refusing with 400 or 422), verify, priority; returns
        the request and its priority as ``(request, priority)``."""
        await self.blacklist(subject, hotkey)
        parsed = request()
        await self.verify(parsed, hotkey)
        return parsed, await self.priority(parsed, hotkey)

    def hook_failed(self, hook: str, hotkey: str, exc: BaseException) -> Refused:
        """Log that ``hook`` raised for ``hotkey``; the 500 to answer with.

        With the scorer's ``redact`` on, the log carries the exception's type and
        frames, not its message (which may quote the request).
        """
        if self._redacting:
            log.error(f"organic intake: {hook} raised for {hotkey}: {describe_error(exc, True)}")
        else:
            log.error(f"organic intake: {hook} raised for {hotkey}: {exc!r}", exc_info=exc)
        return Refused(500, "internal error")

    def record(self, status: int, began: float) -> None:
        """Count one answer (``status``) and its duration since ``began`` (perf_counter)."""
        self._stats.intake(self.transport, status, time.perf_counter() - began)

    async def _call(self, hook: Hook, argument: Any) -> Any:
        if hook.is_async:
            return await hook.fn(argument)
        result = await self._plain.run(hook.fn, argument)
        if asyncio.iscoroutine(result):
            result = await result
        return result


# At most one line per store and this many seconds while requests are refused.
_OUTAGE_LOG_INTERVAL = 10.0


class _Outages:
    """Logs the 503s a failing store causes: one line per store at most every
    ``_OUTAGE_LOG_INTERVAL`` seconds, counting those it did not log, and one line when
    the store answers again. No tracebacks: every refusal has the same one."""

    def __init__(self, transport: str) -> None:
        self._transport = transport
        self._last: dict[str, float] = {}  # store -> when its last line was logged
        self._unlogged: dict[str, int] = {}  # store -> refusals since that line
        self._total: dict[str, int] = {}  # store -> refusals in this outage

    def refused(self, store: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._total[store] = self._total.get(store, 0) + 1
        last = self._last.get(store)
        if last is not None and now - last < _OUTAGE_LOG_INTERVAL:
            self._unlogged[store] = self._unlogged.get(store, 0) + 1
            return
        self._last[store] = now
        unlogged = self._unlogged.pop(store, 0)
        more = f" ({unlogged} more refused since the last line)" if unlogged else ""
        log.error(
            f"organic intake ({self._transport}): {store} failed, answering 503: "
            f"{_one_line(exc)}{more}"
        )

    def answers(self, store: str) -> None:
        if store not in self._total:
            return
        total = self._total.pop(store)
        self._last.pop(store, None)
        self._unlogged.pop(store, None)
        log.warning(
            f"organic intake ({self._transport}): {store} answers again, "
            f"after {total} request(s) refused with 503"
        )


def _one_line(exc: BaseException) -> str:
    """``exc`` as ``Type: message`` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _wait_for_turn(
    admission: AdmissionGate,
    waiter: asyncio.Future[None],
    gone: Callable[[], Coroutine[Any, Any, None]] | None,
) -> bool:
    """Wait for the granted slot; False (and the place given up) if the caller left."""
    left = False

    async def watch(gone: Callable[[], Coroutine[Any, Any, None]]) -> None:
        nonlocal left
        await gone()
        left = True
        group.cancel_scope.cancel()

    try:
        if gone is None:
            await waiter
            return True
        with ungrouped():
            async with anyio.create_task_group() as group:
                group.start_soon(watch, gone)
                # asyncio.wait leaves the waiter alone when the caller leaves first.
                await asyncio.wait((waiter,))
                group.cancel_scope.cancel()
    except BaseException:
        admission.withdraw(waiter)
        raise
    if left:
        admission.withdraw(waiter)  # passes the slot on if it had just been granted
        return False
    return True


def _queue_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from or while handling, is a
    :class:`QueueUnavailable`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, QueueUnavailable):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _overridden(scorer: OrganicScoringBase, name: str) -> Hook | None:
    """The resolved hook, or None when it is the base class's do-nothing default."""
    if not overrides(scorer, OrganicScoringBase, name):
        return None
    return Hook(getattr(scorer, name), name)


def _refusal(result: Any, *, refuse_when: bool, default: str) -> str | None:
    """Read a hook's verdict: ``flag`` or ``(flag, reason)``; None never refuses."""
    reason = ""
    if isinstance(result, (tuple, list)):
        if len(result) > 1 and isinstance(result[1], str):
            reason = result[1]
        result = result[0] if result else None
    if result is None or bool(result) is not refuse_when:
        return None
    return reason or default
