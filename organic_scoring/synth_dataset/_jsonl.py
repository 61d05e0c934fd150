"""A synthetic dataset read from a JSON Lines file of conversation entries."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from organic_scoring.synth_dataset._base import SynthDatasetEntry
from organic_scoring.synth_dataset._sequence import SequenceDataset

__all__ = ["JsonlDataset"]


class JsonlDataset(SequenceDataset[SynthDatasetEntry]):
    """Samples uniformly from a JSON Lines file, one :class:`SynthDatasetEntry` per line.

    Each non-blank line is a JSON object such as
    ``{"roles": ["user"], "messages": ["What is a subnet?"]}``; extra keys are kept on
    the entry. The whole file is read and validated when the dataset is built, so a
    typo fails at start-up with the file and line number, not hours later inside the
    loop. Each :meth:`sample` returns a fresh copy, so a hook that edits its sample
    cannot change the dataset.

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


def _read_entries(path: Path) -> list[SynthDatasetEntry]:
    entries = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: invalid JSON: {exc.msg}") from exc
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
