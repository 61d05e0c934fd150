"""Calling a scorer's hooks the way every intake does: sync or async, overridden or not."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["call_hook", "overrides"]


async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """Call ``hook(*args)`` and await the result if it is awaitable."""
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def overrides(scorer: object, base: type, name: str) -> bool:
    """True when ``scorer``'s class replaces ``base``'s method ``name``."""
    return getattr(type(scorer), name) is not getattr(base, name)
