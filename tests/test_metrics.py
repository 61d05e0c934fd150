"""organic_scoring.metrics: scraped over real HTTP, parsed by prometheus_client, checked
against the scorer's own ``stats``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from organic_scoring import ANY_HOTKEY
from organic_scoring.errors import IterationError
from organic_scoring.http import serve_in_thread
from organic_scoring.intake import IntakeSettings
from organic_scoring.metrics import PrometheusMetrics, metrics_route, serve_metrics
from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase
from organic_scoring.synth_dataset import SynthDatasetBase
from organic_scoring.weights import ScoreBook
from support.axons import BITTENSOR_WARNINGS
from support.scorers import Letters, Recorder
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import TRANSPORTS, Job, intake, parity_scorer
from support.waiting import WAIT, wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")

LOOP_METRICS = {
    "organic_scoring_iterations": ("counter", {"source", "outcome"}),
    "organic_scoring_skipped_triggers": ("counter", set()),
    "organic_scoring_failures": ("counter", {"stage"}),
    "organic_scoring_stage_seconds": ("histogram", {"stage"}),
    "organic_scoring_queue_size": ("gauge", set()),
    "organic_scoring_organic_accepted": ("counter", set()),
    "organic_scoring_organic_handler_errors": ("counter", set()),
    "organic_scoring_organic_dropped": ("counter", set()),
    "organic_scoring_organic_unaccounted": ("gauge", set()),
    "organic_scoring_period_seconds": ("gauge", set()),
    "organic_scoring_in_flight": ("gauge", set()),
    "organic_scoring_oldest_iteration_seconds": ("gauge", set()),
    "organic_scoring_stuck_iterations": ("gauge", set()),
    "organic_scoring_active_scorer": ("gauge", set()),
    "organic_scoring_weight": ("gauge", {"uid"}),
}

# What the dashboard's quantiles are computed from: 10 µs hooks to 2 min miner queries.
STAGE_BUCKETS = (
    *(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005),
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
INTAKE_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    *(0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


class Script(SynthDatasetBase):
    """A synthetic dataset that plays a script: a sample, a failing one, or nothing."""

    def __init__(self, *steps: str) -> None:
        self.steps = list(steps)

    def sample(self) -> Any:
        step = self.steps.pop(0) if self.steps else "ok"
        return None if step == "none" else {"synthetic": step, "fail": step == "fail"}


class Flaky(Recorder):
    """Queries fail for samples marked ``fail``; the handler refuses ``bad`` requests."""

    async def _on_organic_entry(self, synapse: Any) -> Any:
        if synapse.get("bad"):
            raise ValueError("the handler refuses this one")
        return await super()._on_organic_entry(synapse)

    async def _query_miners(self, sample: Any) -> Any:
        if sample.get("fail"):
            raise RuntimeError("the miners are down")
        return await super()._query_miners(sample)

    async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
        self.errors.append((sample, stage, exc))


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    """GET ``url``; return the content type and the body."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


def status_of(request: urllib.request.Request | str) -> int:
    """The HTTP status answered to ``request`` (an error status too), body discarded."""
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family: Metric, suffix: str = "", **labels: str) -> float:
    """The value of the one sample of ``family`` named ``name+suffix`` with ``labels``."""
    found = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (family.name, suffix, labels, family.samples)
    return found[0]


async def _run_scenario(scorer: Flaky) -> None:
    """Organic (one failing, one dropped, one refused by the handler) and synthetic
    (one failing, one trigger with nothing to score) iterations."""
    for i in range(5):
        await scorer.receive_organic({"organic": i, "fail": i == 3})
    with pytest.raises(ValueError, match="refuses"):
        await scorer.receive_organic({"bad": True})
    while not scorer.organic_queue.is_empty():
        with contextlib.suppress(IterationError):
            await scorer.loop_iteration()
    for _ in range(4):  # ok, fail, none, ok
        with contextlib.suppress(IterationError):
            await scorer.loop_iteration()


