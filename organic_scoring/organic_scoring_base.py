"""The original package's path of ``OrganicScoringBase``; importing it warns."""

from organic_scoring._deprecated import warn_moved
from organic_scoring.base import OrganicScoringBase

__all__ = ["OrganicScoringBase"]

warn_moved(__name__, "organic_scoring")
