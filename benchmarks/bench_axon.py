"""Organic requests per second through a real axon: the library's intake against a bare handler.

One bittensor 9/10 axon on 127.0.0.1 serves two synapse types with the same fields:

* ``OursBench`` goes through :func:`organic_scoring.axon.attach_axon`: the
  library's forward adapter around a scorer whose ``_on_organic_entry`` adds the
  request to its organic queue, and its verify adapter (a signed-request check,
  then the axon's own signature and nonce check);
* ``BareBench`` is ``axon.attach(forward_fn=...)`` with a plain function that adds
  the request to an ``OrganicQueue`` too, under the axon's default verification.

Every request is a real signed dendrite request over HTTP. Two loads: one request
at a time, and several dendrites each sending back to back (one dendrite per
worker, since a dendrite's nonces must reach the axon in order). Ours and bare
alternate round by round; each side keeps its best round. ``ratio`` is
``ours_rps / bare_rps``: 1.0 means the intake costs nothing measurable, below 1
means slower.

Run ``python -m benchmarks.bench_axon`` for the table. On bittensor 11, which has no
axon, :func:`run` returns no rows.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from unittest import mock

import httpx

from organic_scoring import OrganicScoringBase
from organic_scoring._compat import HAS_AXON, axon_class, dendrite_class, synapse_class
from organic_scoring.axon import attach_axon
from organic_scoring.demo._loopback import free_port
from organic_scoring.intake import IntakeSettings
from organic_scoring.organic_queue import OrganicQueue
from organic_scoring.wallet import throwaway_wallet as make_wallet

WORKERS = 8
"""Dendrites sending at once in the concurrent load."""

_START_TIMEOUT = 10.0

if HAS_AXON:
    _Synapse: Any = synapse_class()

    class OursBench(_Synapse):  # type: ignore[misc,valid-type]
        """The request type served through the library's intake."""

        prompt: str = ""
        completion: str = ""
        required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)

    class BareBench(_Synapse):  # type: ignore[misc,valid-type]
        """The same request, served by a bare handler."""

        prompt: str = ""
        completion: str = ""
        required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)


class _Intake(OrganicScoringBase):
    """Queues each organic request; the scoring hooks are never run here."""

    async def _on_organic_entry(self, synapse: OursBench) -> OursBench:
        synapse.completion = synapse.prompt
        self._organic_queue.add(synapse.prompt)
        return synapse

    async def _query_miners(self, sample: Any) -> Any:
        return {}

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {}

    async def _set_weights(self, rewards: Any) -> None:
        return None


@contextmanager
def _serving(wallet: Any, setup: Callable[[Any], None]) -> Iterator[Any]:
    """A started axon on 127.0.0.1 with ``setup(axon)`` applied; stopped and joined after."""
    axon = axon_class()(wallet=wallet, ip="127.0.0.1", external_ip="127.0.0.1", port=free_port())
    axon.fast_config.host = "127.0.0.1"  # bittensor binds 0.0.0.0 otherwise
    setup(axon)
    before = set(threading.enumerate())
    axon.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not axon.fast_server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark axon did not start")
            time.sleep(0.005)
        yield axon
    finally:
        axon.stop()
        for thread in set(threading.enumerate()) - before:
            if thread.name.endswith(("(_wrapper_run)", "(run)")):
                thread.join(_START_TIMEOUT)
        axon.thread_pool.shutdown(wait=True)


REFUSAL_GOAL = 0.3
"""An outsider's refusal may cost at most this share of a valid request."""


def _dendrites(wallet: Any, n: int) -> list[Any]:
    # A dendrite asks a web service for its external IP when built; not here.
    with mock.patch("bittensor.utils.networking.get_external_ip", return_value="127.0.0.1"):
        return [dendrite_class()(wallet=wallet) for _ in range(n)]


async def _send(dendrites: list[Any], info: Any, synapse_type: type[Any], each: int) -> float:
    """Each dendrite sends ``each`` requests back to back, all at once; requests/second."""

    async def worker(dendrite: Any) -> None:
        for i in range(each):
            reply = await dendrite.forward(
                axons=info, synapse=synapse_type(prompt=f"p{i}"), timeout=30, deserialize=False
            )
            if reply.dendrite.status_code != 200:
                raise RuntimeError(
                    f"{synapse_type.__name__} request failed: {reply.dendrite.status_code} "
                    f"{reply.dendrite.status_message}"
                )

    start = time.perf_counter()
    await asyncio.gather(*(worker(d) for d in dendrites))
    return len(dendrites) * each / (time.perf_counter() - start)


async def _measure(dendrites: list[Any], info: Any, each: int, rounds: int) -> tuple[float, float]:
    """Best requests/second of ours and of bare over alternating rounds."""
    try:
        # One request of each kind first, so both paths are warm.
        await _send(dendrites[:1], info, OursBench, 1)
        await _send(dendrites[:1], info, BareBench, 1)
        ours = bare = 0.0
        for _ in range(rounds):
            ours = max(ours, await _send(dendrites, info, OursBench, each))
            bare = max(bare, await _send(dendrites, info, BareBench, each))
        return ours, bare
    finally:
        for dendrite in dendrites:
            await dendrite.aclose_session()


