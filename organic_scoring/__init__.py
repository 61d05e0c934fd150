"""organic-scoring: score Bittensor miners on real user traffic.

Subclass :class:`OrganicScoringBase`, implement its hooks, then ``start()`` it.
Queues live in :mod:`organic_scoring.organic_queue`, synthetic datasets in
:mod:`organic_scoring.synth_dataset`, the settings model in
:mod:`organic_scoring.config`, exceptions in :mod:`organic_scoring.errors`.
"""

# The axon transport registers itself for OrganicScoringBase(axon=...); importing it
# costs nothing beyond bittensor, which the package imports anyway.
import organic_scoring.axon  # noqa: F401
from organic_scoring._stats import ScoringStats, StageTimes
from organic_scoring.base import OrganicScoringBase
from organic_scoring.config import ScoringConfig
from organic_scoring.errors import (
    FailedIteration,
    IterationError,
    OrganicScoringError,
    StageTimeout,
)

__all__ = [
    "FailedIteration",
    "IterationError",
    "OrganicScoringBase",
    "OrganicScoringError",
    "ScoringConfig",
    "ScoringStats",
    "StageTimeout",
    "StageTimes",
]
