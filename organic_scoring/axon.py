"""Organic intake through a bittensor 9/10 axon: a thin adapter to the intake gate.

The gate's steps map onto the axon's hooks: *screen* in ``blacklist_fn``; a required
signature, *fresh* on the signed nonce and ``default_verify`` in ``verify_fn``; the
rest in the handler, which sees the synapse with the verified ``dendrite``. bittensor
asserts exact hook signatures when attaching (one parameter named ``synapse``,
blacklist annotated ``typing.Tuple[bool, str]``, verify ``-> None``), so the adapters
have those whatever the scorer's hooks look like.
"""

from __future__ import annotations

import contextvars
import inspect
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from organic_scoring._axon_screen import AxonScreen, Route
from organic_scoring._compat import axon_class, require_axon, synapse_class
from organic_scoring._defaults import (
    DEFAULT_ALLOWED_SKEW,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BODY_BYTES,
)
from organic_scoring._log import log
from organic_scoring.base import OrganicScoringBase
from organic_scoring.intake import NonceStore, Quota
from organic_scoring.intake._gate import Gate, Refused
from organic_scoring.intake._request_type import request_type_of

__all__ = ["attach_axon"]

TRANSPORT = "axon"

# The exact return annotation bittensor's attach compares a blacklist hook against:
# the typing alias, not the builtin ``tuple[bool, str]`` (the two are not equal).
_BLACKLIST_RETURNS = typing.Tuple[bool, str]  # noqa: UP006


@dataclass
class _Passage:
    """One request's way through the axon's middleware, read by the handler."""

    began: float
    caller: Any = None
    """The verified ``dendrite`` of the request's headers; None until verify passed."""


_passage: contextvars.ContextVar[_Passage | None] = contextvars.ContextVar(
    "organic_scoring_axon_passage", default=None
)


def attach_axon(
    scoring: OrganicScoringBase,
    axon: Any,
    *,
    max_concurrent: int = 32,
    max_backlog: int = 256,
    max_age: float = DEFAULT_MAX_AGE,
    allowed_skew: float = DEFAULT_ALLOWED_SKEW,
    nonce_store: NonceStore | None = None,
    allowed_hotkeys: Any = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    allow_unsigned_body: bool = False,
    quota: Quota | None = None,
) -> Gate:
    """Take organic requests for ``scoring`` through a bittensor 9/10 axon.

    Call it before the axon starts serving. The handler serves the synapse class named
    by the annotation of ``_on_organic_entry``'s first parameter.

    Args:
        scoring: The scorer.
        axon: A ``bt.axon`` (9) or ``bt.Axon`` (10).
        max_concurrent: Requests handled at once; the rest wait, highest
            ``_priority_fn`` first.
        max_backlog: Requests allowed to wait; more are refused with 429.
        max_age: Seconds a signed request stays fresh (from its signed nonce).
        allowed_skew: Seconds a caller's clock may run ahead of ours.
        nonce_store: Where accepted nonces are kept (see
            :class:`~organic_scoring.intake.NonceStore`); default in memory.
        allowed_hotkeys: Who may call: SS58 hotkeys, a callable ``(hotkey) -> bool``
            (e.g. :func:`~organic_scoring.intake.permitted_validators`) or
            :data:`~organic_scoring.ANY_HOTKEY`. Default: the scorer's; one of the
            two must say.
        max_body_bytes: Longer bodies get 413, before bittensor reads them.
        body_timeout: Seconds to receive the whole body; slower ones get 408.
        allow_unsigned_body: Accept a synapse type whose ``required_hash_fields`` is
            empty: bittensor then signs none of its fields, and a body rewritten on
            the way still verifies. Off by default.
        quota: Each hotkey's share (:class:`~organic_scoring.intake.Quota`); past it,
            429. None: no per-caller limit.

    Returns:
        The gate, whose ``in_flight`` and ``waiting`` say how busy the intake is.

    Raises:
        RuntimeError: This bittensor (11) has no axon; use
            :mod:`organic_scoring.http` instead.
        TypeError: ``axon`` is not a bittensor axon, or ``_on_organic_entry``'s first
            parameter is not annotated with a ``bt.Synapse`` subclass.
        ValueError: The axon already has a handler for that synapse type, an option
            is out of range, no ``allowed_hotkeys`` was given, or the synapse type
            signs no field (see ``allow_unsigned_body``).
    """
    require_axon("attaching organic scoring to an axon")
    if not isinstance(axon, axon_class()):
        raise TypeError(f"axon must be a bittensor Axon, got {type(axon).__name__}")
    base = synapse_class()
    assert base is not None  # require_axon passed
    synapse_type = request_type_of(scoring, base)
    name = synapse_type.__name__
    if name in getattr(axon, "forward_fns", {}):
        raise ValueError(
            f"the axon already has a handler for {name}; give each scorer its own "
            "Synapse subclass, with a name no other handler on this axon uses"
        )
    unsigned = not getattr(synapse_type, "required_hash_fields", ())
    if unsigned and allow_unsigned_body:
        log.warning(
            f"organic intake: {name}.required_hash_fields is empty, so bittensor signs none "
            "of its fields: a body rewritten on the way still verifies"
        )
    elif unsigned:
        raise ValueError(
            f"{name}.required_hash_fields is empty, so bittensor signs none of its fields "
            "and a body rewritten on the way would still verify: list the fields your "
            "handler relies on there, or pass allow_unsigned_body=True"
        )
    if max_body_bytes < 1 or not body_timeout > 0:
        raise ValueError(
            f"max_body_bytes must be >= 1 and body_timeout > 0, got {max_body_bytes}, "
            f"{body_timeout}"
        )
    gate = Gate(
        scoring,
        TRANSPORT,
        max_concurrent=max_concurrent,
        max_backlog=max_backlog,
        max_age=max_age,
        allowed_skew=allowed_skew,
        nonce_store=nonce_store,
        allowed_hotkeys=allowed_hotkeys,
        quota=quota,
    )
    _screens(axon)[f"/{name}"] = Route(gate, synapse_type, max_body_bytes, body_timeout)
    axon.attach(
        forward_fn=_handler(gate, synapse_type),
        blacklist_fn=_screen(gate, synapse_type),
        verify_fn=_verify(axon, gate, synapse_type),
    )
    log.debug(f"organic intake attached to the axon for {name}")
    return gate


