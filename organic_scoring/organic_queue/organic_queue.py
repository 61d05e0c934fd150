"""The original organic-scoring package's path of ``OrganicQueue``, kept as an alias.

Deprecated: importing this module warns; import it as
``from organic_scoring.organic_queue import OrganicQueue``.
"""

from organic_scoring._deprecated import warn_moved
from organic_scoring.organic_queue import OrganicQueue

__all__ = ["OrganicQueue"]

warn_moved(__name__, "organic_scoring.organic_queue")
