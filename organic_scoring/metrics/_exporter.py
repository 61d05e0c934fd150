"""``PrometheusMetrics``: the scoring loop's state as ``organic_scoring_*`` metrics, read
at scrape time by one collector per registry (durations go into histograms)."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from organic_scoring._loop.stages import STAGES
from organic_scoring._loop.stats import TIMED, ScoringStats, is_fleet_ledger
from organic_scoring.base import OrganicScoringBase, runtime
from organic_scoring.weights._metrics import registry_or_default

__all__ = ["PrometheusMetrics"]

_BOUNDS = "1e-5 2.5e-5 5e-5 1e-4 2.5e-4 5e-4 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 30"
_STAGE_BUCKETS: tuple[float, ...] = (*map(float, _BOUNDS.split()), 60.0, 120.0)
"""Bucket bounds (seconds) of ``organic_scoring_stage_seconds``: 10 µs hooks to 2 min
miner queries, about three buckets per decade."""

_INTAKE_BUCKETS: tuple[float, ...] = _STAGE_BUCKETS[3:-2]
"""Bucket bounds (seconds) of ``organic_scoring_intake_seconds``."""

_TIMED_STAGES: tuple[str, ...] = (*STAGES, "total")
"""The ``stage`` label values of ``organic_scoring_stage_seconds``."""

_FAILURE_STAGES: tuple[str, ...] = (*STAGES, "iteration")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS = frozenset({"source", "outcome", "stage", "uid", "transport", "status", "le"})

# name: (type, help); the order is the exposition's.
_FAMILIES: dict[str, tuple[str, str]] = {
    "organic_scoring_iterations": (
        "counter",
        "Finished iterations in this process, by where the sample came from (organic "
        "or synthetic) and whether every stage succeeded (scored) or one failed "
        "(failed); a loop_iteration override that raised counts under failures_total "
        "only.",
    ),
    "organic_scoring_skipped_triggers": (
        "counter",
        "Triggers that found neither an organic nor a synthetic sample to score.",
    ),
    "organic_scoring_failures": (
        "counter",
        "Failures reported to _on_iteration_error, by stage: failed iterations, and a "
        "broken organic queue (sample) that the iteration survived with a synthetic "
        "sample; iteration: an overridden loop_iteration raised outside the stages.",
    ),
    "organic_scoring_stage_seconds": (
        "histogram",
        "Seconds spent in each stage of a scored iteration; query and reference run "
        "side by side; total is the whole iteration up to the log stage.",
    ),
    "organic_scoring_queue_size": (
        "gauge",
        "Organic samples waiting in the queue (fleet-wide on a shared queue).",
    ),
    "organic_scoring_organic_accepted": (
        "counter",
        "Organic requests this process's intake accepted (their _on_organic_entry "
        "returned); 0 in a scorer process without an intake: a fleet's count is "
        "organic_scoring_fleet_organic_accepted_total.",
    ),
    "organic_scoring_organic_handler_errors": (
        "counter",
        "Organic requests whose _on_organic_entry raised in this process.",
    ),
    "organic_scoring_organic_dropped": (
        "counter",
        "Organic samples the queue dropped to stay within its bound (fleet-wide on a "
        "shared queue).",
    ),
    "organic_scoring_organic_unaccounted": (
        "gauge",
        "Accepted organic requests not yet scored, failed, dropped, in flight or "
        "queued (fleet-wide on a shared queue); 0 whenever the intake and the loop "
        "are at rest.",
    ),
    "organic_scoring_fleet_organic_accepted": (
        "counter",
        "Organic requests every intake of the fleet accepted, fleet-wide, from the "
        "shared queue's ledger: the same in every process (read with max, not sum).",
    ),
    "organic_scoring_fleet_organic_scored": (
        "counter",
        "Organic samples every scorer of the fleet scored, fleet-wide, from the shared "
        "queue's ledger (read with max, not sum).",
    ),
    "organic_scoring_fleet_organic_failed": (
        "counter",
        "Organic samples every scorer of the fleet reported failed, fleet-wide, from "
        "the shared queue's ledger (read with max, not sum).",
    ),
    "organic_scoring_period_seconds": (
        "gauge",
        "The annealed period between iteration starts, its mean with trigger_jitter "
        "(trigger=seconds).",
    ),
    "organic_scoring_step_threshold": (
        "gauge",
        "The annealed number of steps that starts an iteration (trigger=steps).",
    ),
    "organic_scoring_in_flight": ("gauge", "Iterations running now in this process."),
    "organic_scoring_oldest_iteration_seconds": (
        "gauge",
        "Seconds the oldest running iteration has run; 0 when none runs.",
    ),
    "organic_scoring_stuck_iterations": (
        "gauge",
        "Running iterations older than stuck_after; at max_concurrent_iterations no "
        "sample is scored until one ends.",
    ),
    "organic_scoring_active_scorer": (
        "gauge",
        "1 while this scorer runs iterations (on a shared queue: holds the scorer role).",
    ),
    "organic_scoring_organic_leased": (
        "gauge",
        "Organic samples handed out by a leasing queue and not yet acknowledged (fleet-wide).",
    ),
    "organic_scoring_organic_redelivered": (
        "counter",
        "Leases that ran out unacknowledged and put their sample back (fleet-wide).",
    ),
    "organic_scoring_organic_dead_lettered": (
        "counter",
        "Organic samples handed out max_deliveries times and moved to the dead letters "
        "(fleet-wide).",
    ),
    "organic_scoring_intake_requests": (
        "counter",
        "Organic requests answered by an intake, by transport and HTTP status code.",
    ),
    "organic_scoring_intake_seconds": (
        "histogram",
        "Seconds from a request's arrival at an intake to its answer, by transport.",
    ),
    "organic_scoring_weight": (
        "gauge",
        "Normalised weight per uid of the ScoreBook tracked with metrics.track(book).",
    ),
}

# The labels of each metric, after the constant ones.
_LABELS: dict[str, tuple[str, ...]] = {
    "organic_scoring_iterations": ("source", "outcome"),
    "organic_scoring_failures": ("stage",),
    "organic_scoring_intake_requests": ("transport", "status"),
    "organic_scoring_weight": ("uid",),
}
_BUCKETS = {
    "organic_scoring_stage_seconds": _STAGE_BUCKETS,
    "organic_scoring_intake_seconds": _INTAKE_BUCKETS,
}


class PrometheusMetrics:
    """Exports one scorer's loop, intake and weights as Prometheus metrics.

    The metrics, their labels and when each series appears are listed in the
    metrics guide of the docs (``docs/metrics.md``); every series carries ``labels``.

    Args:
        scoring: The scorer to export.
        registry: Where to register; default: ``prometheus_client.REGISTRY``, which
            ``prometheus_client.start_http_server`` also serves.
        labels: Constant labels added to every series, e.g. ``{"scorer": "text"}``;
            scorers sharing a registry need the same label names, other values.

    Raises:
        TypeError: ``scoring`` is not a scorer or ``registry`` not a registry.
        ValueError: ``labels`` has an invalid or reserved name, or the registry
            already exports a scorer with the same labels (or other label names).
    """

    def __init__(
        self,
        scoring: OrganicScoringBase,
        registry: CollectorRegistry | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(scoring, OrganicScoringBase):
            raise TypeError(f"scoring must be an OrganicScoringBase, got {type(scoring).__name__}")
        registry = registry_or_default(registry)
        self._labels = _check_labels(labels)
        self._scoring = scoring
        self._registry = registry
        # Read through the base class's own descriptors: a subclass may use the names
        # ``stats`` and ``config`` for something of its own.
        self._trigger = _base_view(scoring, "config").trigger
        self._book: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._intake_children: dict[str, Any] = {}
        self._collector = _join(registry, self)
        own = self._label_values()
        # Each stage's series exists from the start, at zero; an intake's from its first
        # answer (there may be no intake at all).
        self._stage_children = tuple(
            (self._collector.stages.labels(*own, stage), TIMED.index(stage))
            for stage in _TIMED_STAGES
        )
        self._recorder = runtime(scoring).stats
        self._recorder.add_observer(self._observe_stages)
        # Intake answers are counted by the scorer's stats (read at scrape time); only
        # their durations are recorded here.
        self._recorder.add_intake_observer(self._observe_intake)

    # -- what the user calls ------------------------------------------------------

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the metrics are registered on."""
        return self._registry

    @property
    def labels(self) -> Mapping[str, str]:
        """The constant labels on every series."""
        return dict(self._labels)

    @property
    def scoring(self) -> OrganicScoringBase:
        """The exported scorer."""
        return self._scoring

    def track(self, book: Any) -> None:
        """Export ``book.weights()`` as ``organic_scoring_weight{uid}`` from now on.

        ``book`` is a :class:`~organic_scoring.weights.ScoreBook` (or anything with a
        ``weights()`` returning one number per uid); None stops exporting weights. A
        later call replaces the tracked book.
        """
        if book is not None and not callable(getattr(book, "weights", None)):
            raise TypeError(f"book must have a weights() method, got {type(book).__name__}")
        self._book = book

    def close(self) -> None:
        """Stop exporting this scorer; idempotent. Its series leave the registry."""
        with self._lock:  # no intake series is added after this
            if self._closed:
                return
            self._closed = True
        self._recorder.remove_observer(self._observe_stages)  # bound methods compare equal
        self._recorder.remove_intake_observer(self._observe_intake)
        _leave(self._registry, self, tuple(self._intake_children))

    def __enter__(self) -> PrometheusMetrics:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        labels = "".join(f" {k}={v!r}" for k, v in self._labels)
        return f"<PrometheusMetrics of {type(self._scoring).__name__}{labels}>"

    # -- what the collector calls ------------------------------------------------

    def _label_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._labels)

    def _label_values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self._labels)

    def _observe_stages(self, times: Sequence[float]) -> None:
        """One scored iteration's durations, in ``TIMED`` order (a stats observer)."""
        for child, index in self._stage_children:
            child.observe(times[index])

    def _observe_intake(self, transport: str, status: int, seconds: float) -> None:
        """One intake answer (an intake observer of the scorer's stats)."""
        child = self._intake_children.get(transport)
        if child is None:
            with self._lock:
                if self._closed:
                    return
                child = self._intake_children.get(transport)
                if child is None:
                    child = self._collector.intake.labels(*self._label_values(), transport)
                    self._intake_children[transport] = child
        child.observe(seconds)

    def _samples(self, families: dict[str, _Family]) -> None:
        """Add this scorer's samples to ``families`` (one per metric name)."""
        own = self._label_values()
        stats: ScoringStats = _base_view(self._scoring, "stats")

        def add(name: str, labels: Sequence[str], value: float) -> None:
            families[name].add_metric([*own, *labels], value)

        organic_failed = stats.organic_failed
        # A loop_iteration override that raised had no sample, so no source: it counts
        # under failures_total{stage="iteration"} only.
        unsourced = stats.failures.get("iteration", 0)
        synthetic_failed = stats.failed_iterations - organic_failed - unsourced
        for source, scored, failed in (
            ("organic", stats.organic_iterations, organic_failed),
            ("synthetic", stats.synthetic_iterations, synthetic_failed),
        ):  # every combination, from 0, so that rate() and sums see all four
            add("organic_scoring_iterations", (source, "scored"), scored)
            add("organic_scoring_iterations", (source, "failed"), failed)
        add("organic_scoring_skipped_triggers", (), stats.skipped)
        for stage in _FAILURE_STAGES:
            add("organic_scoring_failures", (stage,), stats.failures.get(stage, 0))
        add("organic_scoring_queue_size", (), stats.queue_size)
        add("organic_scoring_organic_accepted", (), stats.organic_accepted)
        add("organic_scoring_organic_handler_errors", (), stats.organic_handler_errors)
        dropped = stats.queue_counters.get("dropped")
        if dropped is not None:
            add("organic_scoring_organic_dropped", (), dropped)
            unaccounted = stats.organic_unaccounted
            if unaccounted is not None:
                add("organic_scoring_organic_unaccounted", (), unaccounted)
        period = OrganicScoringBase.sample_rate_dynamic(self._scoring)
        if self._trigger == "steps":
            add("organic_scoring_step_threshold", (), period)
        else:
            add("organic_scoring_period_seconds", (), period)
        add("organic_scoring_in_flight", (), stats.in_flight)
        add("organic_scoring_oldest_iteration_seconds", (), stats.oldest_iteration_age)
        add("organic_scoring_stuck_iterations", (), stats.stuck_iterations)
        add("organic_scoring_active_scorer", (), float(stats.active_scorer))
        if is_fleet_ledger(stats.queue_counters):
            for key in ("accepted", "scored", "failed"):
                add(f"organic_scoring_fleet_organic_{key}", (), stats.queue_counters[key])
        for name, key in (
            ("organic_scoring_organic_leased", "leased"),
            ("organic_scoring_organic_redelivered", "redelivered"),
            ("organic_scoring_organic_dead_lettered", "dead_lettered"),
        ):
            value = stats.queue_counters.get(key)
            if value is not None:
                add(name, (), value)
        for transport, by_status in sorted(stats.intake_requests.items()):
            for status, count in sorted(by_status.items()):
                add("organic_scoring_intake_requests", (transport, str(status)), count)
        book = self._book
        if book is not None:
            for uid, weight in enumerate(book.weights()):
                add("organic_scoring_weight", (str(uid),), float(weight))


