"""RedisOrganicQueue against bare redis-py doing the same atomic work, one round trip each.

Two workloads on a queue holding N samples (a small chat request as a JSON dict):

* ``add+sample``: one ``add`` then one ``take`` (a sample and its lease token);
* ``add+sample+ack``: the same, then the acknowledgement (by token) that ends the lease;
* ``aadd+atake+aack``: the awaitable forms (what the intake and the scorer call), on the
  queue's ``redis.asyncio`` client, against the same pipelines on a bare
  ``redis.asyncio`` client; each workload one ``run_until_complete`` on both sides.

Both sides use one ``redis.Redis`` client made the same way: the queue takes it as
given, as an application passes its own.

The floor is redis-py with no library around it, each operation one MULTI/EXEC
pipeline of plain commands, the classic reliable-queue recipe: ``add`` is ``LPUSH``
+ ``LTRIM`` (the bound, dropping the oldest) + ``HINCRBY`` (a counter); ``sample``
is ``LMOVE`` from the waiting list to a leased list + ``HINCRBY``; ``ack`` is ``LREM``
from the leased list + ``HINCRBY``; ``json.dumps`` / ``json.loads`` on the way. It
takes the oldest sample rather than a random one, keeps no lease deadline (nothing
ever comes back) and checks nothing it stores.

The ratio is the price of the Lua scripts (uniform random sampling, lease deadlines,
redelivery, exact counters), the storability checks and the ack bookkeeping; both
sides pay the same round trips, which dominate. Target: at most 1.2.

``python -m benchmarks.bench_redis_queue`` starts a throwaway ``redis-server`` on
127.0.0.1 (it must be on PATH), or uses the server named by the
``ORGANIC_SCORING_BENCH_REDIS`` environment variable.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio

from benchmarks import best_ns
from benchmarks._redis import redis_server
from organic_scoring.organic_queue import RedisOrganicQueue

SIZES = (1_000, 10_000)
QUICK_SIZES = (100,)
WORKLOADS = ("add+sample", "add+sample+ack", "aadd+atake+aack")

SAMPLE: dict[str, Any] = {
    "uid": 17,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the following paragraph in one sentence. " * 3},
    ],
    "temperature": 0.7,
    "max_tokens": 256,
}

Step = Callable[[], object]


def _ours(url: str, size: int, ack: bool) -> tuple[Step, Callable[[], None]]:
    client = redis.Redis.from_url(url)
    queue = RedisOrganicQueue(client, name=f"ours-{size}-{ack}", max_size=2 * size, seed=0)
    for _ in range(size):
        queue.add(SAMPLE)

    def step() -> object:
        queue.add(SAMPLE)
        taken = queue.take()
        assert taken is not None
        if ack:
            queue.ack(taken[1])
        return taken[0]

    def close() -> None:
        queue.close()
        client.close()

    return step, close


def _ours_async(url: str, size: int) -> tuple[Step, Callable[[], None]]:
    client = redis.Redis.from_url(url)
    queue = RedisOrganicQueue(client, name=f"ours-async-{size}", max_size=2 * size, seed=0)
    for _ in range(size):
        queue.add(SAMPLE)
    loop = asyncio.new_event_loop()

    async def work() -> object:
        await queue.aadd(SAMPLE)
        taken = await queue.atake()
        assert taken is not None
        await queue.aack(taken[1])
        return taken[0]

    def close() -> None:
        loop.run_until_complete(queue.aclose())
        loop.close()
        client.close()

    return lambda: loop.run_until_complete(work()), close


def _bare_async(url: str, size: int) -> tuple[Step, Callable[[], None]]:
    client = redis.asyncio.Redis.from_url(url)
    prefix = f"bare-async-{size}:"
    waiting, leased, meta = prefix + "waiting", prefix + "leased", prefix + "meta"
    bound = 2 * size
    loop = asyncio.new_event_loop()

    async def preload() -> None:
        pipe = client.pipeline(transaction=False)
        for _ in range(size):
            pipe.lpush(waiting, json.dumps(SAMPLE))
        await pipe.execute()

    async def work() -> object:
        pipe = client.pipeline(transaction=True)
        pipe.lpush(waiting, json.dumps(SAMPLE))
        pipe.ltrim(waiting, 0, bound - 1)
        pipe.hincrby(meta, "added", 1)
        await pipe.execute()
        pipe.lmove(waiting, leased, "RIGHT", "LEFT")
        pipe.hincrby(meta, "sampled", 1)
        raw = (await pipe.execute())[0]
        item = json.loads(raw)
        pipe.lrem(leased, 1, raw)
        pipe.hincrby(meta, "acked", 1)
        await pipe.execute()
        return item

    loop.run_until_complete(preload())

    def close() -> None:
        loop.run_until_complete(client.aclose())
        loop.close()

    return lambda: loop.run_until_complete(work()), close


def _bare(url: str, size: int, ack: bool) -> tuple[Step, Callable[[], None]]:
    client = redis.Redis.from_url(url)
    prefix = f"bare-{size}-{ack}:"
    waiting, leased, meta = prefix + "waiting", prefix + "leased", prefix + "meta"
    bound = 2 * size
    preload = client.pipeline(transaction=False)
    for _ in range(size):
        preload.lpush(waiting, json.dumps(SAMPLE))
    preload.execute()

    def step() -> object:
        pipe = client.pipeline(transaction=True)
        pipe.lpush(waiting, json.dumps(SAMPLE))
        pipe.ltrim(waiting, 0, bound - 1)
        pipe.hincrby(meta, "added", 1)
        pipe.execute()
        pipe.lmove(waiting, leased, "RIGHT", "LEFT")
        pipe.hincrby(meta, "sampled", 1)
        raw = pipe.execute()[0]
        item = json.loads(raw)
        if ack:
            pipe.lrem(leased, 1, raw)
            pipe.hincrby(meta, "acked", 1)
            pipe.execute()
        return item

    return step, client.close


def run(quick: bool = False, url: str | None = None) -> list[dict[str, Any]]:
    """Time each workload at each size; one row per pair.

    Each row holds ``name``, ``size``, ``ours_ns`` and ``bare_ns`` (nanoseconds per
    workload, best of several runs) and ``ratio`` (ours / bare). ``url`` names the
    server to use (its database is flushed); by default a throwaway one is started.
    Returns no rows when there is no server to use.
    """
    sizes, number, repeat = (QUICK_SIZES, 200, 1) if quick else (SIZES, 1_000, 7)
    with redis_server() if url is None else _given(url) as found:
        if found is None:
            print("bench_redis_queue: no redis-server on PATH", file=sys.stderr)
            return []
        with redis.Redis.from_url(found) as client:
            client.flushdb()
        rows: list[dict[str, Any]] = []
        for name in WORKLOADS:
            for size in sizes:
                ack = name.endswith("ack")
                if name.startswith("aadd"):
                    ours, close_ours = _ours_async(found, size)
                    bare, close_bare = _bare_async(found, size)
                else:
                    ours, close_ours = _ours(found, size, ack)
                    bare, close_bare = _bare(found, size, ack)
                try:
                    ours()  # warm: connections made, scripts cached
                    bare()
                    # Alternate the two sides, so a busy moment on the machine hits both.
                    timings = {"ours": float("inf"), "bare": float("inf")}
                    for _ in range(repeat):
                        timings["ours"] = min(timings["ours"], best_ns(ours, number, 1))
                        timings["bare"] = min(timings["bare"], best_ns(bare, number, 1))
                finally:
                    close_ours()
                    close_bare()
                rows.append(
                    {
                        "name": name,
                        "size": size,
                        "ours_ns": timings["ours"],
                        "bare_ns": timings["bare"],
                        "ratio": timings["ours"] / timings["bare"],
                    }
                )
        return rows


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def main() -> None:
    """Print the benchmark as a table (microseconds per workload)."""
    rows = run(quick=False)
    print(f"{'workload':<16}{'size':>10}{'ours (us)':>12}{'bare (us)':>12}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<16}{row['size']:>10,}"
            f"{row['ours_ns'] / 1000:>12.1f}{row['bare_ns'] / 1000:>12.1f}{row['ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
