"""The small conversation dataset shipped inside the package."""

from __future__ import annotations

from importlib import resources

from organic_scoring.synth_dataset._jsonl import JsonlDataset

__all__ = ["default_dataset"]

_PACKAGE = "organic_scoring.synth_dataset"
_RESOURCE = "data/conversations.jsonl"


def default_dataset(seed: int | None = None) -> JsonlDataset:
    """A ready dataset of a few dozen short, varied user/assistant conversations.

    Each entry ends on a user turn, waiting for a miner's answer, and has
    ``source="default"``. It needs no network and no download, which makes it a
    fallback for demos, tests and a validator's first run; a real subnet should
    bring synthetic data that fits its task.

    Args:
        seed: Seeds the dataset's random generator, for a reproducible order.
    """
    resource = resources.files(_PACKAGE).joinpath(_RESOURCE)
    with resources.as_file(resource) as path:
        return JsonlDataset(path, seed=seed)
