"""The load-and-fault scenario behind ``test_load.py``: chaos on every side of the loop.

Several clients, each with its own wallet, send bursts of concurrent signed requests
through the intake of the installed bittensor (an axon and dendrites on 9/10, the
signed-HTTP app and :class:`~organic_scoring.http.OrganicClient` on 11). The scorer
behind it has hooks that, drawn from a seeded random, raise, hang past their stage
timeout or are slow, and it is stopped and restarted several times while the traffic
keeps coming, each time with iterations hanging that ``stop`` has to cancel.

Everything the scenario observes is returned in an :class:`Outcome` for the test to
check against ``scorer.stats``: the answers the clients got, every failure the error
hook saw, the largest queue, the most sample objects alive at once.

Nothing here asserts on time: waits are bounded by :data:`WAIT` and only fail when
something is stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import random
import threading
import time
import tracemalloc
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import organic_scoring
from organic_scoring import ANY_HOTKEY, OrganicScoringBase
from organic_scoring._compat import HAS_AXON
from organic_scoring.intake import IntakeSettings
from organic_scoring.organic_queue import OrganicQueueBase
from organic_scoring.synth_dataset import SynthDatasetBase
from support.axons import offline_dendrite
from support.loopback import make_wallet
from support.waiting import until

WAIT = 60.0
"""Upper bound for any wait in the scenario; reached only when something is stuck."""

QUEUE_BOUND = 20
"""``max_size`` of the organic queue: small, so that bursts overflow it."""

CONCURRENCY = 4
"""``max_concurrent_iterations`` of the scorer."""

STAGE_TIMEOUT = 0.05
"""The timeout of the query, weights and log stages (and of the error hook)."""

REFERENCE_TIMEOUT = 30.0
"""The reference stage's timeout: long, so a hang there lasts until ``stop`` cancels it."""

STOP_TIMEOUT = 0.1
"""What ``stop`` gives in-flight iterations before cancelling them."""

KEPT_FAILURES = 32
"""How many failed iterations (with their samples) ``recent_failures`` keeps."""

CLIENT_TIMEOUT = 60.0
"""The clients' request timeout: far beyond any answer, so no client gives up on a
request the intake may still accept."""

KEEP_ALIVE = 2 * CLIENT_TIMEOUT
"""How long the servers keep an idle connection open. uvicorn's default, 5 s, is
shorter than a burst can take on a loaded machine, and a client reusing a connection
just as the server closes it gets no answer at all."""

_OURS = str(Path(organic_scoring.__file__).parent)
_LOG_PREFIX = "organic_scoring: "


@dataclass(frozen=True)
class Size:
    """How big one run of the scenario is."""

    clients: int
    """Clients, each with its own wallet."""
    burst: int
    """Concurrent requests per burst of one client."""
    cycles: int
    """Forced stop-and-restart cycles, at least."""
    running: float
    """Seconds the scorer runs in each cycle before it is stopped."""
    duration: float = 0.0
    """Seconds to go on cycling for, after the first ``cycles``."""
    trace_memory: bool = False
    """Trace the memory our package allocates (slows everything down several times)."""


QUICK = Size(clients=3, burst=6, cycles=3, running=0.3)
SLOW = Size(clients=4, burst=8, cycles=5, running=1.5, duration=60.0, trace_memory=True)


# -- samples -------------------------------------------------------------------------

_live: weakref.WeakValueDictionary[int, Record] = weakref.WeakValueDictionary()
_numbers = itertools.count()
_live_lock = threading.Lock()


class Record(BaseModel):
    """What the handler queues for one organic request: who asked, and what.

    Every instance, made by the handler or loaded back by a SQLite queue, is tracked
    weakly, so the scenario can count how many are alive (:func:`live_records`).
    """

    hotkey: str
    prompt: str

    def model_post_init(self, context: Any, /) -> None:
        with _live_lock:
            _live[next(_numbers)] = self


def live_records() -> int:
    """How many :class:`Record` objects survive a full garbage collection."""
    gc.collect()
    with _live_lock:
        return len(_live)


