"""Organic intake through a bittensor 9/10 axon.

``OrganicScoringBase(axon=axon)`` calls :func:`attach_intake`, which registers the
scorer's ``_on_organic_entry`` as the axon's handler for one synapse type: the class
its first parameter is annotated with.

bittensor's ``Axon.attach`` asserts exact hook signatures (a single parameter named
``synapse``, blacklist annotated ``typing.Tuple[bool, str]``, priority ``-> float``,
verify ``-> None``), and a verify function given to it *replaces* the axon's own
signature and nonce check. So the scorer's methods are never handed over as they
are; each is wrapped in an adapter with the signature bittensor expects, and the
scorer may annotate its hooks any way it likes, or not at all, and write them sync
or async.

For every request the axon runs, in this order:

1. **blacklist** (403): the ``allowed_hotkeys`` allow-list, then ``_blacklist_fn``
   when the subclass overrides it. A hook may return ``(blocked, reason)`` or a
   bare bool.
2. **verify** (401): always the axon's own ``default_verify`` (signature, nonce),
   after requiring that the request is signed at all (bittensor 9 lets an unsigned
   request through its check), then ``_verify_fn`` when overridden. Returning
   False, or raising, refuses the request; returning True or None accepts it.
3. **priority**: ``_priority_fn`` when overridden, as a float. An exception
   refuses the request. (bittensor 9.12 and 10.5 call it but do not order
   requests by the value: their priority pool only ever runs a placeholder task.)
4. **forward**: ``_on_organic_entry(synapse)``. It returns the response: the
   synapse, a ``StreamingSynapse``'s streaming response, or None for "the
   request's own synapse". An exception answers the caller with a 500 and leaves
   the axon and the scoring loop running.

User hooks run on the axon's event loop, on the axon's server thread: a sync hook
that blocks holds up every request. Adding to ``self._organic_queue`` is safe from
there; the queue wakes the scoring loop itself.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from organic_scoring._compat import axon_class, require_axon, synapse_class
from organic_scoring._hooks import call_hook, overrides
from organic_scoring._log import log
from organic_scoring.base import OrganicScoringBase

__all__ = ["attach_intake"]

_ENTRY = "_on_organic_entry"

# The exact return annotation bittensor's attach compares a blacklist hook against:
# the typing alias, not the builtin ``tuple[bool, str]`` (the two are not equal).
_BLACKLIST_RETURNS = typing.Tuple[bool, str]  # noqa: UP006

_Hook = Callable[[Any], Any]


def attach_intake(scorer: OrganicScoringBase, axon: Any) -> None:
    """Register ``scorer``'s organic handler and intake hooks on a bittensor 9/10 axon.

    Called by :class:`~organic_scoring.OrganicScoringBase` when it is given
    ``axon=``; there is normally no reason to call it directly. The handler serves
    the synapse class named by the annotation of ``_on_organic_entry``'s first
    parameter; blacklist, priority and verify hooks are attached only when the
    subclass overrides them (and a blacklist whenever ``allowed_hotkeys`` is set).

    Raises:
        RuntimeError: This bittensor (11) has no axon; use
            :mod:`organic_scoring.http` instead.
        TypeError: ``axon`` is not a bittensor axon, or ``_on_organic_entry``'s first
            parameter is not annotated with a ``bt.Synapse`` subclass.
        ValueError: The axon already has a handler for that synapse type.
    """
    require_axon("OrganicScoringBase(axon=...)")
    if not isinstance(axon, axon_class()):
        raise TypeError(f"axon must be a bittensor Axon, got {type(axon).__name__}")
    synapse_type = _request_type(scorer)
    name = synapse_type.__name__
    if name in getattr(axon, "forward_fns", {}):
        raise ValueError(
            f"the axon already has a handler for {name}; give each scorer its own "
            "Synapse subclass, with a name no other handler on this axon uses"
        )

    cls = type(scorer)
    blacklist = overrides(scorer, OrganicScoringBase, "_blacklist_fn")
    priority = overrides(scorer, OrganicScoringBase, "_priority_fn")
    verify = overrides(scorer, OrganicScoringBase, "_verify_fn")
    # Read the settings through the base class's own descriptor: a subclass may
    # shadow ``config`` with an attribute of its own.
    allowed = OrganicScoringBase.config.__get__(scorer, cls).allowed_hotkeys

    axon.attach(
        forward_fn=_forward(
            functools.partial(OrganicScoringBase.receive_organic, scorer), synapse_type
        ),
        blacklist_fn=(
            _blacklist(scorer._blacklist_fn if blacklist else None, allowed, synapse_type)
            if blacklist or allowed is not None
            else None
        ),
        priority_fn=_priority(scorer._priority_fn, synapse_type) if priority else None,
        verify_fn=_verify(axon, scorer._verify_fn if verify else None, synapse_type),
    )
    extras = [
        label
        for label, on in (
            ("allow-list", allowed is not None),
            ("_blacklist_fn", blacklist),
            ("_priority_fn", priority),
            ("_verify_fn", verify),
        )
        if on
    ]
    log.debug(f"organic intake attached to the axon for {name} ({', '.join(extras) or 'no hooks'})")


def _request_type(scorer: OrganicScoringBase) -> type[Any]:
    """The ``bt.Synapse`` subclass that ``_on_organic_entry``'s first parameter names."""
    entry = scorer._on_organic_entry
    where = f"{type(scorer).__name__}.{_ENTRY}"
    params = [
        p
        for p in inspect.signature(entry).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        raise TypeError(f"{where} must take the request synapse as its first parameter")
    first = params[0]
    annotation: Any = first.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(entry).get(first.name, annotation)
        except Exception as exc:
            raise TypeError(
                f"cannot resolve the annotation {annotation!r} of {where}'s first parameter "
                f"{first.name!r} ({exc}); define the synapse class at module level"
            ) from exc
    base = synapse_class()
    if base is None or not (
        isinstance(annotation, type) and issubclass(annotation, base) and annotation is not base
    ):
        shown = "missing" if annotation is inspect.Parameter.empty else repr(annotation)
        raise TypeError(
            f"{where}'s first parameter {first.name!r} must be annotated with a bt.Synapse "
            f"subclass naming the request type the axon serves (annotation: {shown})"
        )
    return annotation


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


def _forward(entry: _Hook, synapse_type: type[Any]) -> Callable[..., Awaitable[Any]]:
    any_synapse = synapse_class() or synapse_type

    async def forward(synapse: Any) -> Any:
        response = await call_hook(entry, synapse)
        if response is None:
            return synapse
        if isinstance(response, any_synapse) or hasattr(response, "synapse"):
            return response
        raise TypeError(
            f"{_ENTRY} must return the synapse, a streaming response or None, "
            f"got {type(response).__name__}"
        )

    # No return annotation: bittensor warns about a StreamingSynapse one, and the
    # endpoint builds its response from whatever comes back.
    return _shaped(forward, synapse_type, inspect.Signature.empty)


def _blacklist(
    hook: _Hook | None, allowed: frozenset[str] | None, synapse_type: type[Any]
) -> Callable[..., Awaitable[tuple[bool, str]]]:
    async def blacklist(synapse: Any) -> tuple[bool, str]:
        if allowed is not None:
            hotkey = getattr(synapse.dendrite, "hotkey", None)
            if hotkey not in allowed:
                return True, f"hotkey {hotkey} is not in allowed_hotkeys"
        if hook is None:
            return False, ""
        return _verdict(await call_hook(hook, synapse))

    return _shaped(blacklist, synapse_type, _BLACKLIST_RETURNS)


def _verdict(result: Any) -> tuple[bool, str]:
    """Read ``_blacklist_fn``'s answer: ``(blocked, reason)`` or a bare bool."""
    if isinstance(result, (tuple, list)) and len(result) == 2:
        blocked, reason = result
        return bool(blocked), str(reason)
    if isinstance(result, bool):
        return result, "refused by _blacklist_fn" if result else ""
    raise TypeError(
        f"_blacklist_fn must return (blocked, reason) or a bool, got {type(result).__name__}"
    )


def _priority(hook: _Hook, synapse_type: type[Any]) -> Callable[..., Awaitable[float]]:
    async def priority(synapse: Any) -> float:
        return float(await call_hook(hook, synapse))

    return _shaped(priority, synapse_type, float)


def _verify(
    axon: Any, hook: _Hook | None, synapse_type: type[Any]
) -> Callable[..., Awaitable[None]]:
    default_verify = axon.default_verify

    async def verify(synapse: Any) -> None:
        dendrite = synapse.dendrite
        if dendrite is None or not dendrite.signature:
            raise PermissionError("the request is not signed")
        await default_verify(synapse)
        if hook is None:
            return
        accepted = await call_hook(hook, synapse)
        if accepted is not None and not accepted:
            raise PermissionError("refused by _verify_fn")

    return _shaped(verify, synapse_type, None)
