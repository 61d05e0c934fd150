"""The scoring engine against a bare asyncio loop calling the same hooks.

Three measurements:

- **overhead**: the time of one ``loop_iteration()`` with no-op hooks, against a
  bare coroutine making the same calls: it samples, gathers the same
  ``_query_miners`` and ``_generate_reference``, then awaits the same rewards,
  weights and log hooks (the floor for the same work). Twice: with the base class's
  ``_generate_reference`` (which the loop knows returns None, so it does not run it)
  and with one of the scorer's own (run beside the query in a task of its own);
- **wake-up**: the latency from ``increment_step()`` on another thread to the start
  of the iteration it triggers (p50 and p99), against a bare ``asyncio.Event`` set
  with ``call_soon_threadsafe`` (the floor for a cross-thread wake-up);
- **concurrency**: iterations per second with a slow ``_query_miners`` (10 ms) at
  ``max_concurrent_iterations`` 1 against k.

Run ``python -m benchmarks.bench_engine`` for the table.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetBase

SLOW_QUERY = 0.010


class _One(SynthDatasetBase):
    def sample(self) -> Any:
        return {"prompt": "hello"}


class _Noop(OrganicScoringBase):
    """No-op hooks; ``started`` is set when an iteration begins."""

    query_delay = 0.0

    def __init__(self, **kwargs: Any) -> None:
        self.started: threading.Event = threading.Event()
        self.count = 0
        super().__init__(synth_dataset=_One(), **kwargs)

    async def _on_organic_entry(self, synapse: Any) -> Any:
        self._organic_queue.add(synapse)

    async def _query_miners(self, sample: Any) -> Any:
        self.started.set()
        if self.query_delay:
            await asyncio.sleep(self.query_delay)
        return {0: sample}

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {0: 1.0}

    async def _set_weights(self, rewards: Any) -> None:
        return None

    async def _log_results(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return logs


class _NoopWithReference(_Noop):
    """The same, with a ``_generate_reference`` of its own: the loop then runs it beside
    ``_query_miners`` in a second task, as the bare gather always does."""

    async def _generate_reference(self, sample: Any) -> Any:
        return None


async def _bare_iteration(scorer: _Noop, dataset: _One) -> dict[str, Any]:
    """The least code that makes one iteration's calls: the same hooks, one gather."""
    sample = dataset.sample()
    responses, reference = await asyncio.gather(
        scorer._query_miners(sample), scorer._generate_reference(sample)
    )
    rewards = await scorer._generate_rewards(sample, responses, reference)
    await scorer._set_weights(rewards)
    logs: dict[str, Any] = await scorer._log_results({}, reference, responses, rewards, sample)
    return logs


def _overhead(n: int, reference: bool) -> dict[str, Any]:
    scorer = _NoopWithReference() if reference else _Noop()
    dataset = _One()

    async def ours() -> float:
        begun = time.perf_counter()
        for _ in range(n):
            await scorer.loop_iteration()
        return time.perf_counter() - begun

    async def bare() -> float:
        begun = time.perf_counter()
        for _ in range(n):
            await _bare_iteration(scorer, dataset)
        return time.perf_counter() - begun

    # Interleaved, best of each: a machine busy with something else slows both alike.
    ours_s = bare_s = float("inf")
    for _ in range(7):
        ours_s = min(ours_s, asyncio.run(ours()))
        bare_s = min(bare_s, asyncio.run(bare()))
    which = "own _generate_reference" if reference else "default _generate_reference"
    return {
        "name": f"iteration overhead, {which} (us/iteration)",
        "ours": ours_s / n * 1e6,
        "bare": bare_s / n * 1e6,
        "ratio": ours_s / bare_s,
    }


def _wakeup(n: int) -> list[dict[str, Any]]:
    scorer = _Noop(trigger="steps", trigger_frequency=1)
    ours: list[float] = []
    with scorer:
        for _ in range(n):
            scorer.started.clear()
            begun = time.perf_counter()
            scorer.increment_step()
            scorer.started.wait(5)
            ours.append(time.perf_counter() - begun)
            while scorer.count < len(ours):  # let the iteration finish before the next step
                time.sleep(0)

    bare: list[float] = []
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    woken = threading.Event()
    event = asyncio.Event()

    async def waiter() -> None:
        ready.set()
        for _ in range(n):
            await event.wait()
            event.clear()
            woken.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(waiter(),))
    thread.start()
    ready.wait()
    for _ in range(n):
        woken.clear()
        begun = time.perf_counter()
        loop.call_soon_threadsafe(event.set)
        woken.wait(5)
        bare.append(time.perf_counter() - begun)
    thread.join()
    loop.close()

    rows = []
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        o, b = _quantile(ours, q), _quantile(bare, q)
        rows.append(
            {
                "name": f"steps wake-up {label} (us)",
                "ours": o * 1e6,
                "bare": b * 1e6,
                "ratio": o / b,
            }
        )
    return rows


def _concurrency(seconds: float, k: int) -> dict[str, Any]:
    rates = []
    for limit in (1, k):
        scorer = _Noop(trigger_frequency=0.0001, max_concurrent_iterations=limit)
        scorer.query_delay = SLOW_QUERY
        with scorer:
            time.sleep(seconds)
        rates.append(scorer.count / seconds)
    return {
        "name": f"iterations/s, 10 ms query, k={k} vs k=1",
        "ours": rates[1],
        "bare": rates[0],
        "ratio": rates[1] / rates[0],
    }


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Run every measurement; ``quick`` shrinks them to a smoke test."""
    return [
        _overhead(200 if quick else 5000, reference=False),
        _overhead(200 if quick else 5000, reference=True),
        *_wakeup(50 if quick else 1000),
        _concurrency(0.2 if quick else 2.0, 4),
    ]


if __name__ == "__main__":
    from benchmarks import print_table

    print_table("engine", run())