def _screens(axon: Any) -> dict[str, Route]:
    """The routes the axon's :class:`AxonScreen` guards; installed on first use."""
    routes: dict[str, Route] | None = getattr(axon, "_organic_scoring_screens", None)
    if routes is None:
        routes = {}
        app = axon.app
        if getattr(app, "middleware_stack", None) is None:
            app.add_middleware(AxonScreen, routes=routes)  # outermost: runs first
        else:  # the axon already serves: wrap the stack it built
            app.middleware_stack = AxonScreen(app.middleware_stack, routes)
        axon._organic_scoring_screens = routes
    return routes


def _shaped(fn: Callable[..., Any], synapse_type: type[Any], returns: Any) -> Callable[..., Any]:
    """Give ``fn`` the exact signature bittensor's ``Axon.attach`` asserts."""
    param = inspect.Parameter(
        "synapse", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=synapse_type
    )
    setattr(fn, "__signature__", inspect.Signature([param], return_annotation=returns))  # noqa: B010
    annotations: dict[str, Any] = {"synapse": synapse_type}
    if returns is not inspect.Signature.empty:
        annotations["return"] = returns
    fn.__annotations__ = annotations
    return fn


def _screen(gate: Gate, synapse_type: type[Any]) -> Callable[..., Awaitable[tuple[bool, str]]]:
    async def blacklist(synapse: Any) -> tuple[bool, str]:
        passage = _Passage(began=time.perf_counter())
        _passage.set(passage)
        hotkey = getattr(synapse.dendrite, "hotkey", None)
        if hotkey is None:
            return False, ""  # unsigned: verify refuses it with a 401
        try:
            gate.screen(gate.identify(hotkey))
        except Refused as refused:
            # bittensor answers every blacklist refusal with 403.
            gate.record(403, passage.began)
            return True, refused.message
        return False, ""

    return _shaped(blacklist, synapse_type, _BLACKLIST_RETURNS)


def _verify(axon: Any, gate: Gate, synapse_type: type[Any]) -> Callable[..., Awaitable[None]]:
    default_verify = axon.default_verify

    async def verify(synapse: Any) -> None:
        passage = _passage.get() or _Passage(began=time.perf_counter())
        dendrite = synapse.dendrite
        try:
            if dendrite is None or not dendrite.signature or not dendrite.hotkey:
                raise Refused(401, "the request is not signed")
            if dendrite.nonce is None:
                raise Refused(401, "the request has no nonce")
            gate.check_fresh(int(dendrite.nonce))
            await default_verify(synapse)
        except Exception as exc:
            gate.record(401, passage.began)
            raise PermissionError(str(exc)) from exc
        passage.caller = dendrite
        _passage.set(passage)

    return _shaped(verify, synapse_type, None)


def _handler(gate: Gate, synapse_type: type[Any]) -> Callable[..., Awaitable[Any]]:
    any_synapse = synapse_class() or synapse_type

    async def forward(synapse: Any) -> Any:
        passage = _passage.get()
        if passage is None or passage.caller is None:
            # Only reachable if bittensor skipped the verify hook: refuse, to be safe.
            return _answer(gate, synapse, Refused(401, "the request was not verified"), None)
        caller = passage.caller
        synapse.dendrite = caller  # the signed headers' caller, not the body's claim
        try:
            await gate.remember(caller.hotkey, int(caller.nonce), int(caller.nonce))
            await gate.charge(caller.hotkey)
            _, priority = await gate.pass_through(synapse, lambda: synapse, caller.hotkey)
            async with gate.admitted(priority) as admitted:
                if not admitted:  # pragma: no cover - the axon gives no hang-up signal
                    raise Refused(499, "the caller left")
                try:
                    response = await gate.handle(synapse)
                except Refused:
                    raise  # the organic queue is unavailable: 503
                except Exception as exc:
                    raise gate.hook_failed("_on_organic_entry", caller.hotkey, exc) from exc
        except Refused as refused:
            return _answer(gate, synapse, refused, passage.began)
        if response is None:
            response = synapse
        elif not (isinstance(response, any_synapse) or hasattr(response, "synapse")):
            log.error(
                "organic intake: _on_organic_entry must return the synapse, a streaming "
                f"response or None, got {type(response).__name__}"
            )
            return _answer(gate, synapse, Refused(500, "internal error"), passage.began)
        gate.record(200, passage.began)
        return response

    # No return annotation: bittensor warns about a StreamingSynapse one, and the
    # endpoint builds its response from whatever comes back.
    return _shaped(forward, synapse_type, inspect.Signature.empty)


def _answer(gate: Gate, synapse: Any, refused: Refused, began: float | None) -> Any:
    """Answer with the refusal's status: the axon sends the synapse back with it."""
    if synapse.axon is not None:
        synapse.axon.status_code = refused.status
        synapse.axon.status_message = refused.message
    if began is not None:
        gate.record(refused.status, began)
    return synapse
