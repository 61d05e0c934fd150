"""Synthetic datasets: the interface, the entry model and ready-made datasets."""

from organic_scoring.synth_dataset._base import SynthDatasetBase, SynthDatasetEntry

__all__ = ["SynthDatasetBase", "SynthDatasetEntry"]
