"""Every accepted organic request is accounted for: scored, failed, dropped, in flight or queued."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any

import pytest

from organic_scoring import IterationError
from organic_scoring.errors import SampleUnreadable
from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase, SQLiteOrganicQueue
from support.scorers import Recorder

pytestmark = pytest.mark.python_version


def test_accepted_requests_balance_scored_failed_dropped_and_queued() -> None:
    class SometimesFails(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            if sample % 3 == 0:
                raise RuntimeError("miner down")
            return {0: sample}

    scorer = SometimesFails(organic_queue=OrganicQueue(max_size=5, seed=1))

    async def main() -> None:
        for n in range(12):
            await scorer.receive_organic(n)  # 12 accepted, 7 dropped by the bound of 5
        for _ in range(3):
            with contextlib.suppress(IterationError):
                await scorer.loop_iteration()

    asyncio.run(main())
    stats = scorer.stats
    assert stats.organic_accepted == 12
    assert stats.queue_counters["dropped"] == 7
    assert stats.organic_scored + stats.organic_failed == 3
    assert stats.queue_size == 2
    assert stats.organic_unaccounted == 0
    assert stats.as_dict()["organic_unaccounted"] == 0


def test_a_handler_that_raises_is_counted_and_not_accepted() -> None:
    class Refuses(Recorder):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            raise ValueError("no")

    scorer = Refuses()
    with pytest.raises(ValueError, match="no"):
        asyncio.run(scorer.receive_organic("x"))
    assert scorer.stats.organic_handler_errors == 1
    assert scorer.stats.organic_accepted == 0
    assert scorer.stats.organic_unaccounted == 0


def test_a_queue_without_counters_cannot_vouch() -> None:
    class Bare(OrganicQueueBase):
        def __init__(self) -> None:
            self.items: list[Any] = []

        def add(self, sample: Any) -> None:
            self.items.append(sample)

        def sample(self) -> Any:
            return self.items.pop() if self.items else None

        @property
        def size(self) -> int:
            return len(self.items)

    scorer = Recorder(organic_queue=Bare())
    asyncio.run(scorer.receive_organic(1))
    assert scorer.stats.organic_accepted == 1
    assert scorer.stats.organic_unaccounted is None


def test_an_entry_the_queue_cannot_hand_over_is_a_failed_organic_sample() -> None:
    class Damaged(OrganicQueue):
        def sample(self) -> Any:
            super().sample()  # the entry leaves the queue...
            raise SampleUnreadable("record no longer decodes")  # ...but cannot be handed over

    scorer = Recorder(organic_queue=Damaged())
    asyncio.run(scorer.receive_organic("x"))
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    assert (raised.value.stage, raised.value.organic) == ("sample", True)
    [(_, stage, exc)] = scorer.errors
    assert (stage, type(exc)) == ("sample", SampleUnreadable)
    stats = scorer.stats
    assert (stats.organic_failed, stats.organic_in_flight) == (1, 0)
    assert stats.organic_unaccounted == 0


def test_a_queue_that_fails_without_giving_anything_up_keeps_the_books() -> None:
    class Locked(OrganicQueue):
        def sample(self) -> Any:
            raise OSError("the store is busy")  # nothing left the queue

    scorer = Recorder(organic_queue=Locked())
    asyncio.run(scorer.receive_organic("x"))
    assert asyncio.run(scorer.loop_iteration()) == {}  # reported; nothing synthetic to fall back to
    [(sample, stage, error)] = scorer.errors
    assert (sample, stage, type(error)) == (None, "sample", OSError)
    stats = scorer.stats
    assert (stats.organic_failed, stats.queue_size, stats.failures["sample"]) == (0, 1, 1)
    assert stats.failed_iterations == 0
    assert stats.organic_unaccounted == 0


FORGOT = (
    "Forgets._on_organic_entry returned without adding anything to self._organic_queue: "
    "the request will not be scored (counted in stats.organic_not_queued). A forgotten "
    "`await` on `self._organic_queue.aadd(...)` does this; a handler that drops requests "
    "on purpose may ignore this message, logged once per scorer."
)


def test_a_handler_that_forgets_to_await_the_add_is_named_once_and_counted(
    library_log: list[str],
) -> None:
    class Forgets(Recorder):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            self._organic_queue.aadd(synapse)  # type: ignore[unused-coroutine]  # the mistake
            return synapse

    scorer = Forgets()

    async def main() -> None:
        for n in range(3):
            await scorer.receive_organic(n)

    with pytest.warns(RuntimeWarning, match="was never awaited"):
        asyncio.run(main())
    stats = scorer.stats
    assert (stats.organic_not_queued, stats.organic_accepted, stats.queue_size) == (3, 3, 0)
    assert stats.organic_unaccounted == 3  # lost, and organic_not_queued says why
    assert stats.as_dict()["organic_not_queued"] == 3
    assert "not queued 3" in str(stats).splitlines()[1]
    assert [m for m in library_log if "_on_organic_entry" in m] == [FORGOT]


FIRST_REQUEST = """
import asyncio, sys, tempfile, warnings
from organic_scoring import OrganicScoringBase
from organic_scoring.organic_queue import OrganicQueue, SQLiteOrganicQueue

