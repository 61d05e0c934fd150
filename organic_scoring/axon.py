"""Organic intake through a bittensor 9/10 axon: a thin adapter to the intake gate.

The screen runs the gate's steps up to the body, bittensor checks the signature in the
``verify_fn``, the handler runs the rest.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from organic_scoring._axon_screen import AxonScreen, Route, current_wire
from organic_scoring._compat import axon_class, require_axon, synapse_class
from organic_scoring._log import log
from organic_scoring.base import OrganicScoringBase
from organic_scoring.intake import IntakeSettings, NonceStore, Quota
from organic_scoring.intake._gate import Gate, Refused
from organic_scoring.intake._request_type import request_type_of

__all__ = ["attach_axon"]

TRANSPORT = "axon"

# The exact return annotation bittensor's attach compares a blacklist hook against:
# the typing alias, not the builtin ``tuple[bool, str]`` (the two are not equal).
_BLACKLIST_RETURNS = typing.Tuple[bool, str]  # noqa: UP006


def attach_axon(
    scoring: OrganicScoringBase,
    axon: Any,
    *,
    settings: IntakeSettings | None = None,
    nonce_store: NonceStore | None = None,
    allowed_hotkeys: Any = None,
    quota: Quota | None = None,
    allow_unsigned_body: bool = False,
) -> Gate:
    """Take organic requests for ``scoring`` through a bittensor 9/10 axon.

    Call it before the axon starts serving. The handler serves the synapse class named
    by the annotation of ``_on_organic_entry``'s first parameter.

    Args:
        scoring: The scorer.
        axon: A ``bt.axon`` (9) or ``bt.Axon`` (10).
        settings: The limits (:class:`~organic_scoring.intake.IntakeSettings`);
            default ``IntakeSettings()``. ``header_timeout`` and ``max_header_bytes``
            do not apply: bittensor's server reads the headers.
        nonce_store: Where accepted nonces are kept (see
            :class:`~organic_scoring.intake.NonceStore`); default in memory.
        allowed_hotkeys: Who may call: SS58 hotkeys, a callable ``(hotkey) -> bool``
            (e.g. :func:`~organic_scoring.intake.permitted_validators`) or
            :data:`~organic_scoring.ANY_HOTKEY`. Default: the scorer's; one of the
            two must say.
        quota: Each hotkey's share (:class:`~organic_scoring.intake.Quota`); past it,
            429. None: no per-caller limit.
        allow_unsigned_body: Accept a synapse type whose ``required_hash_fields`` is
            empty: bittensor then signs none of its fields, and a body rewritten on
            the way still verifies. Off by default.

    Returns:
        The gate, whose ``in_flight`` and ``waiting`` say how busy the intake is.

    Raises:
        RuntimeError: This bittensor (11) has no axon; use
            :mod:`organic_scoring.http` instead.
        TypeError: ``axon`` is not a bittensor axon, ``settings`` is not an
            ``IntakeSettings``, or ``_on_organic_entry``'s first parameter is not
            annotated with a ``bt.Synapse`` subclass.
        ValueError: The axon already has a handler for that synapse type, no
            ``allowed_hotkeys`` was given, or the synapse type signs no field (see
            ``allow_unsigned_body``).
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
    gate = Gate(
        scoring,
        TRANSPORT,
        settings,
        nonce_store=nonce_store,
        allowed_hotkeys=allowed_hotkeys,
        quota=quota,
    )
    _screens(axon)[f"/{name}"] = Route(gate, synapse_type)
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
        wire = current_wire()
        if wire is None or wire.route.gate is not gate:
            return True, "the request did not pass the organic intake's screen"
        return False, ""

    return _shaped(blacklist, synapse_type, _BLACKLIST_RETURNS)


def _verify(axon: Any, gate: Gate, synapse_type: type[Any]) -> Callable[..., Awaitable[None]]:
    default_verify = axon.default_verify

    async def verify(synapse: Any) -> None:
        wire = current_wire()
        try:
            if wire is None or wire.received is None:
                raise Refused(401, "the request did not pass the organic intake's screen")
            claim = wire.received.claim
            dendrite = synapse.dendrite
            if dendrite is None or dendrite.hotkey != claim.hotkey or dendrite.nonce != claim.nonce:
                raise Refused(401, "the signed caller is not the one the screen admitted")
            await default_verify(synapse)  # the signature, over the synapse's hash fields
        except Exception as exc:
            if wire is not None:
                gate.record(401, wire.began)
            raise PermissionError(str(exc)) from exc
        wire.received.release()
        wire.received.caller = synapse.dendrite

    return _shaped(verify, synapse_type, None)


def _handler(gate: Gate, synapse_type: type[Any]) -> Callable[..., Awaitable[Any]]:
    any_synapse = synapse_class() or synapse_type

    async def forward(synapse: Any) -> Any:
        wire = current_wire()
        if wire is None or wire.received is None or wire.received.caller is None:
            # Only reachable if bittensor skipped the verify hook: refuse, to be safe.
            return _answer(gate, synapse, Refused(401, "the request was not verified"), None)
        synapse.dendrite = wire.received.caller  # the signed headers' caller, not the body's
        wire.synapse = synapse
        try:
            await gate.proceed(wire, wire.received)
            response = wire.response
            if not (isinstance(response, any_synapse) or hasattr(response, "synapse")):
                log.error(
                    "organic intake: _on_organic_entry must return the synapse, a streaming "
                    f"response or None, got {type(response).__name__}"
                )
                raise Refused(500, "internal error")
        except Refused as refused:
            return _answer(gate, synapse, refused, wire.began)
        gate.record(200, wire.began)
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
