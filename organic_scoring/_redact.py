"""Keeping users' words out of what the library keeps and logs: the ``redact`` setting
(docs: metrics.md, "Logging without prompts"). The hooks still get the real sample."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from organic_scoring._log import log

__all__ = ["Redacted", "Redactor", "describe_error", "redactor"]

Redactor = Callable[[Any], Any]


@dataclass(frozen=True)
class Redacted:
    """What is kept of a sample when ``redact=True``: its type's name, nothing of it."""

    kind: str
    """The sample's type name (``"dict"``, ``"SynthDatasetEntry"``)."""

    def __repr__(self) -> str:
        return f"<redacted {self.kind}>"


def redactor(option: bool | Redactor) -> Redactor | None:
    """The function a ``redact`` setting stands for; None when redaction is off.

    A user's function that raises withholds the whole sample instead (and says so).
    """
    if option is False:
        return None
    if option is True:
        return _placeholder
    user = option

    def apply(sample: Any) -> Any:
        if sample is None:
            return None
        try:
            return user(sample)
        except Exception as exc:
            log.warning(
                f"redact raised {type(exc).__name__} for a {type(sample).__name__} sample; "
                "the whole sample is withheld"
            )
            return _placeholder(sample)

    return apply


def _placeholder(sample: Any) -> Any:
    return None if sample is None else Redacted(type(sample).__name__)


def describe_error(exc: BaseException, redacting: bool) -> str:
    """``repr(exc)``, or with ``redacting`` its type and the frames it came through
    (file, line and function; no message, no source text)."""
    if not redacting:
        return repr(exc)
    frames = "".join(
        f'\n  File "{frame.filename}", line {frame.lineno}, in {frame.name}'
        for frame in traceback.extract_tb(exc.__traceback__)
    )
    where = f"\nTraceback (most recent call last, messages withheld):{frames}" if frames else ""
    return f"{type(exc).__name__} (message withheld: redact is on){where}"
