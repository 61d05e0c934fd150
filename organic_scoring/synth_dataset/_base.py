"""The synthetic dataset interface and its entry model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import KeysView
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["SynthDatasetBase", "SynthDatasetEntry"]


class SynthDatasetEntry(BaseModel):
    """One synthetic (or organic) conversation sample: ``roles[i]`` speaks ``messages[i]``;
    extra fields (a task type, a reference) are kept.

    It also reads like the original package's dict samples: ``entry["messages"]``,
    ``entry.get(...)``, ``in``, ``keys()``, ``dict(entry)``, ``entry[key] = ...``; a
    missing key raises :class:`KeyError`. Iterating over the model stays pydantic's.
    """

    model_config = ConfigDict(extra="allow")

    roles: list[str]
    messages: list[str]
    organic: bool = False
    source: str | None = None

    def _key_names(self) -> dict[str, None]:
        names = dict.fromkeys(type(self).model_fields)
        names.update(dict.fromkeys(self.__pydantic_extra__ or {}))
        return names

    def keys(self) -> KeysView[str]:
        """The field names, then the extra fields' names, as ``dict.keys()`` would give."""
        return self._key_names().keys()

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str) or key not in self._key_names():
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise KeyError(key)
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._key_names()

    def get(self, key: str, default: Any = None) -> Any:
        """``entry[key]`` if the entry has that key, else ``default`` (like ``dict.get``)."""
        return getattr(self, key) if key in self else default

    def values(self) -> list[Any]:
        """The values, in the order of :meth:`keys`."""
        return [getattr(self, key) for key in self._key_names()]

    def items(self) -> list[tuple[str, Any]]:
        """``(key, value)`` pairs, in the order of :meth:`keys`."""
        return [(key, getattr(self, key)) for key in self._key_names()]


class SynthDatasetBase(ABC):
    """A source of synthetic samples, used when no organic traffic is waiting."""

    @abstractmethod
    def sample(self) -> Any:
        """Return one sample (a :class:`SynthDatasetEntry` or anything the hooks take).

        The loop calls it on its event loop; it may be ``async def``.
        """