# -- one collector per registry ------------------------------------------------------


class _Collector(Collector):
    """Exposes the metrics of every :class:`PrometheusMetrics` on one registry: the
    figures read from the scorers when scraped, and the two histograms they feed."""

    def __init__(self, label_names: tuple[str, ...]) -> None:
        self.members: list[PrometheusMetrics] = []
        self.label_names = label_names
        self.stages = _histogram("organic_scoring_stage_seconds", label_names, "stage")
        self.intake = _histogram("organic_scoring_intake_seconds", label_names, "transport")

    def describe(self) -> Iterable[Metric]:
        # The names this collector owns, so that the registry refuses a clash.
        return [
            *_scraped_families(self.label_names).values(),
            *self.stages.describe(),
            *self.intake.describe(),
        ]

    def collect(self) -> Iterator[Metric]:
        with _members_lock:
            members = list(self.members)
        if not members:
            return
        families = _scraped_families(self.label_names)
        for member in members:
            member._samples(families)
        histograms = {
            "organic_scoring_stage_seconds": self.stages,
            "organic_scoring_intake_seconds": self.intake,
        }
        for name in _FAMILIES:  # in the order of _FAMILIES
            histogram = histograms.get(name)
            for family in [families[name]] if histogram is None else histogram.collect():
                if family.samples:
                    yield family

    def forget(self, own: tuple[str, ...], transports: Iterable[str]) -> None:
        """Drop the histogram series of the scorer labelled ``own``."""
        for stage in _TIMED_STAGES:
            self.stages.remove(*own, stage)
        for transport in transports:
            self.intake.remove(*own, transport)


