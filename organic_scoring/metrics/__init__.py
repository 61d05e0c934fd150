"""Prometheus metrics for the scoring loop and the intakes (the ``metrics`` extra).

:class:`PrometheusMetrics` exports a scorer; :func:`serve_metrics` serves a registry on a
port of its own, :func:`metrics_route` beside the signed-HTTP intake. The metrics guide
in the docs lists every series and shows both ways.
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