def _signed(dendrite: Any, info: Any, n: int) -> list[tuple[dict[str, str], Any]]:
    """``n`` requests signed by ``dendrite`` (headers, JSON body), each a new nonce."""
    signed = []
    for i in range(n):
        synapse = dendrite.preprocess_synapse_for_request(info, OursBench(prompt=f"r{i}"), 30)
        signed.append((synapse.to_headers(), synapse.model_dump()))
    return signed


async def _cost(app: Any, requests: list[tuple[dict[str, str], Any]], status: int) -> float:
    """CPU seconds per request for ``app`` to answer each of ``requests`` in-process."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        start = time.process_time()
        for headers, body in requests:
            response = await client.post("/OursBench", headers=headers, json=body)
            if response.status_code != status:
                raise RuntimeError(f"expected {status}, got {response.status_code}")
        return (time.process_time() - start) / len(requests)


def _refusal_row(axon: Any, client: Any, outsider: Any, n: int) -> dict[str, Any]:
    """An outsider's validly signed request refused (403) against a valid one (200),
    each answered by the axon's app in-process: CPU time per request, and their ratio."""
    insider_dendrite, outsider_dendrite = _dendrites(client, 1)[0], _dendrites(outsider, 1)[0]
    info = axon.info()
    valid = _signed(insider_dendrite, info, n)
    refused = _signed(outsider_dendrite, info, n)
    refused_cost = asyncio.run(_cost(axon.app, refused, 403))
    valid_cost = asyncio.run(_cost(axon.app, valid, 200))
    return {
        "name": "outsider refused vs valid, in-process (CPU per request)",
        "ours_rps": 1 / refused_cost,
        "bare_rps": 1 / valid_cost,
        "ratio": refused_cost / valid_cost,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure both loads; one row each, or none on bittensor 11 (no axon).

    Each row holds ``name``, ``ours_rps`` and ``bare_rps`` (requests per second,
    best round) and ``ratio`` (ours / bare). ``quick`` sends a few dozen requests,
    for smoke tests.
    """
    if not HAS_AXON:
        return []
    sequential, per_worker, rounds = (12, 3, 1) if quick else (300, 40, 3)
    bare_queue = OrganicQueue()

    def bare(synapse: BareBench) -> BareBench:
        synapse.completion = synapse.prompt
        bare_queue.add(synapse.prompt)
        return synapse

    # bittensor reads the annotations unevaluated; give it the classes, not strings.
    bare.__annotations__ = {"synapse": BareBench, "return": BareBench}

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        # bittensor 9/10 read model_fields on a pydantic instance (deprecated in 2.11).
        warnings.filterwarnings(
            "ignore", message="Accessing the 'model_fields' attribute", category=DeprecationWarning
        )
        server, client = make_wallet(directory, "server"), make_wallet(directory, "client")
        outsider = make_wallet(directory, "outsider")

        def setup(axon: Any) -> None:
            # allowed_skew=0: one host, one clock, so no settling window after the start.
            allowed = [client.hotkey.ss58_address]
            attach_axon(
                _Intake(), axon, allowed_hotkeys=allowed, settings=IntakeSettings(allowed_skew=0)
            )
            axon.attach(forward_fn=bare)

        with _serving(server, setup) as axon:
            info = axon.info()
            loads = (("sequential", 1, sequential), (f"concurrent x{WORKERS}", WORKERS, per_worker))
            for name, workers, each in loads:
                # Held here so the dendrites are collected outside the event loop: their
                # __del__ warns inside a running one.
                dendrites = _dendrites(client, workers)
                ours, bare_rps = asyncio.run(_measure(dendrites, info, each, rounds))
                del dendrites
                rows.append(
                    {"name": name, "ours_rps": ours, "bare_rps": bare_rps, "ratio": ours / bare_rps}
                )
            rows.append(_refusal_row(axon, client, outsider, 20 if quick else 300))
    return rows


def main() -> None:
    """Print the benchmark as a table."""
    rows = run(quick=False)
    if not rows:
        print("bench_axon: bittensor 11 has no axon; nothing to measure (see bench_http).")
        return
    print(f"{'load':<16}{'ours (req/s)':>14}{'bare (req/s)':>14}{'ratio':>8}")
    for row in rows[:-1]:
        print(
            f"{row['name']:<16}{row['ours_rps']:>14.0f}{row['bare_rps']:>14.0f}{row['ratio']:>8.2f}"
        )
    refusal = rows[-1]
    goal = "met" if refusal["ratio"] <= REFUSAL_GOAL else "NOT met"
    print(
        f"{refusal['name']}: refused {1e3 / refusal['ours_rps']:.2f} ms, valid "
        f"{1e3 / refusal['bare_rps']:.2f} ms, ratio {refusal['ratio']:.2f} "
        f"(goal <= {REFUSAL_GOAL}: {goal})"
    )


if __name__ == "__main__":
    main()