def our_memory() -> int:
    """Bytes allocated by the code of ``organic_scoring`` and still alive (tracemalloc)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, str(Path(_OURS, "*")))]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


@contextlib.contextmanager
def library_logs_not_kept() -> Iterator[None]:
    """Keep the root logger's handlers from holding on to the library's log records.

    pytest's capture handlers keep every record of a test, and a record logged with
    its exception (a handler that raised, say) holds that exception's frames and what
    they reference, memory our code allocated. :func:`our_memory` is about what the
    library keeps, so while it is measured the library's records are not kept.
    """

    def not_ours(record: logging.LogRecord) -> bool:
        ours = record.name.startswith("organic_scoring") or _LOG_PREFIX in str(record.msg)
        return not ours

    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(not_ours)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(not_ours)


class Numbers(SynthDatasetBase):
    """A synthetic dataset, for the triggers that find the organic queue empty."""

    def __init__(self) -> None:
        self._n = 0

    def sample(self) -> Any:
        self._n += 1
        return {"synthetic": self._n}


# -- the chaotic scorer --------------------------------------------------------------

BOOM = "boom"
"""A prompt the handler refuses by raising, before it queues anything (a 500)."""


async def _forever() -> None:
    await asyncio.Event().wait()


class ChaosScorer(OrganicScoringBase):
    """A scorer whose hooks misbehave at random, counting what it sees.

    While :attr:`chaos` is on, each of ``_query_miners``, ``_set_weights`` and
    ``_log_results`` raises, hangs past its stage timeout, or is slow (but within it)
    now and then; ``_generate_rewards`` (a plain function) and ``_generate_reference``
    raise now and then; ``_on_iteration_error`` counts the failure and then sometimes
    hangs itself, or raises (for synthetic samples). With :attr:`hang_organic` on, the
    reference of every organic sample hangs until cancelled, so ``stop`` finds
    iterations to cancel.
    """

    def __init__(self, seed: int, **kwargs: Any) -> None:
        self.random = random.Random(seed)
        self.chaos = True
        self.hang_organic = False
        self.hanging = 0
        """Organic iterations hanging in their reference right now."""
        self.added = 0
        """Samples the handler added to the queue."""
        self.ticks = 0
        """Iterations that reached ``_query_miners``: proof the loop is moving."""
        self.reported_organic = 0
        """Failures of organic iterations that ``_on_iteration_error`` was told of."""
        self.reported = Counter[str]()
        """Every reported failure, by stage and exception type."""
        self.cancelled = 0
        """Iterations reported as cancelled (by ``stop``)."""
        self.max_queue = 0
        """The largest queue size seen right after an add."""
        super().__init__(**kwargs)
        self._organic_queue.add_listener(self._after_add)

    def _after_add(self) -> None:
        self.max_queue = max(self.max_queue, self._organic_queue.size)

    def accept(self, hotkey: str, prompt: str) -> None:
        """What the handler does with a request: refuse a :data:`BOOM`, queue the rest."""
        if prompt == BOOM:
            raise RuntimeError("the organic handler failed before queueing anything")
        self._organic_queue.add(Record(hotkey=hotkey, prompt=prompt))
        self.added += 1

    def _draw(self) -> str:
        """``"raise"``, ``"hang"``, ``"slow"`` or ``"fine"``, while chaos is on."""
        if not self.chaos:
            return "fine"
        roll = self.random.random()
        if roll < 0.05:
            return "raise"
        if roll < 0.08:
            return "hang"
        if roll < 0.25:
            return "slow"
        return "fine"

    async def _misbehave(self, stage: str, forced: str | None = None) -> None:
        what = forced or self._draw()
        if what == "raise":
            raise RuntimeError(f"chaos in {stage}")
        if what == "hang":
            await _forever()  # until the stage's timeout (or stop) cancels it
        if what == "slow":
            await asyncio.sleep(self.random.uniform(0.002, STAGE_TIMEOUT / 3))

    async def _query_miners(self, sample: Any) -> Any:
        self.ticks += 1
        if self.hang_organic and isinstance(sample, Record):
            return {0: 1.0}  # the reference will hang: let nothing else end this early
        await self._misbehave("query")
        return {0: 1.0, 1: 0.5}

    async def _generate_reference(self, sample: Any) -> Any:
        if self.hang_organic and isinstance(sample, Record):
            self.hanging += 1
            try:
                await _forever()
            finally:
                self.hanging -= 1
        what = self._draw()
        await self._misbehave("reference", "fine" if what == "hang" else what)
        return "reference"

    def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        if self._draw() == "raise":
            raise ValueError("chaos in rewards")
        return dict(responses)

    async def _set_weights(self, rewards: Any) -> None:
        await self._misbehave("weights")

    async def _log_results(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        await self._misbehave("log")
        return logs

    async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
        # Count first, before anything can interrupt this hook.
        if isinstance(sample, Record):
            self.reported_organic += 1
        if isinstance(exc, asyncio.CancelledError):
            self.cancelled += 1
        self.reported[f"{stage}:{type(exc).__name__}"] += 1
        what = self._draw()
        if what == "hang":
            await self._misbehave("error hook", what)  # the library logs a StageTimeout
        if what == "raise" and not isinstance(sample, Record):
            # The library logs what this raises with its traceback, whose frames hold
            # the sample; pytest keeps every log record of a test, so an organic one
            # would stay alive and blur the count of live records.
            await self._misbehave("error hook", what)


def scorer_settings(queue: OrganicQueueBase) -> dict[str, Any]:
    """The loop settings of the scenario's scorer, around ``queue``."""
    return dict(
        synth_dataset=Numbers(),
        trigger_frequency=0.05,
        trigger_frequency_min=0.01,
        trigger_scaling_factor=400,
        organic_queue=queue,
        max_concurrent_iterations=CONCURRENCY,
        query_timeout=STAGE_TIMEOUT,
        reference_timeout=REFERENCE_TIMEOUT,
        rewards_timeout=STAGE_TIMEOUT,
        weights_timeout=STAGE_TIMEOUT,
        log_timeout=STAGE_TIMEOUT,
        backoff_initial=0.005,
        backoff_max=0.1,
    )


