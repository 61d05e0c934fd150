"""The one way every intake learns what an organic request is: the annotation of
``_on_organic_entry``'s first parameter (a string one resolved alone, in the handler's
module and class)."""

from __future__ import annotations

import inspect
import typing
from typing import Any

__all__ = ["request_type_of"]


def request_type_of(scorer: Any, base: type[Any], hint: str = "") -> type[Any]:
    """The class ``scorer._on_organic_entry``'s first parameter is annotated with.

    Args:
        base: What the class must derive from (and not be): the transport's request
            base class, ``bt.Synapse`` or ``pydantic.BaseModel``.
        hint: Appended to the error message (another way the transport offers).

    Raises:
        TypeError: No such parameter, no annotation, one that cannot be resolved, or a
            class that does not derive from ``base``. The message says which.
    """
    handler = scorer._on_organic_entry
    where = f"{type(scorer).__name__}._on_organic_entry"
    try:
        parameters = [
            p
            for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        parameters = []
    if not parameters:
        raise TypeError(f"{where} must take the organic request as its first parameter")
    first = parameters[0]
    annotation: Any = first.annotation
    if isinstance(annotation, str):
        annotation = _resolve(annotation, handler, type(scorer), where, first.name)
    if not (
        isinstance(annotation, type) and issubclass(annotation, base) and annotation is not base
    ):
        shown = "missing" if annotation is inspect.Parameter.empty else repr(annotation)
        kind = "a pydantic model" if base.__module__.startswith("pydantic") else "a bt.Synapse"
        raise TypeError(
            f"{where}'s first parameter {first.name!r} must be annotated with {kind} "
            f"subclass naming the request type (annotation: {shown}){hint}"
        )
    return annotation


def _resolve(annotation: str, handler: Any, owner: type, where: str, name: str) -> Any:
    """Resolve one string annotation as ``typing.get_type_hints`` would, alone."""
    function = getattr(handler, "__func__", handler)

    def probe(request: Any) -> None: ...

    probe.__annotations__ = {"request": annotation}
    try:
        return typing.get_type_hints(
            probe, globalns=getattr(function, "__globals__", {}), localns=dict(vars(owner))
        )["request"]
    except Exception as exc:
        raise TypeError(
            f"cannot resolve the annotation {annotation!r} of {where}'s first parameter "
            f"{name!r} ({exc!r}); define the request class at module level"
        ) from None
