"""Conversations in the lmsys-chat format, from data the validator already has."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from organic_scoring._compat import require_extra
from organic_scoring.errors import DatasetUnavailable
from organic_scoring.synth_dataset._base import SynthDatasetBase, SynthDatasetEntry
from organic_scoring.synth_dataset._jsonl import json_lines

__all__ = ["SynthDatasetConversation"]

_COLUMN = "conversation"

_HOW = (
    "SynthDatasetConversation has no data and never downloads any: give it a loaded "
    "datasets.Dataset in the lmsys-chat format (SynthDatasetConversation(dataset)), a "
    "list of such rows, or a local file of them (SynthDatasetConversation("
    "'conversations.jsonl'), one JSON object with a 'conversation' list of "
    "{'role': ..., 'content': ...} turns per line; or a .parquet file with the hf extra)"
)


class SynthDatasetConversation(SynthDatasetBase):
    """Random conversation prefixes from lmsys-chat rows, with a few typos in user turns.

    Never downloads. Each :meth:`sample` cuts a random row after a random user turn.
    Built with no data it behaves as the original did when its download failed:
    :attr:`exception` says how to give it data and :meth:`sample` raises it. Malformed
    data raises :class:`ValueError` at construction.

    Args:
        data: A ``datasets.Dataset`` (one split) or any sequence of mappings with a
            ``conversation`` list; or the path of a local JSON Lines file of such
            rows (``.parquet`` files need the ``hf`` extra). None: no data (see above).
        source: The ``source`` of every sample (the original package's, by default).
        typo_rate: Up to this share of a user turn's characters get a typo (a dropped
            character or a stray space), as in the original; 0 turns it off.
        seed: Seeds this dataset's own random generator, for a reproducible order.
    """

    def __init__(
        self,
        data: Any = None,
        *,
        source: str = "lmsys/lmsys-chat-1m",
        typo_rate: float = 0.02,
        seed: int | None = None,
    ) -> None:
        if (
            isinstance(typo_rate, bool)
            or not isinstance(typo_rate, (int, float))
            or not 0 <= typo_rate < 1
        ):
            raise ValueError(f"typo_rate must be a number in [0, 1), got {typo_rate!r}")
        self.exception: Exception | None = None
        """Why :meth:`sample` cannot work (no data was given), or None."""
        self._rows: Sequence[Any] = ()
        if data is None:
            self.exception = DatasetUnavailable(_HOW)
        elif isinstance(data, (str, os.PathLike)):
            self._rows = _read_file(Path(data))
        else:
            self._rows = _check_rows(data)
        self._source = source
        self._typo_rate = float(typo_rate)
        self._random = random.Random(seed)

    @property
    def success(self) -> bool:
        """True when the dataset has data to sample (:attr:`exception` is None)."""
        return self.exception is None

    @property
    def dataset(self) -> Sequence[Any] | None:
        """The rows sampled from (the ``datasets.Dataset`` given, say), or None."""
        return self._rows if self.success else None

    def sample(self) -> SynthDatasetEntry:
        """One random conversation prefix ending on a user turn.

        Raises:
            DatasetUnavailable: The dataset was built without data (:attr:`exception`).
            ValueError: The chosen row is not an lmsys-chat row (the message names it).
        """
        if self.exception is not None:
            raise self.exception
        index = self._random.randrange(len(self._rows))
        roles, messages = _turns(self._rows[index], f"row {index}")
        ends = [i for i, role in enumerate(roles) if role != "assistant"]
        if not ends:
            raise ValueError(f"row {index} of the conversation data has no user turn")
        end = self._random.choice(ends) + 1
        roles, messages = roles[:end], messages[:end]
        messages = [
            text if role == "assistant" else self._typos(text)
            for role, text in zip(roles, messages, strict=True)
        ]
        return SynthDatasetEntry(roles=roles, messages=messages, organic=False, source=self._source)

    def _typos(self, text: str) -> str:
        if not self._typo_rate or not text:
            return text
        chars = list(text)
        for _ in range(self._random.randint(0, max(1, int(len(chars) * self._typo_rate)))):
            position = self._random.randrange(len(chars))
            if self._random.random() < 0.5 and len(chars) > 1:
                del chars[position]
            else:
                chars.insert(position, " ")
        return "".join(chars)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        if self.exception is not None:
            return "SynthDatasetConversation(no data)"
        return f"SynthDatasetConversation({len(self._rows)} rows)"


def _turns(row: Any, where: str) -> tuple[list[str], list[str]]:
    """The roles and messages of one lmsys-chat row, or ValueError naming ``where``."""
    turns = row.get(_COLUMN) if isinstance(row, Mapping) else None
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where} is not an lmsys-chat row: no non-empty {_COLUMN!r} list")
    roles, messages = [], []
    for number, turn in enumerate(turns):
        role = turn.get("role") if isinstance(turn, Mapping) else None
        content = turn.get("content") if isinstance(turn, Mapping) else None
        if not isinstance(role, str) or not isinstance(content, str):
            raise ValueError(
                f"{where} is not an lmsys-chat row: turn {number} needs a str 'role' "
                f"and a str 'content', got {turn!r}"
            )
        roles.append(role)
        messages.append(content)
    return roles, messages


def _check_rows(data: Any) -> Sequence[Any]:
    columns = getattr(data, "column_names", None)
    if isinstance(data, Mapping):
        raise ValueError(
            f"data is a mapping with keys {list(data)[:5]}; pass one split of the "
            "dataset (for example data['train']) or a sequence of rows"
        )
    if isinstance(data, (bytes, bytearray)) or not (
        hasattr(data, "__len__") and hasattr(data, "__getitem__")
    ):
        raise ValueError(
            "data must be a datasets.Dataset, a sequence of lmsys-chat rows or a file "
            f"path, got {type(data).__name__}"
        )
    if isinstance(columns, list) and _COLUMN not in columns:
        raise ValueError(
            f"data has no {_COLUMN!r} column (its columns are {columns}); "
            "SynthDatasetConversation reads the lmsys-chat format"
        )
    if len(data) == 0:
        raise ValueError("data has no rows")
    _turns(data[0], "data row 0")
    return data  # type: ignore[no-any-return]


def _read_file(path: Path) -> Sequence[Any]:
    if path.suffix == ".parquet":
        datasets = require_extra("datasets", "hf", "reading a .parquet file")
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
        return _check_rows(datasets.Dataset.from_parquet(str(path)))
    rows = []
    for number, row in json_lines(path):
        _turns(row, f"{path}, line {number}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows, the file is empty or only blank lines")
    return rows
