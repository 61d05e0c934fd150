"""The scorer's intake hooks as the HTTP app calls them.

Finds the request model (the first parameter's annotation of ``_on_organic_entry``),
skips optional hooks the scorer did not override, awaits hooks that are ``async``
and calls the rest directly, and reads the loose return shapes the hooks allow.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from organic_scoring._hooks import call_hook, overrides
from organic_scoring.base import OrganicScoringBase

__all__ = ["ScorerIntakeHooks", "request_model_of"]

Hook = Callable[[Any], Any]


def request_model_of(scorer: OrganicScoringBase) -> type[BaseModel]:
    """The pydantic model named by the first parameter of ``scorer._on_organic_entry``.

    Raises:
        TypeError: The annotation is missing, cannot be resolved, or is not a
            pydantic model (pass ``model=`` to ``create_app`` instead).
    """
    handler = scorer._on_organic_entry
    function = getattr(handler, "__func__", handler)
    name = f"{type(scorer).__name__}._on_organic_entry"
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    if not parameters:
        raise TypeError(f"{name} must take the request as its first parameter")
    first = parameters[0].name
    try:
        model = typing.get_type_hints(function).get(first)
    except Exception:
        # Another annotation may name something imported only for type checkers;
        # the first parameter's alone is what matters.
        model = _evaluate(parameters[0].annotation, function, type(scorer), name, first)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(
            f"{name}'s parameter {first!r} must be annotated with a pydantic model for the "
            f"signed-HTTP intake (found {model!r}); or pass model= to create_app"
        )
    return model


def _evaluate(annotation: Any, function: Any, owner: type, name: str, parameter: str) -> Any:
    """Resolve one string annotation the way ``typing.get_type_hints`` would."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, dict(getattr(function, "__globals__", {})), dict(vars(owner)))
    except Exception as exc:
        raise TypeError(
            f"cannot resolve the annotation {annotation!r} of {name}'s parameter "
            f"{parameter!r} ({exc!r}); define the model at module level or pass model= "
            "to create_app"
        ) from None


def _overridden(scorer: OrganicScoringBase, name: str) -> Hook | None:
    """The bound hook, or None when it is the base class's do-nothing default."""
    hook: Hook = getattr(scorer, name)
    return hook if overrides(scorer, OrganicScoringBase, name) else None


class ScorerIntakeHooks:
    """The scorer's intake hooks, looked up once, called with the app's conventions."""

    __slots__ = ("_blacklist", "_handler", "_priority", "_verify")

    def __init__(self, scorer: OrganicScoringBase) -> None:
        # Through receive_organic, so the scorer's stats count every accepted request.
        self._handler: Hook = functools.partial(OrganicScoringBase.receive_organic, scorer)
        self._blacklist = _overridden(scorer, "_blacklist_fn")
        self._priority = _overridden(scorer, "_priority_fn")
        self._verify = _overridden(scorer, "_verify_fn")

    @property
    def has_priority(self) -> bool:
        """True when the scorer orders waiting requests itself."""
        return self._priority is not None

    async def blacklisted(self, info: Any) -> str | None:
        """The refusal reason if ``_blacklist_fn`` refuses, else None.

        The hook may return ``(bool, reason)`` or a bool.
        """
        if self._blacklist is None:
            return None
        result = await call_hook(self._blacklist, info)
        return _refusal(result, refuse_when=True, default="blacklisted")

    async def priority(self, request: Any) -> float:
        """``_priority_fn(request)`` as a float (0.0 when not overridden).

        NaN, which a priority copied from the request can be, counts as the lowest.

        Raises:
            TypeError: The hook returned something that is not a number.
        """
        if self._priority is None:
            return 0.0
        value = await call_hook(self._priority, request)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"_priority_fn must return a number, got {value!r}")
        value = float(value)
        return -math.inf if math.isnan(value) else value

    async def rejected(self, request: Any) -> str | None:
        """The refusal reason if ``_verify_fn`` rejects the request, else None.

        The hook may return a bool or ``(bool, reason)``; False rejects, None (the
        bittensor axon style, which raises to reject) accepts. Raising is left to the
        caller, which rejects too.
        """
        if self._verify is None:
            return None
        result = await call_hook(self._verify, request)
        return _refusal(result, refuse_when=False, default="rejected by the validator")

    async def handle(self, request: Any) -> Any:
        """Run ``_on_organic_entry(request)`` and return what it returned."""
        return await call_hook(self._handler, request)


def _refusal(result: Any, *, refuse_when: bool, default: str) -> str | None:
    """Read a hook's verdict: ``flag`` or ``(flag, reason)``; None never refuses."""
    reason = ""
    if isinstance(result, tuple):
        if len(result) > 1 and isinstance(result[1], str):
            reason = result[1]
        result = result[0] if result else None
    if result is None or bool(result) is not refuse_when:
        return None
    return reason or default
