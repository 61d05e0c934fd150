"""Synthetic datasets: the interface, the entry model and ready-made datasets.

The scoring loop falls back to synthetic samples when no organic traffic is
waiting. Any object with a ``sample()`` method will do; these are ready-made:

* :class:`SequenceDataset` over entries already in memory;
* :class:`JsonlDataset` over a JSON Lines file of :class:`SynthDatasetEntry`;
* :class:`MixtureDataset` blending several datasets by weight;
* :class:`HuggingFaceDataset` over a loaded ``datasets.Dataset`` (``hf`` extra);
* :class:`OrganicReplayDataset`, past organic traffic replayed (perturbed) as probes,
  with :func:`splice_words`, a perturbation for text that stays within its words, and
  :class:`Pseudonymizer`, a ``redact`` that swaps personal data for realistic stand-ins;
* :class:`GeneratedDataset`, probes the validator's own model writes from briefs
  drawn from organic traffic (topics, lengths, scripts, turn counts, metadata shapes);
* :func:`default_dataset`, a small conversation set shipped with the package;
* :class:`SynthDatasetConversation`, the original package's conversation dataset,
  over lmsys-chat rows you already have (a loaded dataset or a local file).
"""

from organic_scoring.synth_dataset._base import SynthDatasetBase, SynthDatasetEntry
from organic_scoring.synth_dataset._conversation import SynthDatasetConversation
from organic_scoring.synth_dataset._default import default_dataset
from organic_scoring.synth_dataset._generated import GeneratedDataset
from organic_scoring.synth_dataset._hf import HuggingFaceDataset
from organic_scoring.synth_dataset._jsonl import JsonlDataset
from organic_scoring.synth_dataset._mixture import MixtureDataset
from organic_scoring.synth_dataset._pseudonyms import Pseudonymizer
from organic_scoring.synth_dataset._replay import OrganicReplayDataset
from organic_scoring.synth_dataset._sequence import SequenceDataset
from organic_scoring.synth_dataset._splice import splice_words

__all__ = [
    "GeneratedDataset",
    "HuggingFaceDataset",
    "JsonlDataset",
    "MixtureDataset",
    "OrganicReplayDataset",
    "Pseudonymizer",
    "SequenceDataset",
    "SynthDatasetBase",
    "SynthDatasetConversation",
    "SynthDatasetEntry",
    "default_dataset",
    "splice_words",
]