warnings.simplefilter("ignore", RuntimeWarning)  # the never-awaited coroutine


class Forgets(OrganicScoringBase):
    async def _on_organic_entry(self, request):
        self._organic_queue.aadd(request)
        return request

    async def _query_miners(self, sample): ...
    async def _generate_rewards(self, sample, responses, reference=None): ...
    async def _set_weights(self, rewards): ...


path = tempfile.mkdtemp() + "/queue.db"
for queue in (OrganicQueue(), SQLiteOrganicQueue(path)):
    scorer = Forgets(organic_queue=queue)
    asyncio.run(scorer.receive_organic("x"))
    print(scorer.stats.organic_not_queued)
"""


def test_a_forgotten_await_is_seen_on_the_first_request_of_a_process() -> None:
    """The newcomer's case: the handler never added anything, so no queue of the
    library has announced an add in this interpreter yet; the mistake is still seen."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
    assert "_on_organic_entry returned without adding anything" in done.stderr


def test_a_subclass_with_its_own_add_is_judged_only_once_it_announces() -> None:
    """A subclass of a library queue that replaces ``add`` and never calls
    ``_notify_added`` cannot show its adds; the parent's announcing does not count."""

    class Own(OrganicQueue):
        def __init__(self) -> None:
            super().__init__()
            self.kept: list[Any] = []

        def add(self, sample: Any) -> None:
            self.kept.append(sample)

    OrganicQueue().add("announce")  # the parent class has announced an add
    scorer = Recorder(organic_queue=Own())
    asyncio.run(scorer.receive_organic(1))
    assert (scorer.stats.organic_accepted, scorer.stats.organic_not_queued) == (1, 0)


def test_adds_from_the_handler_count_however_they_reach_the_queue(tmp_path: Any) -> None:
    """Awaited on a worker thread (a blocking queue), added inline, or added by a plain
    handler: each is a queued request, and nothing is reported."""

    class Plain(Recorder):
        def _on_organic_entry(self, synapse: Any) -> Any:  # type: ignore[override]
            self._organic_queue.add(synapse)
            return synapse

    class Awaits(Recorder):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            await self._organic_queue.aadd(synapse)
            return synapse

    with SQLiteOrganicQueue(tmp_path / "queue.db") as on_disk:
        for scorer in (Recorder(), Plain(), Awaits(organic_queue=on_disk)):
            asyncio.run(scorer.receive_organic("x"))
            stats = scorer.stats
            assert (stats.organic_not_queued, stats.organic_accepted, stats.queue_size) == (0, 1, 1)
            assert stats.organic_unaccounted == 0


def test_a_queue_that_never_announces_its_adds_is_not_judged(library_log: list[str]) -> None:
    """A custom queue that does not call ``_notify_added`` cannot show what was added:
    its handler's requests count as accepted, as before, and nothing is logged."""

    class Quiet(OrganicQueueBase):
        def __init__(self) -> None:
            self.items: list[Any] = []

        def add(self, sample: Any) -> None:
            self.items.append(sample)

        def sample(self) -> Any:
            return self.items.pop() if self.items else None

        @property
        def size(self) -> int:
            return len(self.items)

    class Drops(Recorder):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            return synapse

    scorer = Drops(organic_queue=Quiet())
    asyncio.run(scorer.receive_organic(1))
    assert (scorer.stats.organic_accepted, scorer.stats.organic_not_queued) == (1, 0)
    assert not [m for m in library_log if "_on_organic_entry" in m]


def test_a_handler_that_returns_a_stream_is_not_judged_when_it_returns(
    library_log: list[str],
) -> None:
    """A streaming handler adds its record once the stream has been sent, after it
    returned: it counts as accepted, and nothing is logged."""

    class Streams(Recorder):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            async def stream() -> Any:
                yield "chunk"
                self._organic_queue.add(synapse)

            return stream()

    scorer = Streams()

    async def main() -> None:
        chunks = [chunk async for chunk in await scorer.receive_organic("x")]
        assert chunks == ["chunk"]

    asyncio.run(main())
    stats = scorer.stats
    assert (stats.organic_accepted, stats.organic_not_queued, stats.queue_size) == (1, 0, 1)
    assert not [m for m in library_log if "_on_organic_entry" in m]
