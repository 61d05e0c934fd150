"""Organic queues: the interface and the ready-made implementations."""

from organic_scoring.organic_queue._base import OrganicQueueBase
from organic_scoring.organic_queue._codec import SampleDecodeError, SampleNotStorable
from organic_scoring.organic_queue._memory import OrganicQueue, QueueCounters
from organic_scoring.organic_queue._sqlite import QueueFileError, SQLiteOrganicQueue

__all__ = [
    "OrganicQueue",
    "OrganicQueueBase",
    "QueueCounters",
    "QueueFileError",
    "SQLiteOrganicQueue",
    "SampleDecodeError",
    "SampleNotStorable",
]