@pytest.fixture
def scored() -> tuple[Flaky, PrometheusMetrics, ScoreBook]:
    scorer = Flaky(
        synth_dataset=Script("ok", "fail", "none", "ok"), organic_queue=OrganicQueue(max_size=4)
    )
    metrics = PrometheusMetrics(scorer, CollectorRegistry())
    book = ScoreBook(3)
    book.update_from({0: 1.0, 1: 0.5})
    metrics.track(book)
    asyncio.run(_run_scenario(scorer))
    return scorer, metrics, book


def test_a_scrape_over_http_matches_stats(
    scored: tuple[Flaky, PrometheusMetrics, ScoreBook],
) -> None:
    scorer, metrics, book = scored
    with serve_metrics(metrics) as server:
        content_type, text = scrape(server.url)
    assert content_type.startswith("text/plain")
    found = families(text)
    stats = scorer.stats

    for name, (kind, labels) in LOOP_METRICS.items():
        assert name in found, name
        assert found[name].type == kind, name
        sample_labels = {k for s in found[name].samples for k in s.labels} - {"le"}
        assert sample_labels == labels, name

    iterations = found["organic_scoring_iterations"]
    # Five organic requests accepted into a queue of four: one dropped, three scored,
    # one failed; synthetic: two scored, one failed, one trigger skipped.
    assert value(iterations, "_total", source="organic", outcome="scored") == 3
    assert value(iterations, "_total", source="organic", outcome="failed") == 1
    assert value(iterations, "_total", source="synthetic", outcome="scored") == 2
    assert value(iterations, "_total", source="synthetic", outcome="failed") == 1
    assert stats.organic_iterations == 3
    assert stats.synthetic_iterations == 2
    assert stats.organic_failed == 1
    assert stats.failed_iterations == 2

    failures = found["organic_scoring_failures"]
    assert value(failures, "_total", stage="query") == stats.failures["query"] == 2
    for stage in ("sample", "reference", "rewards", "weights", "log", "iteration"):
        assert value(failures, "_total", stage=stage) == 0
    skipped = value(found["organic_scoring_skipped_triggers"], "_total")
    assert skipped == stats.skipped == 1
    assert value(found["organic_scoring_organic_accepted"], "_total") == stats.organic_accepted
    assert stats.organic_accepted == 5
    handler_errors = value(found["organic_scoring_organic_handler_errors"], "_total")
    assert handler_errors == stats.organic_handler_errors == 1
    dropped = value(found["organic_scoring_organic_dropped"], "_total")
    assert dropped == stats.queue_counters["dropped"] == 1
    assert value(found["organic_scoring_organic_unaccounted"]) == stats.organic_unaccounted == 0
    assert value(found["organic_scoring_queue_size"]) == stats.queue_size == 0
    assert value(found["organic_scoring_in_flight"]) == stats.in_flight == 0
    period = value(found["organic_scoring_period_seconds"])
    assert period == scorer.sample_rate_dynamic() == 15

    weights = found["organic_scoring_weight"]
    for uid, weight in enumerate(book.weights()):
        assert value(weights, uid=str(uid)) == pytest.approx(weight)


def test_stage_times_fill_the_histogram(
    scored: tuple[Flaky, PrometheusMetrics, ScoreBook],
) -> None:
    scorer, metrics, _ = scored
    with serve_metrics(metrics) as server:
        found = families(scrape(server.url)[1])
    histogram = found["organic_scoring_stage_seconds"]
    stages = {"sample", "query", "reference", "rewards", "weights", "log", "total"}
    assert {s.labels["stage"] for s in histogram.samples} == stages
    scored_iterations = scorer.stats.iterations
    for stage in stages:
        count = value(histogram, "_count", stage=stage)
        assert count == scored_iterations == 5, stage
        assert value(histogram, "_bucket", stage=stage, le="+Inf") == count
        buckets = [
            (float(s.labels["le"]), s.value)
            for s in histogram.samples
            if s.name.endswith("_bucket") and s.labels["stage"] == stage
        ]
        assert [b for b, _ in buckets] == [*STAGE_BUCKETS, float("inf")]
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "buckets are cumulative"
        assert 0 <= value(histogram, "_sum", stage=stage) < 60