_members_lock = threading.Lock()
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, _Collector] = weakref.WeakKeyDictionary()


def _join(registry: CollectorRegistry, metrics: PrometheusMetrics) -> _Collector:
    with _members_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _Collector(metrics._label_names())
            registry.register(collector)
            _collectors[registry] = collector
        else:
            _check_compatible(collector, metrics)
        collector.members.append(metrics)
        return collector


def _leave(
    registry: CollectorRegistry, metrics: PrometheusMetrics, transports: tuple[str, ...]
) -> None:
    with _members_lock:
        collector = _collectors.get(registry)
        if collector is None or metrics not in collector.members:
            return
        collector.members.remove(metrics)
        if collector.members:
            collector.forget(metrics._label_values(), transports)
        else:
            registry.unregister(collector)
            del _collectors[registry]


def _check_compatible(collector: _Collector, metrics: PrometheusMetrics) -> None:
    names, values = metrics._label_names(), metrics._label_values()
    if names != collector.label_names:
        raise ValueError(
            f"labels: this registry already exports scorers labelled by "
            f"{list(collector.label_names) or 'nothing'}; give every scorer on one registry "
            f"the same label names (got {list(names) or 'none'})"
        )
    for other in collector.members:
        if other._label_values() == values:
            shown = dict(metrics._labels) or "no labels"
            raise ValueError(
                f"labels: this registry already exports a scorer with {shown}; give each "
                "scorer on one registry its own labels (e.g. labels={'scorer': 'name'}) "
                "or its own registry"
            )


