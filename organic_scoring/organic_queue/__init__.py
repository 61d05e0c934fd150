"""Organic queues: the interface and the ready-made implementations."""

from organic_scoring.organic_queue._base import OrganicQueueBase
from organic_scoring.organic_queue._memory import OrganicQueue, QueueCounters
from organic_scoring.organic_queue._redis import LeasedQueueCounters, RedisOrganicQueue
from organic_scoring.organic_queue._sqlite import SQLiteOrganicQueue

__all__ = [
    "LeasedQueueCounters",
    "OrganicQueue",
    "OrganicQueueBase",
    "QueueCounters",
    "RedisOrganicQueue",
    "SQLiteOrganicQueue",
]
