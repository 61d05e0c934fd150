"""A scorer on a RedisOrganicQueue: samples added elsewhere are scored and acknowledged,
a Redis outage falls back to synthetic samples and recovers by itself."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from organic_scoring.organic_queue import RedisOrganicQueue
from support.processes import finish, read_line, spawn_module, stop
from support.redis_server import RedisServer
from support.scorers import Letters, Recorder
from support.waiting import WAIT, wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_samples_added_by_another_process_are_scored_and_acknowledged(redis_url: str) -> None:
    with (
        RedisOrganicQueue(redis_url, name="sn") as intake,
        RedisOrganicQueue(redis_url, name="sn") as queue,
    ):
        scorer = Recorder(organic_queue=queue, trigger_frequency=0.01)
        with scorer:
            for i in range(5):
                intake.add({"n": i})
            wait_until(lambda: scorer.stats.organic_scored == 5, "five organic samples scored")
        counters = intake.counters()
        assert (counters.acked, counters.leased, counters.size) == (5, 0, 0)
        assert sorted(s["n"] for s in scorer.samples) == list(range(5))


def test_an_outage_falls_back_to_synthetic_samples_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        with (
            RedisOrganicQueue(server.url, name="sn") as intake,
            RedisOrganicQueue(server.url, name="sn") as queue,
        ):
            scorer = Recorder(
                organic_queue=queue,
                synth_dataset=Letters("s"),
                trigger_frequency=0.01,
                backoff_initial=0.05,
                backoff_max=0.2,
            )
            with scorer:
                intake.add({"n": 0})
                # Acknowledged, not only scored: the ack follows the count.
                wait_until(lambda: intake.counters().acked == 1, "the first organic sample")
                server.kill()
                before = len(scorer.samples)
                wait_until(
                    lambda: sum("synthetic" in s for s in scorer.samples[before:]) >= 3,
                    "synthetic samples during the outage",
                )
                assert any(stage == "sample" for _, stage, _ in scorer.errors)
                server.start()
                wait_until(lambda: _add(intake, {"n": 1}), "Redis to take adds again")
                wait_until(
                    lambda: scorer.stats.organic_scored == 2,
                    "organic scoring to resume by itself",
                    3 * WAIT,
                )
            assert intake.counters().acked == 2
    finally:
        server.stop()


def _add(queue: RedisOrganicQueue, sample: object) -> bool:
    try:
        queue.add(sample)
    except ConnectionError:
        return False
    return True


def test_scorers_sharing_a_queue_run_one_at_a_time_and_hand_over(redis_url: str) -> None:
    # A clean stop hands over at once: the period only bounds a crash's takeover.
    queues = [RedisOrganicQueue(redis_url, name="sn", lock_period=2.0) for _ in range(3)]
    intake, *mine = queues
    first, second = (Recorder(organic_queue=q, trigger_frequency=0.01) for q in mine)
    try:
        first.start()
        wait_until(lambda: first.stats.active_scorer, "the first scorer to take the role")
        second.start()
        for i in range(5):
            intake.add({"n": i})
        try:
            wait_until(lambda: first.stats.organic_scored == 5, "the active scorer to score all")
        except AssertionError:
            raise AssertionError(
                f"first {first.stats.as_dict()} errors {first.errors} second "
                f"{second.stats.as_dict()} queue {intake.counters()}"
            ) from None
        assert second.stats.iterations == 0
        assert not second.stats.active_scorer
        assert second.is_running

        first.stop()  # a clean stop releases the lock: the standby takes over at once
        assert not first.stats.active_scorer
        wait_until(lambda: second.stats.active_scorer, "the standby to take over")
        intake.add({"n": 5})
        wait_until(lambda: intake.counters().acked == 6, "the new active scorer to score")
        assert (first.stats.organic_scored, second.stats.organic_scored) == (5, 1)
        counters = intake.counters()
        assert (counters.acked, counters.scored, counters.leased) == (6, 6, 0)
    finally:
        first.stop()
        second.stop()
        for queue in queues:
            queue.close()


def test_a_scorer_is_not_active_before_it_holds_the_lock(redis_url: str) -> None:
    # Between start() and the first answer about the lock, a scorer on a shared queue
    # is not the active one: it must not say it is (a test, or an operator, that
    # waits for it would believe it).
    with (
        RedisOrganicQueue(redis_url, name="sn", lock_period=2.0) as other,
        RedisOrganicQueue(redis_url, name="sn", lock_period=2.0) as mine,
    ):
        holder = other.scorer_lock()
        assert holder is not None
        assert holder.acquire()
        scorer = Recorder(organic_queue=mine, trigger_frequency=0.01)
        scorer.start()
        try:
            seen = [scorer.stats.active_scorer]
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                seen.append(scorer.stats.active_scorer)
            assert holder.acquire()  # still ours: nobody took it meanwhile
        finally:
            scorer.stop()
            holder.release()
        assert not any(seen)
        assert scorer.stats.iterations == 0


def test_scorers_can_opt_out_of_the_lock(redis_url: str) -> None:
    with (
        RedisOrganicQueue(redis_url, name="sn", one_scorer=False) as a,
        RedisOrganicQueue(redis_url, name="sn", one_scorer=False) as b,
    ):
        first = Recorder(organic_queue=a, synth_dataset=Letters("a"), trigger_frequency=0.01)
        second = Recorder(organic_queue=b, synth_dataset=Letters("b"), trigger_frequency=0.01)
        with first, second:
            first.done.wait_for(3)
            second.done.wait_for(3)
            assert first.stats.active_scorer
            assert second.stats.active_scorer


def test_failed_iterations_are_acknowledged_as_failed(redis_url: str) -> None:
    class Failing(Recorder):
        async def _generate_rewards(
            self, sample: object, responses: object, reference: object = None
        ) -> object:
            raise RuntimeError("no rewards today")

    with RedisOrganicQueue(redis_url, name="sn") as queue:
        scorer = Failing(organic_queue=queue, trigger_frequency=0.01)
        with scorer:
            queue.add({"n": 1})
            wait_until(lambda: scorer.stats.organic_failed == 1, "the failure")
        counters = queue.counters()
        assert (counters.acked, counters.failed, counters.scored, counters.leased) == (1, 1, 0, 0)


def test_a_lone_scorer_is_active_while_it_runs() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.01)
    assert not scorer.stats.active_scorer
    with scorer:
        scorer.done.wait_for(1)
        assert scorer.stats.active_scorer
        assert scorer.stats.as_dict()["active_scorer"] is True
    assert not scorer.stats.active_scorer


def test_a_killed_scorer_process_is_replaced_and_its_samples_come_back(
    redis_url: str, tmp_path: Path
) -> None:
    period, lease, total = 1.0, 1.5, 120
    outs = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    first = spawn_module("support.scorer_worker", redis_url, "sn", outs[0], period, lease)
    second = None
    try:
        assert read_line(first) == "ready"
        assert json.loads(read_line(first))["active"]
        second = spawn_module("support.scorer_worker", redis_url, "sn", outs[1], period, lease)
        assert read_line(second) == "ready"
        with RedisOrganicQueue(redis_url, name="sn") as intake:
            front = Recorder(organic_queue=intake)  # an intake process: accepts, stores

            async def accept(numbers: range) -> None:
                for n in numbers:
                    await front.receive_organic({"n": n})

            asyncio.run(accept(range(total // 2)))
            wait_until(lambda: _lines(outs[0]) >= 10, "the active scorer to score some")
            first.kill()  # SIGKILL, mid-iteration most likely
            killed_at = time.time()
            asyncio.run(accept(range(total // 2, total)))
            took = json.loads(read_line(second))
            assert took["active"]
            assert took["at"] - killed_at <= 2 * period
            wait_until(lambda: intake.counters().acked == total, "every sample scored", 6 * WAIT)
            counters = intake.counters()
            assert Recorder(organic_queue=intake).stats.organic_unaccounted == 0
        finish(second)
    finally:
        stop([first] if second is None else [first, second])
    scored = [json.loads(line)["n"] for out in outs for line in out.read_text().splitlines()]
    assert set(scored) == set(range(total))
    # A sample is scored twice only when the killed scorer held it: its lease ran out.
    assert len(scored) - total <= counters.redelivered
    assert (counters.added, counters.scored, counters.leased, counters.size) == (total, total, 0, 0)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_accounting_balances_across_every_process_of_the_fleet(redis_url: str) -> None:
    class Picky(Recorder):
        async def _generate_rewards(
            self, sample: Any, responses: Any, reference: Any = None
        ) -> Any:
            if sample["n"] % 5 == 0:
                raise RuntimeError("cannot score this one")
            return {0: 1.0}

    queues = [
        RedisOrganicQueue(redis_url, name="sn", max_size=20, lock_period=0.5) for _ in range(4)
    ]
    intakes = [Recorder(organic_queue=q) for q in queues[:2]]  # never started: intake only
    scorers = [Picky(organic_queue=q, trigger_frequency=0.005) for q in queues[2:]]
    try:
        for scorer in scorers:
            scorer.start()

        async def send() -> None:
            for n in range(150):
                await intakes[n % 2].receive_organic({"n": n})

        asyncio.run(send())
        wait_until(lambda: queues[0].counters().size == 0, "the queue to drain")
        wait_until(lambda: queues[0].counters().leased == 0, "the last iteration to end")
        everyone = [*intakes, *scorers]
        for member in everyone:
            assert member.stats.organic_unaccounted == 0
        counters = queues[0].counters()
        assert counters.added == 150 == sum(i.stats.organic_accepted for i in intakes)
        assert counters.dropped > 0  # the burst outran the scorer: the bound held
        assert counters.failed > 0
        assert counters.scored + counters.failed + counters.dropped == 150
        assert counters.scored == sum(s.stats.organic_scored for s in scorers)
    finally:
        for scorer in scorers:
            scorer.stop()
        for queue in queues:
            queue.close()


def test_the_fleet_ledger_sees_a_request_accepted_but_never_stored(redis_url: str) -> None:
    # The fleet's "accepted" is counted apart from what reached the queue, so a
    # handler that answers without storing (or stores twice) shows in every process.
    class Forgetful(Recorder):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            if synapse["n"] == 1:
                return synapse  # answered, never stored: lost
            if synapse["n"] == 2:
                await self._organic_queue.aadd(synapse)  # stored twice
            await self._organic_queue.aadd(synapse)
            return synapse

    with (
        RedisOrganicQueue(redis_url, name="sn") as first,
        RedisOrganicQueue(redis_url, name="sn") as second,
    ):
        intake, elsewhere = Forgetful(organic_queue=first), Recorder(organic_queue=second)

        async def send(n: int) -> None:
            await intake.receive_organic({"n": n})

        asyncio.run(send(0))
        assert elsewhere.stats.organic_unaccounted == 0
        asyncio.run(send(1))
        assert elsewhere.stats.organic_unaccounted == 1
        asyncio.run(send(2))
        assert elsewhere.stats.organic_unaccounted == 0  # one lost, one twice: it nets out
        assert second.counters().accepted == 3
        assert second.counters().added == 3
