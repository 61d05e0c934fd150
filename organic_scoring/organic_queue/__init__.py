"""Organic queues: the interface and the ready-made implementations."""

from organic_scoring.organic_queue._base import OrganicQueueBase

__all__ = ["OrganicQueueBase"]
