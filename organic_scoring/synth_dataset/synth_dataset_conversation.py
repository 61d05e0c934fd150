"""The original organic-scoring package's path of ``SynthDatasetConversation``, kept as an alias.

Deprecated: importing this module warns; import it as
``from organic_scoring.synth_dataset import SynthDatasetConversation``.
"""

from organic_scoring._deprecated import warn_moved
from organic_scoring.synth_dataset import SynthDatasetConversation

__all__ = ["SynthDatasetConversation"]

warn_moved(__name__, "organic_scoring.synth_dataset")
