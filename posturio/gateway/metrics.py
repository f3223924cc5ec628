"""Gateway metrics (Prometheus), beside the per-route HTTP metrics of the middleware."""

from __future__ import annotations

from prometheus_client import Counter

upstream_attempts = Counter(
    "posturio_upstream_attempts_total",
    "Upstream calls by provider and outcome",
    ["provider", "outcome"],
)
