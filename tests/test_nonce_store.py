"""RedisNonceStore: replays refused across store objects (workers), expiry, outages."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from organic_scoring import _compat
from organic_scoring.errors import RedisUnavailable
from organic_scoring.intake import RedisNonceStore
from support.loopback import free_port, make_wallet
from support.redis_server import RedisServer
from support.waiting import wait_until

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def test_a_nonce_is_accepted_once(redis_url: str) -> None:
    with RedisNonceStore(redis_url) as store:
        assert store.check_and_store(HOTKEY, 1)
        assert not store.check_and_store(HOTKEY, 1)
        assert store.check_and_store(HOTKEY, 2)
        assert store.check_and_store("another-hotkey", 1)
        epistula = str(uuid.uuid4())
        assert store.check_and_store(HOTKEY, epistula)
        assert not store.check_and_store(HOTKEY, epistula)


def test_a_replay_to_another_worker_is_refused(redis_url: str) -> None:
    # Two store objects on one server stand for two intake workers (or hosts).
    with RedisNonceStore(redis_url) as first, RedisNonceStore(redis_url) as second:
        nonce = time.time_ns()
        assert first.check_and_store(HOTKEY, nonce)
        assert not second.check_and_store(HOTKEY, nonce)
        assert not first.check_and_store(HOTKEY, nonce)


def test_namespaces_keep_validators_apart(redis_url: str) -> None:
    with (
        RedisNonceStore(redis_url, namespace="a") as a,
        RedisNonceStore(redis_url, namespace="b") as b,
    ):
        assert a.check_and_store(HOTKEY, 5)
        assert b.check_and_store(HOTKEY, 5)


def test_nonces_are_forgotten_after_the_retention(redis_url: str) -> None:
    with RedisNonceStore(redis_url, retention=0.2) as store:
        assert store.retention == 0.2
        assert store.check_and_store(HOTKEY, 7)
        assert not store.check_and_store(HOTKEY, 7)
        wait_until(lambda: store.check_and_store(HOTKEY, 7), "the nonce to expire")


@pytest.mark.skipif(not _compat.HAS_HTTP_AUTH, reason="bt.http_auth is bittensor 11's")
def test_http_auth_refuses_a_replay_to_another_worker(redis_url: str, tmp_path: Path) -> None:
    import bittensor as bt

    client = make_wallet(tmp_path, "client")
    validator = make_wallet(tmp_path, "validator")
    body = b'{"text": "hello"}'
    receiver = validator.hotkey.ss58_address
    headers = bt.http_auth.sign(
        client.hotkey, method="POST", path="/organic", body=body, receiver_ss58=receiver
    )

    def verify(store: RedisNonceStore) -> object:
        return bt.http_auth.verify(
            headers, body, method="POST", path="/organic", self_hotkey_ss58=receiver,
            nonce_store=store,
        )  # fmt: skip

    with RedisNonceStore(redis_url) as first, RedisNonceStore(redis_url) as second:
        assert verify(first).hotkey_ss58 == client.hotkey.ss58_address
        with pytest.raises(bt.http_auth.ReplayedRequest):
            verify(second)


def test_an_unreachable_server_is_named() -> None:
    url = f"redis://:sekret@127.0.0.1:{free_port()}/3"
    with pytest.raises(RedisUnavailable, match=r"RedisNonceStore.*redis://:\*\*\*@127\.0\.0\.1"):
        RedisNonceStore(url)


def test_an_outage_raises_and_the_store_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        with RedisNonceStore(server.url) as store:
            assert store.check_and_store(HOTKEY, 1)
            server.kill()
            with pytest.raises(RedisUnavailable, match="cannot check a nonce"):
                store.check_and_store(HOTKEY, 2)
            server.start()
            assert not store.check_and_store(HOTKEY, 1)  # remembered across the restart
            assert store.check_and_store(HOTKEY, 2)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"retention": 0}, "retention"),
        ({"retention": float("nan")}, "retention"),
        ({"retention": "60"}, "retention"),
        ({"namespace": ""}, "namespace"),
        ({"url": "http://x"}, "url"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], words: str) -> None:
    url = kwargs.pop("url", "redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match=words):
        RedisNonceStore.from_url(url, **kwargs)  # type: ignore[arg-type]


def test_a_client_is_shared_and_checks_are_awaited_on_an_async_client(redis_url: str) -> None:
    import redis
    import redis.asyncio

    async def scenario(store: RedisNonceStore) -> None:
        assert await store.acheck_and_store(HOTKEY, 5)
        assert not await store.acheck_and_store(HOTKEY, 5)
        assert isinstance(store._link._aclients[asyncio.get_running_loop()][0], redis.asyncio.Redis)
        await store.aclose()

    with redis.Redis.from_url(redis_url) as client:
        store = RedisNonceStore(client)
        asyncio.run(scenario(store))
        assert not store.check_and_store(HOTKEY, 5)  # the sync client is the caller's, still open
        assert client.ping()


def test_bad_arguments_are_refused(redis_url: str) -> None:
    with RedisNonceStore(redis_url) as store:
        with pytest.raises(TypeError, match="nonce_ns"):
            store.check_and_store(HOTKEY, 1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="nonce_ns"):
            store.check_and_store(HOTKEY, True)
        with pytest.raises(TypeError, match="hotkey_ss58"):
            store.check_and_store(b"key", 1)  # type: ignore[arg-type]
