"""Per-caller quotas: a token bucket per hotkey, in this process and in a real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest

from organic_scoring.intake import Quota
from support.redis_server import RedisServer


def _exercise(quota: Quota) -> None:
    assert quota.take("a") == 0.0
    assert quota.take("a") == 0.0  # the burst
    wait = quota.take("a")
    assert 0 < wait <= 1 / quota.rate + 0.01  # the next one, in about 1/rate seconds
    assert quota.take("b") == 0.0  # another caller has its own bucket
    time.sleep(wait + 0.02)
    assert quota.take("a") == 0.0  # refilled after the wait it named


def test_a_quota_in_this_process() -> None:
    _exercise(Quota(rate=20, burst=2))


def test_a_quota_shared_through_redis(redis_server: RedisServer) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_server.url)
    try:
        first, second = Quota(rate=20, burst=2, redis=client), Quota(rate=20, burst=2, redis=client)
        assert first.blocking
        assert first.take("shared") == 0.0
        assert second.take("shared") == 0.0  # another process, the same bucket
        assert first.take("shared") > 0
        _exercise(Quota(rate=20, burst=2, redis=client, namespace="other"))
    finally:
        client.close()


def test_the_buckets_kept_in_a_process_are_bounded() -> None:
    quota = Quota(rate=1, burst=1, max_callers=3)
    for caller in "abcdef":
        quota.take(caller)
    assert len(quota._buckets) == 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate": 0, "burst": 1}, "rate"),
        ({"rate": float("inf"), "burst": 1}, "rate"),
        ({"rate": True, "burst": 1}, "rate"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "burst": 1.5}, "burst"),
        ({"rate": 1, "burst": 1, "max_callers": 0}, "max_callers"),
    ],
)
def test_bad_settings_name_themselves(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Quota(**kwargs)
