"""Prometheus families of weight setters, read from their stats at scrape time: one
collector per registry, a setter told apart by its labels; prometheus_client is imported
only when a setter is exported."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from organic_scoring.weights._result import OUTCOMES, WeightSetterStats

__all__ = ["FAMILIES", "export", "registry_or_default"]


FAMILIES = {
    "organic_scoring_weights_attempts": "Weight-setting attempts, by outcome.",
    "organic_scoring_weights_last_success_block": (
        "The chain block of the last weights set or committed."
    ),
    "organic_scoring_weights_last_success_timestamp_seconds": (
        "When weights were last set or committed (seconds since the epoch)."
    ),
    "organic_scoring_weights_blocks_since_last_update": (
        "Blocks since this hotkey's weights last changed on chain, as last read."
    ),
}

_lock = threading.Lock()
_collectors: weakref.WeakKeyDictionary[Any, _Collector] = weakref.WeakKeyDictionary()
"""The collector of each registry that exports setters."""


class _Collector:
    """Exposes every exported setter of one registry."""

    def __init__(self, label_names: tuple[str, ...]) -> None:
        self.label_names = label_names
        self.members: dict[tuple[str, ...], Callable[[], WeightSetterStats]] = {}

    def describe(self) -> Iterator[Any]:
        yield from _families(self.label_names).values()

    def collect(self) -> Iterator[Any]:
        families = _families(self.label_names)
        with _lock:
            members = list(self.members.items())
        for values, read in members:
            stats = read()
            labels = list(values)
            attempts = families["organic_scoring_weights_attempts"]
            for outcome in OUTCOMES:
                attempts.add_metric([*labels, outcome], stats.attempts[outcome])
            gauges = {
                "organic_scoring_weights_last_success_block": stats.last_success_block,
                "organic_scoring_weights_last_success_timestamp_seconds": stats.last_success_time,
                "organic_scoring_weights_blocks_since_last_update": stats.blocks_since_last_update,
            }
            for name, value in gauges.items():
                if value is not None:
                    families[name].add_metric(labels, float(value))
        yield from families.values()


def _families(label_names: tuple[str, ...]) -> dict[str, Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    names = list(label_names)
    families: dict[str, Any] = {
        name: GaugeMetricFamily(name, documentation, labels=names)
        for name, documentation in FAMILIES.items()
    }
    name = "organic_scoring_weights_attempts"
    families[name] = CounterMetricFamily(name, FAMILIES[name], labels=[*names, "outcome"])
    return families


def registry_or_default(registry: Any) -> Any:
    """``registry``, or prometheus_client's default one for None."""
    from prometheus_client import REGISTRY, CollectorRegistry

    if registry is None:
        return REGISTRY
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"registry must be a prometheus_client CollectorRegistry or None, "
            f"got {type(registry).__name__}"
        )
    return registry


def export(
    stats: Callable[[], WeightSetterStats],
    own: dict[str, str],
    registry: Any,
    labels: Mapping[str, str],
) -> Callable[[], None]:
    """Export a setter's ``stats`` labelled ``own`` and ``labels`` on ``registry``; returns
    the function that takes it off again."""
    registry = registry_or_default(registry)
    extra = dict(labels)
    reserved = {"netuid", "mechid", "outcome"} & set(extra)
    if reserved:
        raise ValueError(f"labels: {sorted(reserved)} are set by the setter itself")
    all_labels = {**own, **extra}
    label_names = tuple(all_labels)
    key = tuple(all_labels.values())
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _Collector(label_names)
            registry.register(collector)
            _collectors[registry] = collector
        elif collector.label_names != label_names:
            raise ValueError(
                f"labels: this registry exports weight setters labelled by "
                f"{list(collector.label_names)}; give every setter on it the same label names"
            )
        if key in collector.members:
            raise ValueError(
                f"this registry already exports a weight setter with labels {all_labels}"
            )
        collector.members[key] = stats

    def unexport() -> None:
        with _lock:
            if collector.members.get(key) is not stats:
                return
            del collector.members[key]
            if not collector.members and _collectors.get(registry) is collector:
                registry.unregister(collector)
                del _collectors[registry]

    return unexport
