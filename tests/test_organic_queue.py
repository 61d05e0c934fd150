"""OrganicQueue, the in-memory queue: what it adds to the contract in test_queue_contract.py."""

from __future__ import annotations

from collections import Counter

from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase
from support.queue_contract import CHI2_DF9_P001, chi_square


def test_needs_no_arguments() -> None:
    queue = OrganicQueue()
    assert isinstance(queue, OrganicQueueBase)
    assert queue.max_size == 10_000
    assert queue.is_empty()


def test_first_draw_of_a_fresh_queue_is_uniform_over_seeds() -> None:
    # Whatever its age or slot, every waiting entry is equally likely to come out first,
    # also from a queue that has never sampled before: seeds spread the very first draw.
    categories = list(range(10))
    counts: Counter[int] = Counter()
    trials = 5_000
    for trial in range(trials):
        queue = OrganicQueue(seed=trial)
        for item in categories:
            queue.add(item)
        counts[queue.sample()] += 1
    assert chi_square(counts, categories, trials) < CHI2_DF9_P001
