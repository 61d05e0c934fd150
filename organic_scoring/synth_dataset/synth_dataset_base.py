"""The original organic-scoring package's path of ``SynthDatasetBase``, kept as an alias.

Deprecated: importing this module warns; import it as
``from organic_scoring.synth_dataset import SynthDatasetBase``.
"""

from organic_scoring._deprecated import warn_moved
from organic_scoring.synth_dataset import SynthDatasetBase

__all__ = ["SynthDatasetBase"]

warn_moved(__name__, "organic_scoring.synth_dataset")