# -- intakes -------------------------------------------------------------------------

Send = Callable[[str], Awaitable[tuple[int, str]]]
"""Sends one organic request with this prompt; returns the answer's HTTP status and
what came with it (the status message or the start of the body)."""


@dataclass
class Intake:
    """A scorer served on 127.0.0.1, and how each client reaches it."""

    scorer: ChaosScorer
    clients: Callable[[], contextlib.AbstractAsyncContextManager[list[Send]]]
    """Opens one signing sender per client wallet, inside the running event loop."""
    refusals: frozenset[int]
    """Statuses the intake may answer besides 200 and 500 without anything being wrong."""


if HAS_AXON:
    from support.axons import Ask, serve_scorer

    class AxonChaosScorer(ChaosScorer):
        """The chaotic scorer behind a bittensor 9/10 axon."""

        async def _on_organic_entry(self, synapse: Ask) -> Ask:
            self.accept(synapse.dendrite.hotkey, synapse.prompt)
            synapse.completion = "queued"
            return synapse

    @contextlib.contextmanager
    def axon_intake(
        server: Any, wallets: Sequence[Any], queue: OrganicQueueBase, seed: int
    ) -> Iterator[Intake]:
        """The scorer behind a real axon; each client a dendrite of its own wallet."""

        def build(axon: Any) -> ChaosScorer:
            axon.fast_config.timeout_keep_alive = KEEP_ALIVE  # read when serving starts
            return AxonChaosScorer(seed, axon=axon, **scorer_settings(queue))

        with serve_scorer(server, build) as (axon, scorer):

            @contextlib.asynccontextmanager
            async def clients() -> AsyncIterator[list[Send]]:
                dendrites = [offline_dendrite(wallet) for wallet in wallets]

                def sender(dendrite: Any) -> Send:
                    async def send(prompt: str) -> tuple[int, str]:
                        reply = await dendrite.forward(
                            axons=axon.info(),
                            synapse=Ask(prompt=prompt),
                            timeout=CLIENT_TIMEOUT,
                            deserialize=False,
                        )
                        return int(reply.dendrite.status_code), str(reply.dendrite.status_message)

                    return send

                try:
                    yield [sender(dendrite) for dendrite in dendrites]
                finally:
                    for dendrite in dendrites:
                        await dendrite.aclose_session()
                        # Dendrite.__del__ would call close_session() again inside a
                        # running loop, which only warns; nothing is left to close.
                        dendrite.close_session = lambda *args, **kwargs: None

            # Concurrent requests from one dendrite carry nonces that may reach the
            # axon out of order; bittensor refuses the older ones with a 401.
            yield Intake(scorer, clients, refusals=frozenset({401}))


