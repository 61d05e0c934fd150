"""Per-caller quotas: a token bucket per canonical hotkey, in this process or in Redis."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

from organic_scoring.organic_queue._base import check_count

__all__ = ["Quota"]

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, now (ms). Returns the wait in ms
# (0: taken). The intake's clock, as old servers refuse TIME before a write in scripts.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


class Quota:
    """Holds each caller to its share: ``rate`` requests a second on average, in bursts
    of up to ``burst``, per canonical hotkey (see ``docs/intake.md``).

    Args:
        rate: Requests a second each hotkey may send on average; more than 0.
        burst: Requests a hotkey may send at once after a quiet spell; at least 1.
        redis: A redis-py client to keep the buckets in, shared by every intake
            process of a fleet; None keeps them in this process.
        namespace: Prefix of the Redis keys.
        max_callers: Buckets kept in this process; past it the least recently used
            goes first (a caller that quiet has usually refilled its bucket anyway).

    Raises:
        ValueError: A setting is out of range (the message names it).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        redis: Any = None,
        namespace: str = "organic-scoring",
        max_callers: int = 100_000,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ValueError(f"rate must be a number of requests a second > 0, got {rate!r}")
        if isinstance(rate, float) and not math.isfinite(rate):
            raise ValueError(f"rate must be finite, got {rate!r}")
        check_count("burst", burst)
        if max_callers < 1:
            raise ValueError(f"max_callers must be >= 1, got {max_callers!r}")
        self.rate = float(rate)
        self.burst = burst
        self._redis = redis
        self._namespace = namespace
        self._script: Any = None if redis is None else redis.register_script(_TAKE)
        self._max = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def blocking(self) -> bool:
        """Whether :meth:`take` is a network round trip (Redis): called off the loop."""
        return self._redis is not None

    def take(self, hotkey: str) -> float:
        """Spend one request of ``hotkey``'s share: 0.0 when it may go ahead, else the
        seconds until it may."""
        if self._script is not None:
            key = f"{self._namespace}:quota:{hotkey}"
            now_ms = int(time.time() * 1000)
            wait_ms = self._script(keys=[key], args=[self.rate, self.burst, now_ms])
            return float(wait_ms) / 1000
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.pop(hotkey, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[hotkey] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return wait
