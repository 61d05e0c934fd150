"""A fleet on loopback: two intake worker processes and two scorer processes on one Redis.

Clients send bursts of signed requests to both workers and replay some of them to
the other worker, while one intake worker and the active scorer are killed -9 and
both are restarted (the scorer as the new standby). At rest, every request answered
200 has been scored (exactly once, apart from the redeliveries the queue counted),
every replay was refused, the standby took over, the accounting balances across the
fleet (short only by requests the kill cut off between storing and counting), and the
processes that were stopped cleanly left nothing running.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from organic_scoring.http import OrganicAuth
from organic_scoring.organic_queue import RedisOrganicQueue
from support.loopback import free_port, make_wallet
from support.processes import finish, read_line, spawn_module, stop
from support.scorers import Recorder
from support.waiting import WAIT, wait_until

NAME = "fleet"
LOCK_PERIOD, LEASE = 1.0, 1.5


class Load:
    """Clients sending numbered requests to the workers in turn, replaying every fifth
    to the other worker; what each got is kept.

    Each client sends ``before`` requests, goes on sending until :attr:`restarted` is
    set (through the crash and the restart), then sends ``after`` more.
    """

    def __init__(self, auth: OrganicAuth, urls: list[str], clients: int, before: int, after: int):
        self.auth = auth
        self.urls = urls
        self.before, self.after = before, after
        self.answers: dict[str, int | None] = {}  # request id -> status (None: no answer)
        self.replays: list[int | None] = []
        self.warmed = threading.Barrier(clients + 1)
        self.restarted = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(c,), name=f"load-{c}")
            for c in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(6 * WAIT)
            assert not thread.is_alive()

    def _client(self, client: int) -> None:
        with httpx.Client(timeout=5.0) as http:
            k = 0
            while k < self.before:
                self._send(http, client, k)
                k += 1
            self.warmed.wait(6 * WAIT)
            while not self.restarted.is_set():
                self._send(http, client, k)
                k += 1
            for _ in range(self.after):
                self._send(http, client, k)
                k += 1

    def _send(self, http: httpx.Client, client: int, k: int) -> None:
        request_id = f"{client}-{k}"
        target = k % 2
        body = {"id": request_id, "text": f"request {request_id}"}
        status: int | None = None
        request: httpx.Request | None = None
        try:
            response = http.post(self.urls[target], json=body, auth=self.auth)
            status, request = response.status_code, response.request
        except httpx.TransportError:
            time.sleep(0.02)  # the worker was killed or is restarting
        with self._lock:
            self.answers[request_id] = status
        if status == 200 and request is not None and k % 5 == 0:
            self._replay(http, request, self.urls[1 - target])
        if k % 10 == 9:
            time.sleep(0.05)  # between bursts

    def _replay(self, http: httpx.Client, request: httpx.Request, url: str) -> None:
        try:
            replayed: int | None = http.post(
                url, content=request.content, headers=dict(request.headers)
            ).status_code
        except httpx.TransportError:
            replayed = None
        with self._lock:
            self.replays.append(replayed)


def _intake(redis_url: str, port: int, hotkey: str) -> subprocess.Popen[str]:
    worker = spawn_module("support.fleet_intake", redis_url, NAME, port, hotkey)
    assert read_line(worker) == "ready"
    return worker


def _scorer(redis_url: str, out: Path) -> subprocess.Popen[str]:
    scorer = spawn_module("support.scorer_worker", redis_url, NAME, out, LOCK_PERIOD, LEASE)
    assert read_line(scorer) == "ready"
    return scorer


@pytest.mark.usefixtures("no_leaks")
def test_a_fleet_survives_kills_and_replays(redis_url: str, tmp_path: Path) -> None:
    validator, client = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "client")
    hotkey = validator.hotkey.ss58_address
    ports = [free_port(), free_port()]
    outs = [tmp_path / f"scorer-{n}.jsonl" for n in ("a", "b", "a-again")]
    processes: list[subprocess.Popen[str]] = []
    try:
        # The intake workers and the first scorer start together (each takes seconds to
        # import bittensor); the standby only once that scorer is active.
        intakes = [spawn_module("support.fleet_intake", redis_url, NAME, p, hotkey) for p in ports]
        processes += intakes
        active = spawn_module("support.scorer_worker", redis_url, NAME, outs[0], LOCK_PERIOD, LEASE)
        processes.append(active)
        for process in [*intakes, active]:
            assert read_line(process) == "ready"
        assert json.loads(read_line(active))["active"]
        standby = _scorer(redis_url, outs[1])
        processes.append(standby)

        auth = OrganicAuth(client, receiver=hotkey)
        urls = [f"http://127.0.0.1:{port}/organic" for port in ports]
        load = Load(auth, urls, clients=3, before=20, after=30)
        load.start()
        load.warmed.wait(6 * WAIT)  # mid-load: the clients keep sending through the crash
        intakes[0].kill()
        active.kill()
        killed_at = time.time()
        intakes[0].wait()
        restarted = _intake(redis_url, ports[0], hotkey)
        processes.append(restarted)
        load.restarted.set()
        took = json.loads(read_line(standby))
        assert took["active"]
        assert took["at"] - killed_at <= 2 * LOCK_PERIOD
        back = _scorer(redis_url, outs[2])  # the killed scorer, restarted: a standby now
        processes.append(back)
        load.join()

        with RedisOrganicQueue(redis_url, name=NAME) as queue:
            wait_until(
                lambda: (c := queue.counters()).size == 0 and c.leased == 0,
                "the fleet to score everything",
                6 * WAIT,
            )
            counters = queue.counters()
            unaccounted = Recorder(organic_queue=queue).stats.organic_unaccounted
        for worker in (standby, back, restarted, intakes[1]):
            finish(worker)  # exits 0 only if nothing of ours outlived its stop
    finally:
        stop(processes)

    answered = {rid for rid, status in load.answers.items() if status == 200}
    assert len(answered) >= 3 * (20 + 30) // 2, load.answers
    assert set(load.answers.values()) <= {200, None}  # None: sent while a worker was down
    scored = [
        json.loads(line)["id"]
        for out in outs
        if out.exists()
        for line in out.read_text().splitlines()
    ]
    assert answered <= set(scored)  # every 200 was scored (none failed, none dropped)
    assert len(scored) - len(set(scored)) <= counters.redelivered
    assert counters.dropped == 0
    assert counters.failed == 0
    assert counters.scored == counters.added >= len(answered)
    # Every 200 was counted as accepted before it was sent. Only a request cut off by
    # the kill between storing its sample and counting it (so never answered 200) can
    # leave the ledger one short: nothing is ever lost the other way.
    unanswered = sum(status is None for status in load.answers.values())
    assert counters.accepted >= len(answered)
    assert unaccounted == counters.accepted - counters.added
    assert -unanswered <= unaccounted <= 0
    answered_replays = [status for status in load.replays if status is not None]
    assert answered_replays
    assert all(status == 401 for status in answered_replays), load.replays
    print(
        f"\nfleet: {len(answered)} answered 200 of {len(load.answers)}, "
        f"{sum(s is None for s in load.answers.values())} unanswered (a worker was down), "
        f"{len(answered_replays)} replays refused, {counters.redelivered} redelivered, "
        f"{len(scored) - len(set(scored))} scored twice"
    )
