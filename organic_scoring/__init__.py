"""organic-scoring: score Bittensor miners on real user traffic.

Subclass :class:`OrganicScoringBase`, implement its hooks, then ``start()`` it.
Queues live in :mod:`organic_scoring.organic_queue`, synthetic datasets in
:mod:`organic_scoring.synth_dataset`, the settings model in
:mod:`organic_scoring.config`, exceptions in :mod:`organic_scoring.errors`.
"""

from organic_scoring._loop.stats import ScoringStats, StageTimes
from organic_scoring._redact import Redacted
from organic_scoring.base import OrganicScoringBase
from organic_scoring.config import ScoringConfig
from organic_scoring.errors import (
    FailedIteration,
    IterationError,
    OrganicScoringError,
    StageTimeout,
)
from organic_scoring.intake._identity import ANY_HOTKEY

__all__ = [
    "ANY_HOTKEY",
    "FailedIteration",
    "IterationError",
    "OrganicScoringBase",
    "OrganicScoringError",
    "Redacted",
    "ScoringConfig",
    "ScoringStats",
    "StageTimeout",
    "StageTimes",
]

# The original package also let `from organic_scoring import OrganicQueue` work.
_MOVED = {
    "OrganicQueue": "organic_scoring.organic_queue",
    "OrganicQueueBase": "organic_scoring.organic_queue",
}


def __getattr__(name: str) -> object:
    """The original package's top-level names, deprecated, from where they live now."""
    if name in _MOVED:
        import importlib

        from organic_scoring._deprecated import warn_moved

        warn_moved(f"organic_scoring.{name}", _MOVED[name])
        value = getattr(importlib.import_module(_MOVED[name]), name)
        # Kept, so the second lookup of the same ``from organic_scoring import ...``
        # (Python makes two) finds it without warning again.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'organic_scoring' has no attribute {name!r}")
