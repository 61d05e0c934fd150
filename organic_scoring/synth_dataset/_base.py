"""The synthetic dataset interface and its entry model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["SynthDatasetBase", "SynthDatasetEntry"]


class SynthDatasetEntry(BaseModel):
    """One synthetic (or organic) conversation sample.

    ``roles[i]`` speaks ``messages[i]``. Extra fields are kept, so a subnet can carry
    what its scoring needs (a task type, a seed, a reference) in the same entry.
    """

    model_config = ConfigDict(extra="allow")

    roles: list[str]
    messages: list[str]
    organic: bool = False
    source: str | None = None


class SynthDatasetBase(ABC):
    """A source of synthetic samples, used when no organic traffic is waiting."""

    @abstractmethod
    def sample(self) -> Any:
        """Return one sample (a :class:`SynthDatasetEntry` or anything the hooks take)."""
