"""Deprecated: the original package's path of ``OrganicQueueBase`` (importing it warns)."""

from organic_scoring._deprecated import warn_moved
from organic_scoring.organic_queue import OrganicQueueBase

__all__ = ["OrganicQueueBase"]

warn_moved(__name__, "organic_scoring.organic_queue")
