"""A synthetic dataset that draws from several others by weight."""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
import random
from collections.abc import Iterable, Sequence
from typing import Any

from organic_scoring.synth_dataset._base import SynthDatasetBase

__all__ = ["MixtureDataset", "check_weights"]


class MixtureDataset(SynthDatasetBase):
    """Picks one of several datasets at random by weight, then samples from it.

    Use it to blend sources, for example mostly a task-specific dataset with a
    little of the generic default::

        MixtureDataset([my_tasks, default_dataset()], weights=[9, 1])

    Args:
        datasets: The datasets to draw from; at least one, each with a ``sample()``.
        weights: One non-negative, finite weight per dataset, not all zero; they
            need not sum to 1. None weighs every dataset equally. A dataset with
            weight 0 is never drawn from.
        seed: Seeds the choice of dataset (each dataset keeps its own generator).
    """

    def __init__(
        self,
        datasets: Sequence[SynthDatasetBase],
        weights: Iterable[float] | None = None,
        seed: int | None = None,
    ) -> None:
        self._datasets = tuple(datasets)
        if not self._datasets:
            raise ValueError("datasets must hold at least one dataset, got an empty collection")
        for index, dataset in enumerate(self._datasets):
            if not callable(getattr(dataset, "sample", None)):
                raise ValueError(
                    f"datasets[{index}] has no sample() method: {type(dataset).__name__}"
                )
        self._weights = check_weights(weights, len(self._datasets))
        self._cumulative = list(itertools.accumulate(self._weights))
        self._random = random.Random(seed)

    def choose(self) -> SynthDatasetBase:
        """Choose a dataset with probability proportional to its weight."""
        point = self._random.random() * self._cumulative[-1]
        index = bisect.bisect_right(self._cumulative, point)
        # Rounding can leave point == total; fall back to the last weighted dataset.
        while index >= len(self._datasets) or self._weights[index] == 0:
            index -= 1
        return self._datasets[index]

    def sample(self) -> Any:
        """Sample a dataset chosen by :meth:`choose`."""
        return self.choose().sample()

    @property
    def datasets(self) -> tuple[SynthDatasetBase, ...]:
        """The datasets drawn from, in the order given."""
        return self._datasets

    @property
    def weights(self) -> tuple[float, ...]:
        """Each dataset's share of the draws; they sum to 1."""
        total = self._cumulative[-1]
        return tuple(weight / total for weight in self._weights)

    def __repr__(self) -> str:
        shares = ", ".join(f"{w:.3g}" for w in self.weights)
        return f"MixtureDataset({len(self._datasets)} datasets, weights=[{shares}])"


def check_weights(
    weights: Iterable[float] | None, count: int, name: str = "weights"
) -> tuple[float, ...]:
    """Validate one weight per dataset; return them as floats (all 1.0 for None).

    ``name`` is the parameter named in the error messages.
    """
    if weights is None:
        return (1.0,) * count
    if isinstance(weights, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of numbers, not a string")
    values: tuple[object, ...] = tuple(weights)
    if len(values) != count:
        raise ValueError(
            f"{name} must have one entry per dataset: got {len(values)} weights "
            f"for {count} datasets"
        )
    checked = []
    for index, weight in enumerate(values):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise ValueError(f"{name}[{index}] must be a number, got {weight!r}")
        number = float(weight)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"{name}[{index}] must be finite and >= 0, got {weight!r}")
        checked.append(number)
    if not any(checked):
        raise ValueError(f"{name} must not all be zero")
    return tuple(checked)
