"""Prometheus metrics of the control plane, served at `GET /metrics` (docs/operations.md, Monitoring).

Two sources. Workers run on other machines, so job, queue and health figures are read from the
database at scrape time (`DatabaseCollector`, a few aggregate queries): every API replica reports
the same numbers, and nothing is lost when a worker dies. Gateway requests and hot swaps happen in
the API process, so `ServingMetrics` counts them in memory (per process: sum over API replicas).

Label cardinality stays bounded: statuses, verdicts and methods are fixed sets; gateway series carry
`tenant`, `lineage` and `version` of versions this process serves (a version's series are dropped
when the tier unloads it, and past `MAX_VERSION_SERIES` versions the rest count as `version="other"`).
The model name a client sends never becomes a label: requests that resolve to no version count
under `lineage=""`.
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, Float, case, cast, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from service.db import Database
from service.models import HealthCheck, Job, Lineage, Report, Version
from trainers.contracts.statuses import HealthCheckStatus, JobStatus, VersionStatus

VERDICTS = ("ok", "warn", "rot")  # eval.stats.overall_verdict
# Bucket bounds in seconds: jobs wait seconds to hours and run minutes to days; a gateway answer
# takes milliseconds (cached) to minutes (long generations).
QUEUE_WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
JOB_DURATION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, 48 * 3600)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SWAP_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
MAX_VERSION_SERIES = 256


class DatabaseCollector(Collector):
    """Job, queue, version and health-check figures, computed from the database on every scrape."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        with self.database.session() as session:
            yield _by_status(session, Job, "neuroplast_jobs", "Fine-tuning jobs by status.", tuple(JobStatus))
            yield _by_status(
                session, Version, "neuroplast_versions", "Published versions by status.", tuple(VersionStatus)
            )
            yield _by_status(
                session,
                HealthCheck,
                "neuroplast_health_checks",
                "Health checks by status.",
                tuple(HealthCheckStatus),
            )
            yield from _queue(session)
            yield _queue_wait(session)
            yield _job_duration(session)
            yield from _training(session)
            yield _verdicts(session)


class ServingMetrics(Collector):
    """Gateway requests and hot swaps of one API process; registered on the app's registry.

    `observe_request` is on the gateway's hot path: one dict lookup and one histogram observe.
    """

    def __init__(self) -> None:
        self.requests = Histogram(
            "neuroplast_gateway_request_duration_seconds",
            "Gateway completions by served version and status code; streams until their last byte.",
            ["tenant", "lineage", "version", "code"],
            buckets=REQUEST_BUCKETS,
            registry=None,
        )
        self.swaps = Histogram(
            "neuroplast_swap_duration_seconds",
            "Hot swaps: load on every replica, warm-up and alias flip.",
            buckets=SWAP_BUCKETS,
            registry=None,
        )
        self.swap_failures = Counter(
            "neuroplast_swap_failures",
            "Swap attempts that failed (a replica refused or was down); the reconciler retries.",
            registry=None,
        )
        self._children: dict[tuple[str | None, str, int], Any] = {}
        self._versions: set[str] = set()

    def collect(self) -> Iterable[Metric]:
        for metric in (self.requests, self.swaps, self.swap_failures):
            yield from metric.collect()

    def observe_request(self, model: str | None, tenant: str, code: int, started: float) -> None:
        """Count one gateway request on `model` (`<tenant>/<lineage>@<N>`, None if unresolved).

        `started` is its `time.perf_counter()` at arrival.
        """
        key = (model, tenant, code)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(*self._labels(model, tenant, code))
        child.observe(time.perf_counter() - started)

    def forget(self, model: str) -> None:
        """Drop the series of a version the tier unloaded."""
        for key in [key for key in self._children if key[0] == model]:
            labels = self._labels(model, key[1], key[2])
            del self._children[key]
            if labels[2] != "other":
                self.requests.remove(*labels)
        self._versions.discard(model)

    def _labels(self, model: str | None, tenant: str, code: int) -> tuple[str, str, str, str]:
        if model is None:
            return tenant, "", "", str(code)
        owner, _, rest = model.partition("/")
        lineage, _, version = rest.rpartition("@")
        if model not in self._versions:
            if len(self._versions) >= MAX_VERSION_SERIES:
                version = "other"
            else:
                self._versions.add(model)
        return owner, lineage, version, str(code)


def _by_status(session: Session, work: Any, name: str, documentation: str, statuses: Iterable[str]) -> Metric:
    counts: dict[str, int] = dict(
        session.execute(select(work.status, func.count()).group_by(work.status)).tuples().all()
    )
    metric = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in dict.fromkeys([*statuses, *counts]):  # every known status, even at zero
        metric.add_metric([status], counts.get(status, 0))
    return metric


