"""A process that keeps a scorer lease lock, for the failover tests.

``python -m support.lease_workers URL KEY PERIOD`` connects, prints ``ready``, keeps
the lock, and prints one JSON line ``{"active": bool, "at": unix time}`` at every
change. It releases the lock and exits when stdin is closed; the tests kill it -9
to play a crash.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    url, key, period = sys.argv[1], sys.argv[2], float(sys.argv[3])

    from organic_scoring.organic_queue._lock import LeaseKeeper, LeaseLock
    from organic_scoring.organic_queue._redis_link import RedisLink

    def report(active: bool) -> None:
        print(json.dumps({"active": active, "at": time.time()}), flush=True)

    link = RedisLink.from_url(url, "lease worker", timeout=1.0)
    keeper = LeaseKeeper(LeaseLock(link, key, period=period), on_change=report)
    print("ready", flush=True)
    keeper.start()
    sys.stdin.read()
    keeper.stop()
    link.close()


if __name__ == "__main__":
    main()
