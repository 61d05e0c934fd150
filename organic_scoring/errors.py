"""The library's exceptions and failure records.

Every exception the library raises on purpose derives from
:class:`OrganicScoringError`, so a validator can catch the library's errors in one
place. Configuration errors are :class:`ValueError` or :class:`TypeError` as well, and
stage timeouts are :class:`TimeoutError`.
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

    def __init__(self, stage: Stage, timeout: float) -> None:
        super().__init__(f"the {stage} stage exceeded its {timeout:g}s timeout")
        self.stage = stage
        self.timeout = timeout


class DatasetUnavailable(OrganicScoringError):
    """A synthetic dataset has no data to sample; the message says how to give it some.

    :class:`~organic_scoring.synth_dataset.SynthDatasetConversation` built without
    data keeps one in its ``exception`` attribute and raises it from ``sample()``.
    """


class SampleUnreadable(OrganicScoringError):
    """Raised by an organic queue's ``sample()`` when an entry left the queue but could
    not be handed over (a stored record that no longer decodes, say).

    The scoring loop reports such an entry as a failed organic sample in the
    ``"sample"`` stage, with :attr:`raw` as the sample. Any other exception from
    ``sample()`` means that nothing left the queue.
    """

    @property
    def raw(self) -> Any:
        """What the queue held for the entry (its stored text, say), or None."""
        return None


class QueueUnavailable(OrganicScoringError):
    """The organic queue's store cannot be used right now: a file that is locked,
    read-only or damaged, a server that is down. Nothing left the queue.

    The scoring loop reports it in the ``"sample"`` stage and scores a synthetic
    sample instead, retrying the queue after a backoff of its own.
    """


class RedisUnavailable(QueueUnavailable, ConnectionError):
    """Redis could not be reached, or did not carry out an operation.

    Raised by the Redis-backed queue, nonce store and scorer lock: at construction
    when the server cannot be reached (the message names the URL, password masked),
    and by any later call during an outage; the objects work again by themselves once
    the server answers. A :class:`QueueUnavailable`, so the scoring loop treats an
    outage of a Redis queue like that of any other store, and a ``ConnectionError``.
    """

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url
        """The server's URL with any password masked."""


class ScorerRoleLost(OrganicScoringError):
    """This scorer is no longer the active one of a shared queue (a standby took the
    role): the iteration is cancelled, or its weights are not set.

    Reported to ``_on_iteration_error``. An organic sample is left unacknowledged: it
    comes back when its lease runs out, for the active scorer.
    """


class IterationError(OrganicScoringError):
    """One iteration failed; raised by :meth:`OrganicScoringBase.loop_iteration`.

    The failure has already been counted and handed to ``_on_iteration_error`` by the
    time this is raised; ``__cause__`` is what the hook raised. :attr:`sample` is the
    iteration's sample, redacted when the scorer was built with ``redact``.
    """

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
    """``add`` refused a sample it could not read back; the message says why.

    Both a :class:`ValueError` and (for code written against earlier releases, where a
    sample of the wrong type raised it) a :class:`TypeError`.
    """


class SampleDecodeError(SampleUnreadable, ValueError):
    """A stored sample could not be turned back into an object.

    Typically the model's class was renamed, moved or changed incompatibly since the
    sample was stored. The record has left its queue (so that one bad record cannot
    block it); what was stored is kept here, and the scoring loop reports it as the
    failed sample (:attr:`raw`).
    """

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
    """The file cannot be used as an organic queue.

    It is not a SQLite database, is a database of something else, was written with
    another schema version, is damaged, cannot be written, or cannot be opened at
    all. The file is left as it was.
    """


class ReplayFileError(OrganicScoringError, ValueError):
    """A replay file could not be read: corrupt, foreign or of an unknown version.

    ``path`` is the file in question. A missing file raises :class:`FileNotFoundError`
    instead, so "start empty when there is no file yet" stays a one-line ``except``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read replay file {self.path!r}: {reason}")


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


class ScoreBookFileError(OrganicScoringError, ValueError):
    """A score book file could not be read: corrupt, truncated, foreign or of an unknown version.

    ``path`` is the file in question. A missing file raises :class:`FileNotFoundError`
    instead, so "start fresh when there is no file yet" stays a one-line ``except``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read score book file {self.path!r}: {reason}")


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
