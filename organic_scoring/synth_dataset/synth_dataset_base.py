"""Deprecated: the original package's path of ``SynthDatasetBase`` (importing it warns)."""

from organic_scoring._deprecated import warn_moved
from organic_scoring.synth_dataset import SynthDatasetBase

__all__ = ["SynthDatasetBase"]

warn_moved(__name__, "organic_scoring.synth_dataset")
