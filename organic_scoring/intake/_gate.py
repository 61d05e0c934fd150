"""The intake gate: one pipeline behind every transport, its step order written once.

A transport adapts its wire format to a :class:`Wire` and hands it to
:meth:`Gate.serve`, which runs the steps claim, identify, screen, fresh, length, body,
check (:meth:`Gate.receive`), then remember, charge, blacklist, parse, verify,
priority, admit, handle (:meth:`Gate.proceed`); each refuses by raising
:class:`Refused` with its status (the table is in ``docs/intake.md``). The axon calls
the two halves itself, because bittensor's own signature check sits between them.
Plain-function hooks run on worker threads; while ``max(4, max_concurrent)``
abandoned calls still run, a plain hook's step fails at once with
:class:`RuntimeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from organic_scoring._log import log
from organic_scoring._loop.hooks import Hook, PlainCalls, overrides, ungrouped
from organic_scoring._redact import describe_error
from organic_scoring.base import OrganicScoringBase, runtime
from organic_scoring.errors import QueueUnavailable
from organic_scoring.intake._admission import AdmissionGate, BacklogFull
from organic_scoring.intake._body import (
    BodyBudget,
    BodyTooLarge,
    BodyTooSlow,
    ClientGone,
    InvalidLength,
    OverBudget,
    check_declared_length,
    network,
    read_body,
)
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
from organic_scoring.intake._settings import IntakeSettings
from organic_scoring.organic_queue._base import request_key

if TYPE_CHECKING:  # starlette comes with every transport
    from starlette.types import Receive, Scope

__all__ = ["GONE", "Claim", "Gate", "Received", "Refused", "Wire"]

GONE = 499
"""Counted, never sent: the caller hung up (nginx's "client closed request")."""


class Refused(Exception):
    """The gate refuses a request: answer ``status`` with ``message`` (safe to show),
    and ``Retry-After`` (whole seconds, at least 1) when ``retry_after`` is given."""

    def __init__(
        self, status: int, message: str, *, retry_after: float | None = None, detail: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        wait = None if retry_after is None else str(max(1, math.ceil(retry_after)))
        self.headers = {} if wait is None else {"Retry-After": wait}
        self.detail = detail


def _busy() -> Refused:
    return Refused(429, "too many organic requests waiting, try again later", retry_after=1)


@dataclass(frozen=True)
class Claim:
    """What a request's headers claim, before anything is verified."""

    hotkey: str
    signed_at_ns: int
    """When it was signed; the latest moment of it when ``resolution_ns`` > 1."""
    nonce: int | str
    resolution_ns: int = 1
    """How precisely the signing time is known (1: to the nanosecond)."""


class Wire(ABC):
    """One request as a transport reads and answers it; the gate decides the rest.

    ``scope`` and ``receive`` are the request's ASGI ones; ``gone``, when set, returns
    once the caller has hung up.
    """

    scope: Scope
    receive: Receive
    gone: Callable[[], Coroutine[Any, Any, None]] | None = None

    @abstractmethod
    def claim(self) -> Claim:
        """The claim, from the headers alone (401 missing or malformed, 400 repeated)."""

    @abstractmethod
    def content_length(self) -> str | None:
        """The ``Content-Length`` header, if any."""

    @abstractmethod
    def check(self, claim: Claim, body: bytes) -> Any:
        """Check the body before it is trusted (the signature: 401); the caller record."""

    def entered(self, claim: Claim, caller: Any) -> contextlib.AbstractContextManager[Any]:
        """Held while the verified request is handled; yields what ``_blacklist_fn``
        receives."""
        return contextlib.nullcontext(caller)

    @abstractmethod
    def parse(self, body: bytes) -> Any:
        """The request ``_verify_fn``, ``_priority_fn`` and the handler receive (400/422)."""

    @abstractmethod
    async def respond(self, result: Any) -> int:
        """Answer with what the handler returned; the status answered."""

    async def refuse(self, refused: Refused) -> None:
        """Answer with a refusal (only :meth:`Gate.serve` asks)."""
        raise NotImplementedError


@dataclass(eq=False)
class Received:
    """A request through :meth:`Gate.receive`; its body holds budget until :meth:`release`."""

    claim: Claim
    body: bytes
    caller: Any
    _release: Callable[[], None] = field(repr=False)

    def release(self) -> None:
        """The signature is checked: give the body's share of the budget back."""
        self._release()


class Gate:
    """One scorer's intake pipeline; each transport builds one and serves through it.

    Args:
        scorer: The scorer whose hooks the gate runs.
        transport: A label for the stats (``"axon"``, ``"btauth/1"``, ``"epistula"``).
        settings: The limits; default ``IntakeSettings()``.
        nonce_store: Where accepted nonces are kept; default an
            :class:`~organic_scoring.intake.InMemoryNonceStore`. Share one (Redis)
            between processes serving the same hotkey.
        allowed_hotkeys: Who may call; default the scorer's ``allowed_hotkeys``.
        quota: Each hotkey's share; None for no per-caller limit.

    The gate belongs to one event loop at a time (the server's).
    """

    def __init__(
        self,
        scorer: OrganicScoringBase,
        transport: str,
        settings: IntakeSettings | None = None,
        *,
        nonce_store: NonceStore | None = None,
        allowed_hotkeys: Any = None,
        quota: Quota | None = None,
    ) -> None:
        if not isinstance(scorer, OrganicScoringBase):
            raise TypeError(f"scoring must be an OrganicScoringBase, got {type(scorer).__name__}")
        if settings is None:
            settings = IntakeSettings()
        elif not isinstance(settings, IntakeSettings):
            raise TypeError(
                f"settings must be an organic_scoring.intake.IntakeSettings, got {settings!r}"
            )
        self.settings = settings
        self.transport = transport
        # Read through the base class's descriptor: a subclass may shadow ``config``.
        config = OrganicScoringBase.__dict__["config"].__get__(scorer, type(scorer))
        if allowed_hotkeys is None:
            allowed_hotkeys = config.allowed_hotkeys
        self.allowed: AllowedHotkeys = hotkey_policy(allowed_hotkeys)
        if quota is not None and not isinstance(quota, Quota):
            raise TypeError(f"quota must be an organic_scoring.intake.Quota, got {quota!r}")
        self.quota = quota
        max_age, allowed_skew = settings.max_age, settings.allowed_skew
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
        self.budget = BodyBudget(
            settings.max_unverified_bytes, settings.max_unverified_bytes_per_hotkey
        )
        self._admission = AdmissionGate(settings.max_concurrent, settings.max_backlog)
        self._capacity = settings.max_concurrent + settings.max_backlog
        self._pending = 0  # past the capacity check, not yet admitted
        self._plain = PlainCalls(max(4, settings.max_concurrent), "the intake's plain hooks")
        self._outages = _Outages(transport)

    # -- the pipeline --------------------------------------------------------------

    async def serve(self, wire: Wire) -> int:
        """Every step in order, refusals answered through ``wire.refuse``; the status
        answered (:data:`GONE` when the caller hung up), counted in the stats."""
        began = time.perf_counter()
        try:
            received = await self.receive(wire)
            received.release()  # the wire checked the signature
            status = await self.proceed(wire, received)
        except Refused as refused:
            await wire.refuse(refused)
            status = refused.status
        except ClientGone:
            status = GONE
        self.record(status, began)
        return status

    async def receive(self, wire: Wire) -> Received:
        """The steps up to the body's check; the body holds budget until released.

        Raises:
            Refused: The step's refusal.
            ClientGone: The caller hung up during the body.
        """
        claim = wire.claim()
        hotkey = self.identify(claim.hotkey)
        self.screen(hotkey)
        self.check_fresh(claim.signed_at_ns, claim.resolution_ns)
        settings = self.settings
        limit = settings.max_body_bytes
        try:
            declared = check_declared_length(wire.content_length(), limit)
        except InvalidLength:
            raise Refused(400, "invalid Content-Length") from None
        except BodyTooLarge:  # not closing: that resets a client still writing
            raise Refused(413, f"request body exceeds {limit} bytes") from None
        try:
            # A claim costs nothing to forge: each address (an IPv6 one's /64) gets its
            # own share of it.
            peer = network(str((wire.scope.get("client") or ("",))[0]))
            release = self.budget.take(hotkey, peer, limit if declared is None else declared)
        except OverBudget as over:
            raise Refused(
                429 if over.per_hotkey else 503,
                "too many request bodies are being read for this hotkey, try again later"
                if over.per_hotkey
                else "too many request bodies are being read, try again later",
                retry_after=1,
            ) from None
        try:
            body = await read_body(wire.receive, limit, settings.body_timeout, declared)
            caller = wire.check(claim, body)
        except BodyTooLarge:
            release()
            if declared is not None:  # framed by its chunks, past the length it declared
                raise Refused(400, "request body is longer than its Content-Length") from None
            raise Refused(413, f"request body exceeds {limit} bytes") from None
        except BodyTooSlow:
            release()
            raise Refused(
                408, f"the request body did not arrive within {settings.body_timeout:g}s"
            ) from None
        except BaseException:
            release()
            raise
        return Received(claim, body, caller, release)

    async def proceed(self, wire: Wire, received: Received) -> int:
        """The steps after the signature; the status ``wire.respond`` answered.

        Raises:
            Refused: The step's refusal (500 when the handler raised).
        """
        claim = received.claim
        hotkey = claim.hotkey
        await self.remember(hotkey, claim.nonce, claim.signed_at_ns, claim.resolution_ns)
        # Counted against the capacity until admission takes it (a stalled hook holds few).
        self._pending += 1
        pending = True
        try:
            await self.charge(hotkey)
            with wire.entered(claim, received.caller) as subject:
                await self.blacklist(subject, hotkey)
                request = wire.parse(received.body)
                await self.verify(request, hotkey)
                priority = await self.priority(request, hotkey)
                self._pending -= 1
                pending = False
                async with self.admitted(priority, wire.gone) as admitted:
                    if not admitted:
                        return GONE
                    try:
                        result = await self.handle(request)
                    except Refused:
                        raise  # the organic queue is unavailable: 503
                    except Exception as exc:
                        raise self.hook_failed("_on_organic_entry", hotkey, exc) from exc
                    return await wire.respond(result)
        finally:
            if pending:
                self._pending -= 1

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
                retry_after=wait,
            )

    # -- after the signature -----------------------------------------------------

    async def remember(
        self, hotkey: str, nonce: int | str, signed_at_ns: int, resolution_ns: int = 1
    ) -> None:
        """Refuse a replayed nonce or a request no longer fresh (401), a failing store
        (503), or, before asking the store, one past ``max_concurrent + max_backlog``
        requests in progress (429)."""
        self.check_fresh(signed_at_ns, resolution_ns)
        admission = self._admission
        if self._pending + admission.active + admission.waiting >= self._capacity:
            raise _busy()
        self._pending += 1
        try:
            fresh = await aremember(self.nonce_store, hotkey, nonce)
        except NonceStoreFailure as exc:
            self._outages.refused("the nonce store", exc.__cause__ or exc)
            raise Refused(503, "replay protection is unavailable, try again later") from exc
        finally:
            self._pending -= 1
        self._outages.answers("the nonce store")
        if not fresh:
            raise Refused(
                401,
                "this request's nonce was already used (a replay): sign it again with a new nonce",
            )
        request_key.set(f"{hotkey}:{nonce}")  # a queue's idempotent add keys by it

    async def charge(self, hotkey: str) -> None:
        """Spend one request of ``hotkey``'s quota: 429 when it has none left; 503 when
        the quota's store fails."""
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
            raise Refused(503, "quotas are unavailable, try again later", retry_after=1) from exc
        self._outages.answers("the quota store")
        if wait > 0:
            raise Refused(429, "this hotkey is over its quota, try again later", retry_after=wait)

    async def blacklist(self, subject: Any, hotkey: str) -> None:
        """Run ``_blacklist_fn(subject)``: 403 when it refuses, 500 when it raises."""
        if self._blacklist is None:
            return
        try:
            result = await self._call(self._blacklist, subject)
            reason = _refusal(result, refuse_when=True, default="blacklisted")
        except Exception as exc:  # a verdict that cannot be read fails the hook too
            raise self.hook_failed("_blacklist_fn", hotkey, exc) from exc
        if reason is not None:
            raise Refused(403, reason)

    async def verify(self, request: Any, hotkey: str) -> None:
        """Run ``_verify_fn(request)``: 403 when it returns False or raises."""
        if self._verify is None:
            return
        try:
            result = await self._call(self._verify, request)
            reason = _refusal(result, refuse_when=False, default="rejected by the validator")
        except Exception as exc:  # a verdict that cannot be read fails the hook too
            error = describe_error(exc, self._redacting)
            log.debug(f"organic intake: _verify_fn raised {error} for {hotkey}")
            raise Refused(403, "rejected by the validator") from exc
        if reason is not None:
            raise Refused(403, reason)

    async def priority(self, request: Any, hotkey: str) -> float:
        """``_priority_fn(request)`` as a float (0.0 when not overridden; NaN ranks last,
        an int past float's range as an infinity).

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
        try:
            value = float(value)
        except OverflowError:  # an int past float's range (a caller's own number, say)
            return math.inf if value > 0 else -math.inf
        return -math.inf if math.isnan(value) else value

    @contextlib.asynccontextmanager
    async def admitted(
        self, priority: float, gone: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> AsyncIterator[bool]:
        """Hold a handler slot for the block; yields False if the caller left while
        waiting (``gone`` returns once it hangs up).

        Raises:
            Refused: 429 when every slot is taken and the backlog is full.
        """
        admission = self._admission
        if not admission.try_enter():
            try:
                waiter = admission.queue(priority)
            except BacklogFull:
                raise _busy() from None
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
            Refused: 503 when a :class:`~organic_scoring.errors.QueueUnavailable` is
                behind what the handler raised.
            Exception: Whatever else the handler raised.
        """
        try:
            result = await self._call(self._handler, request)
        except Exception as exc:
            if _queue_unavailable(exc):
                self._outages.refused("the organic queue", exc)
                raise Refused(
                    503, "the organic queue is unavailable, try again later", retry_after=1
                ) from exc
            raise
        self._outages.answers("the organic queue")
        return result

    def hook_failed(self, hook: str, hotkey: str, exc: BaseException) -> Refused:
        """Log that ``hook`` raised for ``hotkey`` (redacted as the scorer says); the 500."""
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


_OUTAGE_LOG_INTERVAL = 10.0  # seconds between a failing store's log lines


class _Outages:
    """Logs the 503s a failing store causes, one line per interval (no traceback), and
    one line when it answers again."""

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
    """True when ``exc`` or one in its cause or context chain is a QueueUnavailable."""
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
