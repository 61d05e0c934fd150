"""An adapter over a loaded Hugging Face ``datasets.Dataset`` (the ``hf`` extra; imported
when an adapter is built, and never downloading)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from organic_scoring._compat import require_extra
from organic_scoring.synth_dataset._base import SynthDatasetBase, SynthDatasetEntry

__all__ = ["HuggingFaceDataset"]


class HuggingFaceDataset(SynthDatasetBase):
    """Samples rows of an in-memory ``datasets.Dataset`` as :class:`SynthDatasetEntry`.

    Two row layouts are understood:

    * parallel columns, ``roles_field`` holding a list of speaker names and
      ``messages_field`` a list of the same length with what each said;
    * chat format, with ``roles_field=None``: ``messages_field`` holds a list of
      ``{"role": ..., "content": ...}`` dicts, as many chat datasets do.

    Rows are drawn uniformly with replacement and converted when drawn; a malformed
    row raises a :class:`ValueError` naming its index.

    Args:
        dataset: A map-style ``datasets.Dataset`` (one split, not a ``DatasetDict``).
        roles_field: The column of speaker lists, or None for chat format.
        messages_field: The column of message lists (or chat turns).
        extra_fields: Further columns copied onto each entry as extra fields.
        seed: Seeds this adapter's own random generator, for a reproducible order.
    """

    def __init__(
        self,
        dataset: Any,
        roles_field: str | None = "roles",
        messages_field: str = "messages",
        extra_fields: Sequence[str] = (),
        seed: int | None = None,
    ) -> None:
        _check_dataset(dataset)
        columns = list(dataset.column_names)
        wanted = {"messages_field": messages_field}
        if roles_field is not None:
            wanted["roles_field"] = roles_field
        wanted.update({f"extra_fields[{i}]": name for i, name in enumerate(extra_fields)})
        for parameter, column in wanted.items():
            if column not in columns:
                raise ValueError(
                    f"{parameter}={column!r} is not a column of the dataset; "
                    f"its columns are {columns}"
                )
        if len(dataset) == 0:
            raise ValueError("dataset has no rows")
        self._dataset = dataset
        self._roles_field = roles_field
        self._messages_field = messages_field
        self._extra_fields = tuple(extra_fields)
        self._random = random.Random(seed)

    def sample(self) -> SynthDatasetEntry:
        """Return one random row as an entry."""
        index = self._random.randrange(len(self._dataset))
        return self.entry(index)

    def entry(self, index: int) -> SynthDatasetEntry:
        """Convert row ``index`` into an entry, raising ValueError if it is malformed."""
        row = self._dataset[index]
        try:
            roles, messages = self._turns(row)
            extras = {name: row[name] for name in self._extra_fields}
            return SynthDatasetEntry.model_validate(
                {**extras, "roles": roles, "messages": messages, "source": "huggingface"}
            )
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"row {index} of the dataset is not a valid entry: {exc}") from exc

    def _turns(self, row: Mapping[str, Any]) -> tuple[Any, Any]:
        if self._roles_field is not None:
            roles, messages = row[self._roles_field], row[self._messages_field]
            both_lists = isinstance(roles, list) and isinstance(messages, list)
            if both_lists and len(roles) != len(messages):
                raise ValueError(
                    f"{len(roles)} roles in {self._roles_field!r} but "
                    f"{len(messages)} messages in {self._messages_field!r}"
                )
            return roles, messages
        turns = row[self._messages_field]
        if not isinstance(turns, list):
            raise ValueError(f"{self._messages_field!r} is not a list of chat turns")
        return [turn["role"] for turn in turns], [turn["content"] for turn in turns]

    def __len__(self) -> int:
        return len(self._dataset)

    def __repr__(self) -> str:
        return f"HuggingFaceDataset({len(self)} rows)"


def _check_dataset(dataset: Any) -> None:
    datasets = require_extra("datasets", "hf", "HuggingFaceDataset")
    if isinstance(dataset, datasets.DatasetDict):
        raise ValueError(
            f"dataset is a DatasetDict with splits {list(dataset)}; pass one split, "
            "for example dataset['train']"
        )
    if not isinstance(dataset, datasets.Dataset):
        raise ValueError(
            "dataset must be a map-style datasets.Dataset (random access), "
            f"got {type(dataset).__name__}"
        )