def _queue(session: Session) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "neuroplast_queue_depth", "Queued work not yet claimed by a worker.", labels=["kind"]
    )
    oldest = GaugeMetricFamily(
        "neuroplast_queue_oldest_age_seconds", "Age of the oldest queued work (0: none).", labels=["kind"]
    )
    now = time.time()
    for kind, work in (("job", Job), ("health_check", HealthCheck)):
        count, first = session.execute(
            select(func.count(), func.min(work.created_at)).where(work.status == JobStatus.QUEUED)
        ).one()
        depth.add_metric([kind], count)
        oldest.add_metric([kind], max(0.0, now - first) if first is not None else 0.0)
    yield depth
    yield oldest


def _queue_wait(session: Session) -> Metric:
    metric = HistogramMetricFamily(
        "neuroplast_queue_wait_seconds",
        "Time from creation to the first claim by a worker.",
        labels=["kind"],
    )
    for kind, work in (("job", Job), ("health_check", HealthCheck)):
        wait = work.started_at - work.created_at
        for _, buckets, total in _histograms(
            session, wait, [work.started_at.is_not(None)], QUEUE_WAIT_BUCKETS
        ):
            metric.add_metric([kind], buckets, total)
    return metric


def _job_duration(session: Session) -> Metric:
    metric = HistogramMetricFamily(
        "neuroplast_job_duration_seconds",
        "Finished jobs from the first claim to the end (training, evaluation, publishing).",
        labels=["status"],
    )
    duration = Job.finished_at - Job.started_at
    finished = [Job.started_at.is_not(None), Job.finished_at.is_not(None)]
    for status, buckets, total in _histograms(session, duration, finished, JOB_DURATION_BUCKETS, Job.status):
        metric.add_metric([status], buckets, total)
    return metric


def _training(session: Session) -> Iterator[Metric]:
    """Tokens trained and training seconds of every published version, by method.

    Two counters rather than a per-job rate: their ratio over any window is the throughput, weighted
    by tokens, and each scrape reads two JSON fields per version once (not once per bucket).
    """
    tokens_total = CounterMetricFamily(
        "neuroplast_trained_tokens",
        "Tokens (padding excluded) the published versions were trained on.",
        labels=["method"],
    )
    seconds_total = CounterMetricFamily(
        "neuroplast_training_seconds",
        "Seconds their trainers spent training; tokens per second = the ratio of the two.",
        labels=["method"],
    )
    tokens = Version.metrics["trained_tokens"].as_float()
    seconds = Version.metrics["seconds"].as_float()
    rows = session.execute(
        select(Lineage.method_type, func.sum(tokens), func.sum(seconds))
        .join(Lineage, Lineage.pk == Version.lineage_pk)
        .group_by(Lineage.method_type)
    ).all()
    for method, trained, spent in rows:
        tokens_total.add_metric([method], trained or 0.0)
        seconds_total.add_metric([method], spent or 0.0)
    yield tokens_total
    yield seconds_total


def _verdicts(session: Session) -> Metric:
    counts = dict(
        session.execute(select(Report.verdict, func.count()).group_by(Report.verdict)).tuples().all()
    )
    metric = CounterMetricFamily(
        "neuroplast_health_reports",
        "Health reports (gates and health checks) by verdict.",
        labels=["verdict"],
    )
    for verdict in dict.fromkeys([*VERDICTS, *counts]):
        metric.add_metric([verdict], counts.get(verdict, 0))
    return metric


def _histograms(
    session: Session,
    value: ColumnElement[Any],
    where: Sequence[ColumnElement[bool]],
    bounds: tuple[float, ...],
    group: QueryableAttribute[Any] | None = None,
) -> list[tuple[Any, list[tuple[str, float]], float]]:
    """Histograms whose buckets SQL counts (`sum(value <= bound)` per bound), one per `group` value.

    Returns (group value, cumulative buckets ending in +Inf, sum of values) per group.
    """
    value = cast(value, Float)
    columns = [
        func.count(),
        func.coalesce(func.sum(value), 0.0),
        *(func.coalesce(func.sum(case((value <= bound, 1), else_=0)), 0) for bound in bounds),
    ]
    if group is None:
        rows = [(None, *session.execute(select(*columns).where(*where)).one())]
    else:
        rows = [tuple(row) for row in session.execute(select(group, *columns).where(*where).group_by(group))]
    histograms = []
    for key, count, total, *cumulative in rows:
        buckets = [(floatToGoString(bound), n) for bound, n in zip(bounds, cumulative, strict=True)]
        histograms.append((key, [*buckets, ("+Inf", count)], float(total)))
    return histograms
