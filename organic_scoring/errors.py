"""The library's exceptions and failure records.

Every exception the library raises on purpose derives from :class:`OrganicScoringError`;
configuration errors are :class:`ValueError` or :class:`TypeError` as well.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from organic_scoring._loop.stages import Stage

__all__ = [
    "DatasetUnavailable",
    "FailedIteration",
    "IterationError",
    "NonceStoreFailure",
    "OrganicRequestError",
    "OrganicScoringError",
    "QueueFileError",
    "QueueUnavailable",
    "RedisUnavailable",
    "ReplayFileError",
    "SampleDecodeError",
    "SampleNotStorable",
    "SampleUnreadable",
    "ScoreBookFileError",
    "ScorerRoleLost",
    "StageTimeout",
]


class OrganicScoringError(Exception):
    """Base class of the library's exceptions."""


class StageTimeout(OrganicScoringError, TimeoutError):
    """A hook ran longer than its stage's timeout."""

    def __init__(self, stage: Stage, timeout: float, *, ran: float | None = None) -> None:
        message = f"the {stage} stage exceeded its {timeout:g}s timeout"
        if ran is not None:
            message += (
                f": its hook returned after {ran:.2f}s, as the event loop could not interrupt it"
            )
        super().__init__(message)
        self.stage = stage
        self.timeout = timeout
        self.ran = ran
        """Seconds the hook ran when it returned after its timeout (a blocking call in
        an ``async def`` hook); None when the timeout cancelled it."""


class DatasetUnavailable(OrganicScoringError):
    """A synthetic dataset has no data to sample; the message says how to give it some."""


class SampleUnreadable(OrganicScoringError):
    """Raised by an organic queue's ``sample()`` when an entry left the queue but could
    not be handed over; the loop reports it as a failed organic sample (:attr:`raw`)."""

    @property
    def raw(self) -> Any:
        """What the queue held for the entry (its stored text, say), or None."""
        return None


class QueueUnavailable(OrganicScoringError):
    """The organic queue's store cannot be used right now (a locked or damaged file, a
    server down); nothing left the queue. The loop scores a synthetic sample instead."""


class RedisUnavailable(QueueUnavailable, ConnectionError):
    """Redis could not be reached, or did not carry out an operation (the Redis queue,
    nonce store and scorer lock work again by themselves once it answers)."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url
        """The server's URL with any password masked."""


class ScorerRoleLost(OrganicScoringError):
    """This scorer is no longer the active one of a shared queue: the iteration is
    cancelled, or its weights are not set; its organic sample comes back after its lease."""


class IterationError(OrganicScoringError):
    """One iteration failed; raised by :meth:`OrganicScoringBase.loop_iteration` after the
    failure was counted and reported. ``__cause__`` is what the hook raised; ``sample``
    is redacted under ``redact``."""

    def __init__(self, stage: Stage, sample: Any, organic: bool) -> None:
        kind = "organic" if organic else "synthetic"
        super().__init__(f"{kind} iteration failed in the {stage} stage")
        self.stage = stage
        self.sample = sample
        self.organic = organic


@dataclass(frozen=True)
class FailedIteration:
    """What is kept of a failed iteration: see ``OrganicScoringBase.recent_failures``."""

    stage: Stage
    """``"sample"``, ``"query"``, ``"reference"``, ``"rewards"``, ``"weights"``, ``"log"``,
    or ``"iteration"`` for an exception from an overridden ``loop_iteration``."""
    sample: Any
    """The iteration's sample; redacted when the scorer was built with ``redact``."""
    organic: bool
    error: BaseException
    at: float = field(default_factory=time.time)
    """Wall-clock time of the failure (``time.time()``)."""


class NonceStoreFailure(OrganicScoringError):
    """The nonce store itself failed: the intake answers 503, never "accepted"."""


class SampleNotStorable(OrganicScoringError, ValueError, TypeError):
    """``add`` refused a sample it could not read back; the message says why."""


class SampleDecodeError(SampleUnreadable, ValueError):
    """A stored sample could not be turned back into an object (its model class changed,
    say); the record has left its queue and what was stored is kept here."""

    def __init__(self, message: str, kind: str, model: str | None, body: str) -> None:
        super().__init__(message)
        self.kind = kind
        """``"model"`` or ``"json"``."""
        self.model = model
        """The stored class path, ``module:qualname``, for a model; else None."""
        self.body = body
        """The stored JSON text."""

    @property
    def raw(self) -> str:
        """The stored JSON text."""
        return self.body


class QueueFileError(OrganicScoringError, ValueError):
    """The file cannot be used as an organic queue (foreign, another schema version,
    damaged, read-only, unopenable); it is left as it was."""


class _FileError(OrganicScoringError, ValueError):
    _what = "file"

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read {self._what} {self.path!r}: {reason}")


class ReplayFileError(_FileError):
    """A replay file (``path``) could not be read: corrupt, foreign or of an unknown
    version. A missing file raises :class:`FileNotFoundError` instead."""

    _what = "replay file"


class OrganicRequestError(OrganicScoringError):
    """The intake refused a request or failed: a non-2xx answer.

    ``str()`` gives the status and the intake's message and, for a 422, the first
    validation errors (``422: request body does not match the schema (text: Input
    should be a valid string)``).

    Attributes:
        status_code: The HTTP status.
        error: The intake's ``error`` message (or the raw body if it sent none).
        detail: The intake's ``detail`` (validation errors for a 422), or None.
    """

    def __init__(self, status_code: int, error: str, detail: Any = None) -> None:
        fields = _field_errors(detail)
        super().__init__(f"{status_code}: {error}" + (f" ({fields})" if fields else ""))
        self.status_code = status_code
        self.error = error
        self.detail = detail

    @classmethod
    def from_body(cls, status_code: int, body: bytes) -> OrganicRequestError:
        """Read the intake's JSON error body, falling back to the raw text."""
        try:
            content = json.loads(body)
        except ValueError:
            content = None
        if isinstance(content, dict) and isinstance(content.get("error"), str):
            return cls(status_code, content["error"], content.get("detail"))
        return cls(status_code, body.decode("utf-8", "replace")[:500])


class ScoreBookFileError(_FileError):
    """A score book file (``path``) could not be read: corrupt, truncated, foreign or of an
    unknown version. A missing file raises :class:`FileNotFoundError` instead."""

    _what = "score book file"


_SHOWN_FIELD_ERRORS = 3


def _field_errors(detail: Any) -> str:
    """The first validation errors of a 422's ``detail`` as ``field: message``, or ""."""
    if not isinstance(detail, list):
        return ""
    shown = []
    for item in detail[:_SHOWN_FIELD_ERRORS]:
        if isinstance(item, dict) and isinstance(item.get("msg"), str):
            loc = item.get("loc")
            where = ".".join(map(str, loc)) if isinstance(loc, list) and loc else "body"
            shown.append(f"{where}: {item['msg']}")
    if shown and len(detail) > _SHOWN_FIELD_ERRORS:
        shown.append(f"and {len(detail) - _SHOWN_FIELD_ERRORS} more")
    return "; ".join(shown)
