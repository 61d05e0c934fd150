"""OrganicQueue, the in-memory queue: what it adds to the contract in test_queue_contract.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

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


def test_a_custom_queue_whose_size_lacks_property_is_refused_where_it_is_written() -> None:
    """Forgetting ``@property`` on ``size`` stopped the scoring loop on its first organic
    sample with ``unsupported operand type(s) for /: 'method' and 'float'``."""
    with pytest.raises(TypeError, match=r"Mine\.size must be a property: put @property"):

        class Mine(OrganicQueueBase):
            def add(self, sample: Any) -> None: ...

            def sample(self) -> Any: ...

            def size(self) -> int:  # type: ignore[override]  # the mistake
                return 0

    class Fine(OrganicQueueBase):
        def add(self, sample: Any) -> None: ...

        def sample(self) -> Any: ...

        @property
        def size(self) -> int:
            return 0

    assert Fine().size == 0


def test_a_custom_queue_with_async_def_add_or_sample_is_refused_where_it_is_written() -> None:
    """``async def add`` made every add a coroutine that never ran: requests vanished
    with no word (such a queue never announces an add); ``async def sample`` handed
    the hooks a coroutine."""
    with pytest.raises(TypeError, match=r"AsyncAdd\.add must be a plain def"):

        class AsyncAdd(OrganicQueueBase):
            async def add(self, sample: Any) -> None: ...  # type: ignore[override]

            def sample(self) -> Any: ...

            @property
            def size(self) -> int:
                return 0

    with pytest.raises(TypeError, match=r"AsyncSample\.sample must be a plain def"):

        class AsyncSample(OrganicQueueBase):
            def add(self, sample: Any) -> None: ...

            async def sample(self) -> Any: ...  # type: ignore[override]

            @property
            def size(self) -> int:
                return 0
