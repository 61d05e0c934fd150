"""A scorer process on a shared RedisOrganicQueue, for the failover tests.

``python -m support.scorer_worker URL NAME OUT LOCK_PERIOD LEASE`` starts a scorer
whose every scored organic sample is appended to OUT (one JSON line each, flushed),
prints ``ready``, then one JSON line ``{"active": bool, "at": unix time}`` whenever
``stats.active_scorer`` changes. When stdin closes it stops the scorer, checks that
no thread of ours is left, and exits 0 (3 if something was left behind). The tests
kill it -9 to play a crash.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any


def main() -> None:
    url, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
    lock_period, lease = float(sys.argv[4]), float(sys.argv[5])
    # stdout carries the protocol alone: bittensor 9/10 log to whatever sys.stdout is
    # when they are imported, so they get stderr.
    protocol, sys.stdout = sys.stdout, sys.stderr

    from organic_scoring import OrganicScoringBase
    from organic_scoring.organic_queue import RedisOrganicQueue

    scored = open(out, "a", buffering=1)  # noqa: SIM115 - closed below, after the scorer

    class Scorer(OrganicScoringBase):
        async def _on_organic_entry(self, synapse: Any) -> Any:
            await self._organic_queue.aadd(synapse)
            return synapse

        async def _query_miners(self, sample: Any) -> Any:
            await asyncio.sleep(0.02)
            return {0: sample}

        async def _generate_rewards(
            self, sample: Any, responses: Any, reference: Any = None
        ) -> Any:
            return {0: 1.0}

        async def _set_weights(self, rewards: Any) -> None:
            return None

        async def _log_results(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            if logs["is_organic_sample"]:
                scored.write(json.dumps(kwargs["sample"]) + "\n")
            return logs

    queue = RedisOrganicQueue(url, name=name, lock_period=lock_period, lease=lease)
    scorer = Scorer(organic_queue=queue, trigger_frequency=0.01)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    scorer.start()
    print("ready", file=protocol, flush=True)
    active = False
    while not stop.wait(0.01):
        now = scorer.stats.active_scorer
        if now != active:
            active = now
            print(json.dumps({"active": now, "at": time.time()}), file=protocol, flush=True)
    scorer.stop()
    queue.close()
    scored.close()
    left = [t.name for t in threading.enumerate() if t.name.startswith("organic-scoring")]
    sys.exit(3 if left else 0)


if __name__ == "__main__":
    main()
