"""A scorer's private state, in one object: what the library's own parts may reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from organic_scoring._loop.engine import Engine
from organic_scoring._loop.iteration import IterationRunner
from organic_scoring._loop.stats import StatsRecorder
from organic_scoring._loop.trigger import Trigger
from organic_scoring.config import ScoringConfig
from organic_scoring.synth_dataset import SynthDatasetBase

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """Everything a scorer runs on, built once by ``OrganicScoringBase.__init__``.

    Reached through :func:`organic_scoring.base.runtime`; the intakes count requests
    through :attr:`stats` and the metrics read it, and nothing else looks inside.
    """

    config: ScoringConfig
    axon: Any
    datasets: tuple[SynthDatasetBase, ...]
    stats: StatsRecorder
    trigger: Trigger
    runner: IterationRunner
    engine: Engine
    warned: bool = False
    """Whether ``start()`` has warned that the constructor's axon is open to anyone."""
    warned_not_queued: bool = False
    """Whether an ``_on_organic_entry`` that added nothing to the queue was reported."""