class LoadPrompt(BaseModel):
    """The request model of the signed-HTTP intake in the scenario."""

    prompt: str


class LoadAnswer(BaseModel):
    """What the signed-HTTP handler answers."""

    status: str


class CopyingNonceStore:
    """bittensor's in-memory nonce store, keeping its own copy of each hotkey string.

    bittensor keeps every nonce, with the caller's hotkey, for its replay window: as
    many as arrive in a minute. The hotkey string is the one the intake decoded from
    the headers, so tracemalloc would count it as memory of ours; a copy made here
    keeps that memory where it belongs.
    """

    def __init__(self) -> None:
        import bittensor as bt

        self._store = bt.http_auth.InMemoryNonceStore()
        self.retention: float = self._store.retention

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        """Record the pair; False if it was seen before."""
        seen: bool = self._store.check_and_store(hotkey_ss58.encode().decode(), nonce_ns)
        return seen


class HttpChaosScorer(ChaosScorer):
    """The chaotic scorer behind the signed-HTTP intake (bittensor 11)."""

    async def _on_organic_entry(self, request: LoadPrompt) -> LoadAnswer:
        from organic_scoring.http import caller_hotkey

        self.accept(caller_hotkey() or "", request.prompt)
        return LoadAnswer(status="queued")


@contextlib.contextmanager
def http_intake(
    server: Any, wallets: Sequence[Any], queue: OrganicQueueBase, seed: int
) -> Iterator[Intake]:
    """The scorer behind ``create_app`` served by uvicorn; each client an OrganicClient."""
    from organic_scoring.http import OrganicClient, create_app, serve_in_thread

    scorer = HttpChaosScorer(seed, **scorer_settings(queue))
    validator = str(server.hotkey.ss58_address)
    app = create_app(
        scorer,
        hotkey_ss58=validator,
        nonce_store=CopyingNonceStore(),
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    with serve_in_thread(app, host="127.0.0.1", port=0, timeout_keep_alive=KEEP_ALIVE) as served:
        url = served.url + "/organic"

        @contextlib.asynccontextmanager
        async def clients() -> AsyncIterator[list[Send]]:
            async with contextlib.AsyncExitStack() as stack:
                opened = [
                    await stack.enter_async_context(
                        OrganicClient(wallet, url, validator, timeout=CLIENT_TIMEOUT)
                    )
                    for wallet in wallets
                ]

                def sender(client: Any) -> Send:
                    async def send(prompt: str) -> tuple[int, str]:
                        response = await client.send(LoadPrompt(prompt=prompt))
                        return int(response.status_code), response.text[:200]

                    return send

                yield [sender(client) for client in opened]

        try:
            yield Intake(scorer, clients, refusals=frozenset())
        finally:
            scorer.stop()


def open_intake(
    directory: Path, size: Size, queue: OrganicQueueBase, seed: int
) -> contextlib.AbstractContextManager[Intake]:
    """The installed bittensor's intake, with ``size.clients`` client wallets."""
    server = make_wallet(directory, "validator")
    wallets = [make_wallet(directory, f"client{i}") for i in range(size.clients)]
    if HAS_AXON:
        return axon_intake(server, wallets, queue, seed)
    return http_intake(server, wallets, queue, seed)


# -- the scenario --------------------------------------------------------------------


@dataclass
class Outcome:
    """What the scenario saw from the outside; the test checks it against ``stats``."""

    statuses: Counter[int] = field(default_factory=Counter)
    """The status of every answer the clients got."""
    other_answers: Counter[str] = field(default_factory=Counter)
    """Every answer but a 200, by status and what came with it."""
    sent: int = 0
    """Requests the clients sent."""
    live_records: list[int] = field(default_factory=list)
    """Record objects alive (after a full collection) at each checkpoint."""
    cancelled_per_stop: list[int] = field(default_factory=list)
    """Iterations ``stop`` cancelled (and reported) at each forced stop."""
    leftovers: list[str] = field(default_factory=list)
    """Threads or tasks of ours found alive after a ``stop``."""
    memory: list[int] = field(default_factory=list)
    """With ``trace_memory``: :func:`our_memory` after the first cycle and at the end."""


def queue_dropped(queue: OrganicQueueBase) -> int:
    """The queue's count of samples dropped by its bound (both ready-made queues keep one)."""
    dropped: int = queue.counters().dropped  # type: ignore[attr-defined]
    return dropped


def leftovers() -> list[str]:
    """Threads of the scoring loop, and tasks on this loop running our code, still alive."""
    found = [t.name for t in threading.enumerate() if t.name == "organic-scoring"]
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and code.co_filename.startswith(_OURS):
            found.append(f"task {task.get_name()} running {code.co_qualname}")
    return found


class _Scenario:
    """One run: the scorer's lifecycle under traffic, and what is seen of it.

    The scorer is started alternately on a thread of its own (``start()`` from a
    thread without an event loop, stopped with ``stop()``) and as a task of the
    clients' event loop (``start()`` from inside it, stopped with ``aclose()``).
    """

    def __init__(self, scorer: ChaosScorer, size: Size) -> None:
        self.scorer = scorer
        self.size = size
        self.outcome = Outcome()
        self.on_a_thread = True

    async def start(self) -> None:
        if self.on_a_thread:
            await asyncio.to_thread(self.scorer.start)
        else:
            self.scorer.start()

    async def stop(self, timeout: float) -> None:
        if self.on_a_thread:
            await asyncio.to_thread(self.scorer.stop, timeout)
        else:
            await self.scorer.aclose(timeout)
        self.outcome.leftovers += leftovers()
        if self.scorer.is_running:
            self.outcome.leftovers.append("the scorer is running after stop")

    async def run_for_a_while(self) -> None:
        """Let the scorer run under chaos, at least until it has made some progress."""
        ticks = self.scorer.ticks
        await asyncio.sleep(self.size.running)
        await until(lambda: self.scorer.ticks > ticks + 3, "the loop to make progress", WAIT)

    async def stop_while_hanging(self) -> None:
        """Make organic iterations hang, and stop once one does: it must be cancelled."""
        scorer = self.scorer
        cancelled = scorer.cancelled
        scorer.hang_organic = True
        await until(lambda: scorer.hanging > 0, "an organic iteration to hang", WAIT)
        await self.stop(STOP_TIMEOUT)
        scorer.hang_organic = False
        self.outcome.cancelled_per_stop.append(scorer.cancelled - cancelled)

    async def stay_down(self, until_a_drop: bool) -> None:
        """Keep the scorer down while the intake queues a burst and, if asked, until
        the full queue drops a sample."""
        scorer, queue = self.scorer, self.scorer.organic_queue
        added, dropped = scorer.added, queue_dropped(queue)

        def enough() -> bool:
            if scorer.added <= added + self.size.burst:
                return False
            return not until_a_drop or queue_dropped(queue) > dropped

        await until(enough, "the intake to queue traffic while the scorer is down", WAIT)

    async def run(self, senders: list[Send], seed: int) -> None:
        """Traffic from every sender; the cycles; then the calm end, at rest."""
        scorer, size, outcome = self.scorer, self.size, self.outcome
        done = asyncio.Event()
        clients = [
            asyncio.ensure_future(
                _client(send, random.Random(seed * 1000 + i), size.burst, outcome, done)
            )
            for i, send in enumerate(senders)
        ]
        try:
            await self.start()
            deadline = time.monotonic() + size.duration
            for cycle in itertools.count():
                if cycle >= size.cycles and time.monotonic() >= deadline:
                    break
                await self.run_for_a_while()
                await self.stop_while_hanging()
                await self.stay_down(until_a_drop=cycle == 0)
                outcome.live_records.append(live_records())
                if size.trace_memory and cycle == 0:
                    outcome.memory.append(our_memory())  # after the warm-up
                self.on_a_thread = not self.on_a_thread
                await self.start()
            done.set()
            await asyncio.gather(*clients)
            scorer.chaos = False
            await until(lambda: scorer.organic_queue.size == 0, "the queue to drain", WAIT)
            outcome.live_records.append(live_records())
            await self.stop(timeout=WAIT)
        finally:
            done.set()
            await asyncio.gather(*clients, return_exceptions=True)
            await self.stop(STOP_TIMEOUT)


async def _client(
    send: Send, rng: random.Random, burst: int, outcome: Outcome, done: asyncio.Event
) -> None:
    """Send bursts of concurrent requests until ``done``; record every answer's status."""

    async def one(prompt: str) -> None:
        status, said = await send(prompt)
        outcome.statuses[status] += 1
        if status != 200:
            outcome.other_answers[f"{status} {said.split('#')[0]}"] += 1  # no error ids

    for n in range(1_000_000):  # a bound that is never reached: ``done`` ends it
        if done.is_set():
            return
        prompts = [BOOM if rng.random() < 0.04 else f"{n}.{i}" for i in range(burst)]
        outcome.sent += len(prompts)
        await asyncio.gather(*(one(prompt) for prompt in prompts))


async def run_scenario(intake: Intake, size: Size, seed: int) -> Outcome:
    """Drive the traffic, the chaos and the restarts; return what was seen.

    Run ``size.cycles`` cycles, and more until ``size.duration`` seconds have passed.
    Each cycle: let the scorer run under chaos for ``size.running`` seconds (and at
    least until it made progress); make every organic iteration hang and wait for
    one; ``stop(STOP_TIMEOUT)``, which must cancel it and report it; check nothing of
    ours is left running; keep the scorer down while the intake queues more (the
    first time until the full queue drops a sample); restart, the other way round.
    At the end the clients finish their bursts, the chaos stops, the queue drains,
    and the scorer is stopped, leaving intake and loop at rest.
    """
    scenario = _Scenario(intake.scorer, size)
    with contextlib.ExitStack() as stack:
        if size.trace_memory:
            stack.enter_context(library_logs_not_kept())
            if not tracemalloc.is_tracing():
                tracemalloc.start()
                stack.callback(tracemalloc.stop)
        async with intake.clients() as senders:
            await scenario.run(senders, seed)
        outcome = scenario.outcome
        outcome.live_records.append(live_records())
        if size.trace_memory:
            outcome.memory.append(our_memory())
    return outcome


def live_bound() -> int:
    """The most :class:`Record` objects that may be alive at once, whatever the traffic.

    Those in the queue, in flight, and kept by ``recent_failures``; doubled, because
    a kept failure's traceback can hold the frames, and so the samples, of another
    iteration or two, and the intake may be between making a record and queueing it.
    """
    return 2 * (QUEUE_BOUND + CONCURRENCY + KEPT_FAILURES)


MEMORY_GROWTH_BOUND = 512 * 1024
"""How much more memory our package may hold at the end than after the warm-up.

What legitimately grows is bounded by the configuration, not the traffic: the stats'
timing windows (512 values per stage) and ``recent_failures`` fill up, and the queue
holds at most :data:`QUEUE_BOUND` samples; together well under this.
"""


__all__ = [
    "BOOM",
    "CONCURRENCY",
    "KEPT_FAILURES",
    "MEMORY_GROWTH_BOUND",
    "QUEUE_BOUND",
    "QUICK",
    "SLOW",
    "ChaosScorer",
    "Intake",
    "Outcome",
    "Record",
    "Size",
    "live_bound",
    "live_records",
    "open_intake",
    "run_scenario",
]
