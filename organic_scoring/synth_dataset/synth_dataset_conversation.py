"""Deprecated: the original package's path of ``SynthDatasetConversation`` (importing it warns)."""

from organic_scoring._deprecated import warn_moved
from organic_scoring.synth_dataset import SynthDatasetConversation

__all__ = ["SynthDatasetConversation"]

warn_moved(__name__, "organic_scoring.synth_dataset")
