"""Gateway series stay bounded: past MAX_VERSION_SERIES versions the rest count as `version="other"`."""

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.observability.metrics import MAX_VERSION_SERIES, ServingMetrics


def counts(metrics: ServingMetrics) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    return {
        (sample.labels["lineage"], sample.labels["version"]): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name == "neuroplast_gateway_request_duration_seconds_count"
    }


def test_versions_past_the_cap_share_one_series_until_one_is_forgotten() -> None:
    metrics = ServingMetrics()
    for number in range(1, MAX_VERSION_SERIES + 3):
        metrics.observe_request(f"acme/bot@{number}", "acme", 200, time.perf_counter())

    seen = counts(metrics)
    assert len(seen) == MAX_VERSION_SERIES + 1
    assert seen[("bot", "other")] == 2

    metrics.forget("acme/bot@1")
    metrics.observe_request(f"acme/bot@{MAX_VERSION_SERIES + 5}", "acme", 200, time.perf_counter())
    seen = counts(metrics)
    assert ("bot", "1") not in seen
    assert seen[("bot", str(MAX_VERSION_SERIES + 5))] == 1