_Family = CounterMetricFamily | GaugeMetricFamily


def _scraped_families(label_names: tuple[str, ...]) -> dict[str, _Family]:
    """An empty family for each counter and gauge, to fill with a scrape's samples."""
    families: dict[str, _Family] = {}
    for name, (kind, doc) in _FAMILIES.items():
        if kind != "histogram":
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            families[name] = family(name, doc, labels=[*label_names, *_LABELS.get(name, ())])
    return families


def _histogram(name: str, label_names: tuple[str, ...], label: str) -> Histogram:
    """One of the two histograms, unregistered: its collector exposes it."""
    return Histogram(
        name, _FAMILIES[name][1], [*label_names, label], buckets=_BUCKETS[name], registry=None
    )


def _base_view(scoring: OrganicScoringBase, name: str) -> Any:
    return OrganicScoringBase.__dict__[name].__get__(scoring, type(scoring))


def _check_labels(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if labels is None:
        return ()
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of label names to values, got {labels!r}")
    checked = []
    for name, value in labels.items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(
                f"labels: {name!r} is not a Prometheus label name "
                "(letters, digits and underscores, not starting with a digit or '__')"
            )
        if name in _RESERVED_LABELS:
            raise ValueError(
                f"labels: {name!r} is a label of the metrics themselves; pick another name"
            )
        if not isinstance(value, str):
            raise ValueError(f"labels: the value of {name!r} must be a string, got {value!r}")
        checked.append((name, value))
    return tuple(sorted(checked))
