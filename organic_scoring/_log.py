"""The library's logger: one object with the usual methods on every bittensor major.

bittensor 9/10's ``bt.logging`` is a :class:`logging.Logger` whose methods take
``(msg, prefix, suffix, ...)`` rather than ``(msg, *args)``, so messages are
formatted here before they are handed on, and never with ``%`` arguments. There
they are tagged ``organic_scoring: ``, since bittensor's logger carries its own
name; the standard ``organic_scoring`` logger of bittensor 11 already says whose
message it is (``logging.basicConfig`` prints the name), so it gets no tag.
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

    def _emit(self, level: int, msg: str, exc_info: Any = None) -> None:
        method = {
            logging.DEBUG: self._target.debug,
            logging.INFO: self._target.info,
            logging.WARNING: self._target.warning,
            logging.ERROR: self._target.error,
        }[level]
        if exc_info is None:
            method(self._prefix + msg)
        else:
            method(self._prefix + msg, exc_info=exc_info)

    def debug(self, msg: str) -> None:
        self._emit(logging.DEBUG, msg)

    def info(self, msg: str) -> None:
        self._emit(logging.INFO, msg)

    def warning(self, msg: str, exc_info: Any = None) -> None:
        self._emit(logging.WARNING, msg, exc_info)

    def error(self, msg: str, exc_info: Any = None) -> None:
        self._emit(logging.ERROR, msg, exc_info)


log = _Log(library_logger())
