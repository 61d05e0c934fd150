"""The library's logger: one object with the usual methods on every bittensor major.

bittensor 9/10's ``bt.logging`` methods take ``(msg, prefix, suffix, ...)``, so messages
are formatted here, never with ``%`` arguments, and tagged ``organic_scoring: `` (the
``organic_scoring`` logger of bittensor 11 names itself).
"""

from __future__ import annotations

import logging
from typing import Any

from organic_scoring._compat import library_logger

__all__ = ["log"]

_PREFIX = "organic_scoring: "


class _Log:
    """Formats eagerly, tags every message, and forwards to the right logger."""

    __slots__ = ("_prefix", "_target")

    def __init__(self, target: logging.Logger) -> None:
        self._target = target
        self._prefix = "" if target.name.startswith("organic_scoring") else _PREFIX

    def _emit(self, level: str, msg: str, exc_info: Any = None) -> None:
        method = getattr(self._target, level)  # 9/10's overrides, not Logger.log
        if exc_info is None:
            method(self._prefix + msg)
        else:
            method(self._prefix + msg, exc_info=exc_info)

    def debug(self, msg: str) -> None:
        self._emit("debug", msg)

    def info(self, msg: str) -> None:
        self._emit("info", msg)

    def warning(self, msg: str, exc_info: Any = None) -> None:
        self._emit("warning", msg, exc_info)

    def error(self, msg: str, exc_info: Any = None) -> None:
        self._emit("error", msg, exc_info)


log = _Log(library_logger())