def test_openmetrics_when_prometheus_asks_for_it(
    scored: tuple[Flaky, PrometheusMetrics, ScoreBook],
) -> None:
    _, metrics, _ = scored
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    with serve_metrics(metrics) as server:
        content_type, text = scrape(server.url, accept)
    assert content_type.startswith("application/openmetrics-text")
    parsed = {family.name: family for family in openmetrics_families(text)}
    for name, (kind, _) in LOOP_METRICS.items():
        assert parsed[name].type == kind, name


def test_steps_trigger_exports_the_step_threshold() -> None:
    scorer = Recorder(trigger="steps", trigger_frequency=6, trigger_frequency_min=2)
    for i in range(8):
        scorer._organic_queue.add({"organic": i})
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        found = families(_exposition(metrics))
    assert "organic_scoring_period_seconds" not in found
    threshold = value(found["organic_scoring_step_threshold"])
    assert threshold == scorer.sample_rate_dynamic() == 4  # 6 - 8 / 5, as an int
    assert value(found["organic_scoring_queue_size"]) == 8


class _Plain(OrganicQueueBase):
    """A queue that keeps no counters."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, sample: Any) -> None:
        self.items.append(sample)

    def sample(self) -> Any:
        return self.items.pop() if self.items else None

    @property
    def size(self) -> int:
        return len(self.items)


def test_a_queue_without_a_drop_count_leaves_the_drop_metrics_out() -> None:
    scorer = Recorder(organic_queue=_Plain())
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        found = families(_exposition(metrics))
    assert "organic_scoring_organic_dropped" not in found
    assert "organic_scoring_organic_unaccounted" not in found
    assert "organic_scoring_queue_size" in found


def test_values_are_current_at_every_scrape() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        before = families(_exposition(metrics))
        asyncio.run(scorer.loop_iteration())
        scorer._organic_queue.add({"organic": 1})
        after = families(_exposition(metrics))
    synthetic = {"source": "synthetic", "outcome": "scored"}
    assert value(before["organic_scoring_iterations"], "_total", **synthetic) == 0
    assert value(after["organic_scoring_iterations"], "_total", **synthetic) == 1
    assert value(before["organic_scoring_queue_size"]) == 0
    assert value(after["organic_scoring_queue_size"]) == 1
    assert "organic_scoring_weight" not in after  # no book tracked


def test_several_scorers_share_a_registry_through_labels() -> None:
    registry = CollectorRegistry()
    text, image = Recorder(synth_dataset=Letters("t")), Recorder()
    first = PrometheusMetrics(text, registry, labels={"scorer": "text"})
    second = PrometheusMetrics(image, registry, labels={"scorer": "image"})
    asyncio.run(text.loop_iteration())
    found = families(_exposition(first))
    iterations = found["organic_scoring_iterations"]
    labels = {"source": "synthetic", "outcome": "scored"}
    assert value(iterations, "_total", scorer="text", **labels) == 1
    assert value(iterations, "_total", scorer="image", **labels) == 0
    stages = found["organic_scoring_stage_seconds"]
    assert value(stages, "_count", scorer="text", stage="total") == 1
    assert value(stages, "_count", scorer="image", stage="total") == 0
    with pytest.raises(ValueError, match="labels"):
        PrometheusMetrics(Recorder(), registry, labels={"scorer": "text"})  # taken
    with pytest.raises(ValueError, match="labels"):
        PrometheusMetrics(Recorder(), registry)  # no label to tell it apart
    with pytest.raises(ValueError, match="labels"):
        PrometheusMetrics(Recorder(), registry, labels={"role": "x"})  # other label names
    second.close()
    second.close()  # idempotent
    found = families(_exposition(first))
    for name in ("organic_scoring_iterations", "organic_scoring_stage_seconds"):
        assert {s.labels["scorer"] for s in found[name].samples} == {"text"}, name
    first.close()
    assert _exposition(registry) == ""
    # An emptied registry takes any scorer again.
    with PrometheusMetrics(image, registry) as again:
        assert "organic_scoring_iterations" in families(_exposition(again))


def test_one_unlabelled_scorer_per_registry_and_clear_errors() -> None:
    registry = CollectorRegistry()
    scorer = Recorder()
    with PrometheusMetrics(scorer, registry), pytest.raises(ValueError, match="own registry"):
        PrometheusMetrics(Recorder(), registry)
    with pytest.raises(TypeError, match="scoring"):
        PrometheusMetrics(object(), registry)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="registry"):
        PrometheusMetrics(scorer, {})  # type: ignore[arg-type]
    for bad in ({"stage": "x"}, {"9lives": "x"}, {"__name": "x"}, {"ok": 3}):
        with pytest.raises(ValueError, match="labels"):
            PrometheusMetrics(scorer, registry, labels=bad)  # type: ignore[arg-type]
    with PrometheusMetrics(scorer, registry) as metrics, pytest.raises(TypeError, match="book"):
        metrics.track([0.5, 0.5])


def test_the_default_registry_is_prometheus_clients() -> None:
    from prometheus_client import REGISTRY

    with PrometheusMetrics(Recorder()) as metrics:
        assert metrics.registry is REGISTRY
        assert "organic_scoring_iterations" in families(_exposition(REGISTRY))
    assert "organic_scoring_iterations" not in families(_exposition(REGISTRY))


def test_the_server_stops_cleanly_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    scorer = Recorder(synth_dataset=Letters("a"))
    asyncio.run(scorer.loop_iteration())
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        server = serve_metrics(metrics, "127.0.0.1", 0)
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        assert any(t.name.startswith("organic-scoring-metrics") for t in threading.enumerate())
        for _ in range(3):
            found = families(scrape(server.url)[1])
            iterations = found["organic_scoring_iterations"]
            assert value(iterations, "_total", source="synthetic", outcome="scored") == 1
        port = server.port
        server.stop()
        server.stop()  # idempotent
        assert set(threading.enumerate()) <= before
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_stop_waits_for_a_scrape_being_answered() -> None:
    # A scrape in progress when stop() is called gets its whole answer, and the thread
    # answering it has ended when stop() returns.
    entered, release = threading.Event(), threading.Event()

    class Slow(OrganicQueue):
        @property
        def size(self) -> int:
            entered.set()
            release.wait(WAIT)
            return super().size

    scorer = Recorder(organic_queue=Slow())
    answers: list[str] = []
    before = set(threading.enumerate())
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        server = serve_metrics(metrics)
        scraper = threading.Thread(target=lambda: answers.append(scrape(server.url)[1]))
        scraper.start()
        assert entered.wait(WAIT)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(1.0)  # twice the server's poll interval: time enough to stop at rest
        assert stopper.is_alive(), "stop() returned while a scrape was being answered"
        release.set()
        stopper.join(WAIT)
        scraper.join(WAIT)
        assert not stopper.is_alive()
        assert set(threading.enumerate()) <= before
    assert "organic_scoring_queue_size 0.0" in answers[0]


def test_a_taken_port_fails_at_once_and_bad_arguments_are_named() -> None:
    with PrometheusMetrics(Recorder(), CollectorRegistry()) as metrics:
        with serve_metrics(metrics) as server, pytest.raises(OSError, match="in use"):
            serve_metrics(metrics, "127.0.0.1", server.port)
        with pytest.raises(ValueError, match="port"):
            serve_metrics(metrics, "127.0.0.1", 70000)
        with pytest.raises(TypeError, match="metrics"):
            serve_metrics("registry")  # type: ignore[arg-type]


def test_metrics_route_serves_beside_other_routes() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    scorer = Recorder(synth_dataset=Letters("a"))
    asyncio.run(scorer.loop_iteration())
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        app = Starlette(
            routes=[
                Route("/hello", hello),
                metrics_route(metrics),
                metrics_route(metrics, "/ops/metrics"),
            ]
        )
        with serve_in_thread(app) as server:
            assert scrape(f"{server.url}/hello")[1] == "hello"
            for path in ("/metrics", "/ops/metrics"):
                content_type, text = scrape(f"{server.url}{path}")
                assert content_type.startswith("text/plain")
                found = families(text)
                iterations = found["organic_scoring_iterations"]
                assert value(iterations, "_total", source="synthetic", outcome="scored") == 1
            post = urllib.request.Request(f"{server.url}/metrics", data=b"", method="POST")
            assert status_of(post) == 405
            head = urllib.request.Request(f"{server.url}/metrics", method="HEAD")
            assert status_of(head) == 200


def test_a_failed_loop_iteration_override_is_not_counted_as_a_synthetic_iteration() -> None:
    # An overridden loop_iteration that raises has no sample, so no source: it shows
    # under failures_total{stage="iteration"}, not as a failed synthetic iteration.
    class Broken(Recorder):
        async def loop_iteration(self) -> None:
            raise RuntimeError("my own loop")

    scorer = Broken(synth_dataset=Letters("a"), trigger_frequency=0.01)
    with scorer:
        wait_until(lambda: scorer.stats.failures.get("iteration", 0) >= 1, "a failure")
    failed = scorer.stats.failures["iteration"]
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        found = families(_exposition(metrics))
    assert scorer.stats.failed_iterations == failed
    assert value(found["organic_scoring_failures"], "_total", stage="iteration") == failed
    iterations = found["organic_scoring_iterations"]
    assert value(iterations, "_total", source="synthetic", outcome="failed") == 0
    assert value(iterations, "_total", source="organic", outcome="failed") == 0


def test_a_scrape_beside_the_intake_reads_a_blocking_queue_off_the_event_loop() -> None:
    # Collecting reads the queue (a Redis or SQLite round trip): never on the loop
    # that serves the organic requests.
    class Noting(OrganicQueue):
        blocking = True
        on_loop: list[bool] = []

        @property
        def size(self) -> int:
            try:
                asyncio.get_running_loop()
                self.on_loop.append(True)
            except RuntimeError:
                self.on_loop.append(False)
            return super().size

    scorer = Recorder(synth_dataset=Letters("a"), organic_queue=Noting())
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        from starlette.applications import Starlette

        with serve_in_thread(Starlette(routes=[metrics_route(metrics)])) as server:
            found = families(scrape(f"{server.url}/metrics")[1])
    assert value(found["organic_scoring_queue_size"]) == 0
    assert Noting.on_loop
    assert not any(Noting.on_loop)


def test_scrapes_from_many_threads_while_the_loop_runs() -> None:
    scorer = Recorder(
        synth_dataset=Letters("a"), trigger_frequency=0.01, trigger_frequency_min=0.01
    )
    with (
        PrometheusMetrics(scorer, CollectorRegistry()) as metrics,
        serve_metrics(metrics) as server,
    ):
        errors: list[BaseException] = []

        def scraper() -> None:
            try:
                for _ in range(20):
                    families(scrape(server.url)[1])
            except BaseException as exc:  # reported below
                errors.append(exc)

        with scorer:
            threads = [threading.Thread(target=scraper) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT * 3)
        assert errors == []
        found = families(scrape(server.url)[1])
    scored = value(
        found["organic_scoring_iterations"], "_total", source="synthetic", outcome="scored"
    )
    assert scored == scorer.stats.iterations > 0
    stages = found["organic_scoring_stage_seconds"]
    assert value(stages, "_count", stage="total") == scored


def _exposition(metrics: PrometheusMetrics | CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    registry = metrics.registry if isinstance(metrics, PrometheusMetrics) else metrics
    return generate_latest(registry).decode()


# -- the histograms ------------------------------------------------------------------


def test_a_stage_time_lands_in_the_bucket_of_its_duration() -> None:
    class SlowMiners(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            await asyncio.sleep(0.03)
            return await super()._query_miners(sample)

    scorer = SlowMiners(synth_dataset=Letters("a"))
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        asyncio.run(scorer.loop_iteration())
        histogram = families(_exposition(metrics))["organic_scoring_stage_seconds"]
    query = scorer.logs[0]["organic_time_query"]
    for stage in ("query", "total"):
        assert value(histogram, "_bucket", stage=stage, le="0.025") == 0, stage
        assert value(histogram, "_bucket", stage=stage, le="+Inf") == 1, stage
        assert value(histogram, "_sum", stage=stage) > 0.025
    assert value(histogram, "_sum", stage="query") == query
    assert value(histogram, "_bucket", stage="weights", le="1.0") == 1


def test_closing_stops_recording_iterations() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(scorer, registry)
    asyncio.run(scorer.loop_iteration())
    metrics.close()
    asyncio.run(scorer.loop_iteration())
    with PrometheusMetrics(scorer, registry) as again:
        asyncio.run(scorer.loop_iteration())
        count = again.registry.get_sample_value(
            "organic_scoring_stage_seconds_count", {"stage": "total"}
        )
    assert count == 1  # only what happened while exported


# -- with a real intake ---------------------------------------------------------------


@BITTENSOR_WARNINGS
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_scrape_after_intake_refusals_and_failed_iterations_matches_stats(
    transport: str,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = Script("ok", "fail")
    with intake(transport, wallets, monkeypatch, synth_dataset=dataset) as driver:
        scorer = driver.scorer
        metrics = PrometheusMetrics(scorer, CollectorRegistry())
        scorer.blocked.add(wallets.other_hotkey)
        scorer.rejected.add("rejected")
        scorer.failing.add("crash")
        query = scorer._query_miners

        async def doomed_query(sample: Any) -> Any:
            if sample.get("text") == "doomed" or sample.get("fail"):
                raise RuntimeError("the miners are down")
            return await query(sample)

        scorer._query_miners = doomed_query  # type: ignore[method-assign]

        async def traffic() -> list[int]:
            client, other = wallets.client, wallets.other
            statuses = [
                await driver.send(client, "a"),
                await driver.send(client, "doomed"),
                await driver.send(other, "blocked"),
                await driver.send(client, "rejected"),
                await driver.send(client, "crash"),
            ]
            statuses += await driver.send_twice(client, "b")
            return statuses

        statuses = asyncio.run(traffic())
        assert statuses == [200, 200, 403, 403, 500, 200, 401]
        answers = driver.answers_after(len(statuses))

        async def score_everything() -> None:
            while not scorer.organic_queue.is_empty():
                with contextlib.suppress(IterationError):
                    await scorer.loop_iteration()
            for _ in range(2):  # synthetic: ok, then fail
                with contextlib.suppress(IterationError):
                    await scorer.loop_iteration()

        asyncio.run(score_everything())
        with serve_metrics(metrics) as server:
            found = families(scrape(server.url)[1])
        stats = scorer.stats
        metrics.close()

    assert answers == {200: 3, 401: 1, 403: 2, 500: 1}
    requests = found["organic_scoring_intake_requests"]
    assert requests.type == "counter"
    for status, count in answers.items():
        assert value(requests, "_total", transport=transport, status=str(status)) == count
    assert dict(stats.intake_requests[transport]) == answers
    seconds = found["organic_scoring_intake_seconds"]
    assert seconds.type == "histogram"
    assert value(seconds, "_count", transport=transport) == sum(answers.values())
    assert 0 < value(seconds, "_sum", transport=transport) < 60
    bounds = [float(s.labels["le"]) for s in seconds.samples if s.name.endswith("_bucket")]
    assert bounds == [*INTAKE_BUCKETS, float("inf")]

    iterations = found["organic_scoring_iterations"]
    assert value(iterations, "_total", source="organic", outcome="scored") == 2  # a, b
    assert value(iterations, "_total", source="organic", outcome="failed") == 1  # doomed
    assert value(iterations, "_total", source="synthetic", outcome="scored") == 1
    assert value(iterations, "_total", source="synthetic", outcome="failed") == 1
    assert stats.organic_scored == 2
    assert stats.organic_failed == 1
    assert (stats.synthetic_iterations, stats.failed_iterations) == (1, 2)
    assert value(found["organic_scoring_failures"], "_total", stage="query") == 2
    accepted = value(found["organic_scoring_organic_accepted"], "_total")
    assert accepted == stats.organic_accepted == 3
    errors = value(found["organic_scoring_organic_handler_errors"], "_total")
    assert errors == stats.organic_handler_errors == 1
    assert value(found["organic_scoring_organic_unaccounted"]) == 0
    histogram = found["organic_scoring_stage_seconds"]
    assert value(histogram, "_count", stage="total") == stats.iterations == 3


@BITTENSOR_WARNINGS
def test_metrics_beside_the_signed_http_intake_on_one_port(
    wallets: Wallets,  # noqa: F811
) -> None:
    from organic_scoring.http import OrganicClient, create_app

    scorer = parity_scorer(Job)
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol="epistula",
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        app.router.routes.append(metrics_route(metrics))
        with serve_in_thread(app) as server:

            async def ask() -> int:
                async with OrganicClient(
                    wallets.client,
                    f"{server.url}/organic",
                    wallets.validator_hotkey,
                    protocol="epistula",
                    timeout=WAIT,
                ) as client:
                    return (await client.send(Job(text="hi"))).status_code

            assert asyncio.run(ask()) == 200
            wait_until(lambda: scorer.stats.intake_requests, "the answer counted")
            found = families(scrape(f"{server.url}/metrics")[1])
    requests = found["organic_scoring_intake_requests"]
    assert value(requests, "_total", transport="epistula", status="200") == 1
    assert value(found["organic_scoring_organic_accepted"], "_total") == 1


# -- a fleet ------------------------------------------------------------------------


def test_a_fleet_scorer_says_which_series_are_its_own_and_which_the_fleets(
    redis_url: str,
) -> None:
    from organic_scoring.organic_queue import RedisOrganicQueue

    # An intake worker accepts three requests; the scorer, in another process, scores one.
    worker = Recorder(organic_queue=RedisOrganicQueue(redis_url, name="sn"))
    scorer = Recorder(organic_queue=RedisOrganicQueue(redis_url, name="sn"))
    try:
        for i in range(3):
            asyncio.run(worker.receive_organic({"organic": i}))
        asyncio.run(scorer.loop_iteration())
        with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
            found = families(_exposition(metrics))
    finally:
        for each in (worker, scorer):
            queue = each.organic_queue
            assert isinstance(queue, RedisOrganicQueue)
            queue.close()
    assert value(found["organic_scoring_organic_accepted"], "_total") == 0  # this process's
    assert value(found["organic_scoring_fleet_organic_accepted"], "_total") == 3
    assert value(found["organic_scoring_fleet_organic_scored"], "_total") == 1
    assert value(found["organic_scoring_fleet_organic_failed"], "_total") == 0
    assert value(found["organic_scoring_queue_size"]) == 2
    assert value(found["organic_scoring_organic_unaccounted"]) == 0
    for name in ("iterations", "organic_accepted", "organic_handler_errors", "in_flight"):
        assert "this process" in found[f"organic_scoring_{name}"].documentation, name
    for name in ("queue_size", "organic_dropped", "organic_unaccounted", "fleet_organic_accepted"):
        assert "fleet-wide" in found[f"organic_scoring_{name}"].documentation, name


def test_a_queue_of_one_process_exports_no_fleet_series() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        found = families(_exposition(metrics))
    assert not [name for name in found if "fleet" in name]
