"""Prometheus metrics for the scoring loop (and the intakes): the ``metrics`` extra.

::

    from organic_scoring.metrics import PrometheusMetrics, serve_metrics

    metrics = PrometheusMetrics(scoring)      # registers on prometheus_client's REGISTRY
    metrics.track(book)                       # optional: export a ScoreBook's weights
    server = serve_metrics(metrics, "127.0.0.1", 9108)   # GET /metrics from a thread
    ...
    server.stop()

Or serve ``/metrics`` beside the signed-HTTP intake::

    app = create_app(scoring, hotkey_ss58=hotkey)
    app.router.routes.append(metrics_route(metrics))

Every metric is named ``organic_scoring_*`` (see :class:`PrometheusMetrics`). Counters
and gauges are read from the scorer when Prometheus scrapes, so keeping them current
costs the scoring loop nothing; the stage-time and intake histograms are
prometheus_client ``Histogram``s, observed when an iteration ends and when an intake
answers.

Needs the ``metrics`` extra (``pip install 'organic-scoring[metrics]'``).
"""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    if (exc.name or "").partition(".")[0] != "prometheus_client":
        raise
    raise ImportError(
        "organic_scoring.metrics needs the 'metrics' extra (prometheus_client): "
        "pip install 'organic-scoring[metrics]'",
        name=exc.name,
    ) from exc

from organic_scoring.metrics._exporter import PrometheusMetrics
from organic_scoring.metrics._serve import metrics_route, serve_metrics

__all__ = ["PrometheusMetrics", "metrics_route", "serve_metrics"]
