"""The original package's ``utils`` module, kept for ``is_overridden``; importing it warns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from organic_scoring._deprecated import warn_moved

__all__ = ["is_overridden"]


def is_overridden(method: Callable[..., Any]) -> bool:
    """True when the bound ``method`` is not the definition of the class that introduced
    it (``is_overridden(scorer._blacklist_fn)``); a plain function never is."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", None)
    if owner is None or name is None:
        return False
    cls = owner if isinstance(owner, type) else type(owner)
    definers = [klass for klass in cls.__mro__ if name in vars(klass)]
    if len(definers) < 2:
        return False
    return vars(definers[0])[name] is not vars(definers[-1])[name]


warn_moved(__name__, "the library finds the hooks a subclass overrides by itself")
