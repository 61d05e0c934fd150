"""The original organic-scoring package's path of ``OrganicQueueBase``, kept as an alias.

Deprecated: importing this module warns; import it as
``from organic_scoring.organic_queue import OrganicQueueBase``.
"""

from organic_scoring._deprecated import warn_moved
from organic_scoring.organic_queue import OrganicQueueBase

__all__ = ["OrganicQueueBase"]

warn_moved(__name__, "organic_scoring.organic_queue")
