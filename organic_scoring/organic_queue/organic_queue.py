"""Deprecated: the original package's path of ``OrganicQueue`` (importing it warns)."""

from organic_scoring._deprecated import warn_moved
from organic_scoring.organic_queue import OrganicQueue

__all__ = ["OrganicQueue"]

warn_moved(__name__, "organic_scoring.organic_queue")
