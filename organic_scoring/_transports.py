"""How the core reaches a transport without importing one.

``OrganicScoringBase(axon=axon)`` has to attach the scorer to the axon, but the core
imports no transport: a transport module registers its attach function here under
the constructor parameter it serves, and the package's ``__init__`` imports the
transports that need no extra (the axon), so the registration has happened before
any scorer is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["attach", "register"]

_ATTACH: dict[str, Callable[[Any, Any], object]] = {}


def register(parameter: str, attach_fn: Callable[[Any, Any], object]) -> None:
    """Let ``attach_fn(scorer, value)`` handle the constructor's ``parameter``."""
    _ATTACH[parameter] = attach_fn


def attach(parameter: str, scorer: Any, value: Any) -> None:
    """Hand ``value``, given to the constructor as ``parameter``, to its transport.

    Raises:
        RuntimeError: No transport registered for ``parameter`` (its module was not
            imported, which the package's ``__init__`` does).
    """
    attach_fn = _ATTACH.get(parameter)
    if attach_fn is None:
        raise RuntimeError(f"no transport is registered for {parameter}=")
    attach_fn(scorer, value)
