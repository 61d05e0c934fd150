"""A synthetic dataset read from a JSON Lines file of conversation entries."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from organic_scoring.synth_dataset._base import SynthDatasetEntry
from organic_scoring.synth_dataset._sequence import SequenceDataset

__all__ = ["JsonlDataset"]


class JsonlDataset(SequenceDataset[SynthDatasetEntry]):
    """Samples uniformly from a JSON Lines file, one :class:`SynthDatasetEntry` per line.

    Each non-blank line is a JSON object such as
    ``{"roles": ["user"], "messages": ["What is a subnet?"]}``; extra keys are kept. The
    file is read and validated when the dataset is built; :meth:`sample` returns a copy.

    Args:
        path: The ``.jsonl`` file, UTF-8 encoded.
        seed: Seeds this dataset's own random generator, for a reproducible order.

    Raises:
        ValueError: A line is not valid JSON or not a valid entry (the message names
            the file and the 1-based line number), or the file holds no entries.
        OSError: The file cannot be read.
    """

    def __init__(self, path: str | os.PathLike[str], seed: int | None = None) -> None:
        self._path = Path(path)
        entries = _read_entries(self._path)
        if not entries:
            raise ValueError(f"{self._path}: no entries, the file is empty or only blank lines")
        super().__init__(entries, seed=seed)

    @property
    def path(self) -> Path:
        """The file the entries were read from."""
        return self._path

    def sample(self) -> SynthDatasetEntry:
        """Return a copy of one entry, each equally likely."""
        return super().sample().model_copy(deep=True)

    def __repr__(self) -> str:
        return f"JsonlDataset({str(self._path)!r}, {len(self)} entries)"


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line; ValueError naming a bad line."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: invalid JSON: {exc.msg}") from exc


def _read_entries(path: Path) -> list[SynthDatasetEntry]:
    entries = []
    for number, data in json_lines(path):
        try:
            entries.append(SynthDatasetEntry.model_validate(data))
        except ValidationError as exc:
            raise ValueError(
                f"{path}, line {number}: not a valid SynthDatasetEntry: {_explain(exc)}"
            ) from exc
    return entries


def _explain(error: ValidationError) -> str:
    """pydantic's findings on one line: ``roles: Field required; ...``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "entry"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
