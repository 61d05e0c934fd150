"""The library's exceptions and failure records.

Every exception the library raises on purpose derives from
:class:`OrganicScoringError`, so a validator can catch the library's errors in one
place. Configuration errors are :class:`ValueError` or :class:`TypeError` as well, and
stage timeouts are :class:`TimeoutError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from organic_scoring._stages import Stage

__all__ = [
    "DatasetUnavailable",
    "FailedIteration",
    "IterationError",
    "OrganicScoringError",
    "QueueUnavailable",
    "RedisUnavailable",
    "SampleUnreadable",
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
