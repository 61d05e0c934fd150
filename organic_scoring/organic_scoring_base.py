"""The original organic-scoring package's path of ``OrganicScoringBase``, kept as an alias.

Deprecated: importing this module warns; import it as
``from organic_scoring import OrganicScoringBase``.
"""

from organic_scoring._deprecated import warn_moved
from organic_scoring.base import OrganicScoringBase

__all__ = ["OrganicScoringBase"]

warn_moved(__name__, "organic_scoring")
