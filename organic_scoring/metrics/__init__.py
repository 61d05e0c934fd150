"""Prometheus metrics for the scoring loop and the intakes (the ``metrics`` extra).

:class:`PrometheusMetrics` exports a scorer; :func:`serve_metrics` serves a registry on a
port of its own, :func:`metrics_route` beside the signed-HTTP intake. The metrics guide
in the docs lists every series and shows both ways.
"""

from __future__ import annotations

from organic_scoring._compat import require_extra

require_extra("prometheus_client", "metrics", "organic_scoring.metrics")

from organic_scoring.metrics._exporter import PrometheusMetrics
from organic_scoring.metrics._serve import metrics_route, serve_metrics

__all__ = ["PrometheusMetrics", "metrics_route", "serve_metrics"]
