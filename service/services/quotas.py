"""Per-tenant quotas on every resource a tenant can make, and the gateway's request rate.

Each quota is a `Settings` field (`max_<what>`, env `NEUROPLAST_MAX_<WHAT>`) applied to every
tenant alike; docs/security.md lists them with their defaults. Going over one answers 429
`quota_exceeded` naming the quota, before anything is written. The rate limit is a token bucket
answering 429 with `retry-after`, which the openai SDK honours.
"""

import math
import time
from collections.abc import Callable

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from service.errors import ApiError
from service.models import (
    File,
    HealthCheck,
    HealthCheckSchedule,
    Job,
    Lineage,
    Tenant,
    WebhookEndpoint,
)
from service.settings import Settings
from trainers.contracts.statuses import HealthCheckStatus, JobStatus

# A job keeps its slot at least as long as a trainer process takes to start and train a few steps.
JOB_RETRY_AFTER_SECONDS = 30


def _counted(model: type, *where: ColumnElement[bool]) -> Select[int]:
    return select(func.count()).select_from(model).where(*where)


# Quota (the Settings field holding its limit) -> (what it counts, the tenant's use: a query on its pk).
_USAGE: dict[str, tuple[str, Callable[[int], Select[int]]]] = {
    "max_active_jobs": (
        "unfinished jobs",
        lambda tenant: _counted(Job, Job.tenant_pk == tenant, Job.status.in_(JobStatus.active())),
    ),
    "max_active_health_checks": (
        "unfinished health checks",
        lambda tenant: _counted(
            HealthCheck, HealthCheck.tenant_pk == tenant, HealthCheck.status.in_(HealthCheckStatus.active())
        ),
    ),
    "max_files": ("training files", lambda tenant: _counted(File, File.tenant_pk == tenant)),
    "max_file_bytes": (
        "bytes of training files",
        lambda tenant: select(func.coalesce(func.sum(File.bytes), 0)).where(File.tenant_pk == tenant),
    ),
    "max_lineages": ("lineages", lambda tenant: _counted(Lineage, Lineage.tenant_pk == tenant)),
    "max_schedules": (
        "health-check schedules",
        lambda tenant: _counted(HealthCheckSchedule, HealthCheckSchedule.tenant_pk == tenant),
    ),
    "max_webhook_endpoints": (
        "webhook endpoints",
        lambda tenant: _counted(
            WebhookEndpoint, WebhookEndpoint.tenant_pk == tenant, WebhookEndpoint.deleted_at.is_(None)
        ),
    ),
}
QUOTAS = tuple(_USAGE)


def check_quota(session: Session, settings: Settings, tenant: Tenant, quota: str, adding: int = 1) -> None:
    """Raise a 429 naming `quota` when `adding` more would take the tenant over it.

    Args:
        session: The request's session.
        settings: Where the quota's limit is set.
        tenant: Whose use is counted.
        quota: A name from QUOTAS, which is also the Settings field holding the limit.
        adding: How much the request adds (1 for a resource, the size for `max_file_bytes`).
    """
    noun, usage = _USAGE[quota]
    limit: int = getattr(settings, quota)
    in_use = session.scalar(usage(tenant.pk)) or 0
    if in_use + adding <= limit:
        return
    unfinished = quota in ("max_active_jobs", "max_active_health_checks")
    advice = "retry when one has finished" if unfinished else "delete some first"
    raise ApiError(
        429,
        f"Quota {quota} reached: tenant '{tenant.name}' has {in_use} {noun} and may have at most "
        f"{limit} (NEUROPLAST_{quota.upper()}); {advice}, or ask the operator to raise it.",
        code="quota_exceeded",
        headers={"retry-after": str(JOB_RETRY_AFTER_SECONDS)} if unfinished else None,
    )


class RateLimiter:
    """A token bucket per tenant: `rate` requests per second on average, up to `burst` at once.

    Kept in the API process's memory: each API replica enforces the rate on its own.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, when counted)

    def take(self, tenant: str) -> None:
        """Spend one token of `tenant`'s bucket, or raise a 429 saying when the next one is due."""
        now = time.monotonic()
        tokens, counted = self._buckets.get(tenant, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise ApiError(
                429,
                f"Rate limit reached: {self.rate:g} requests per second (bursts of {self.burst}).",
                code="rate_limit_exceeded",
                headers={"retry-after": str(wait)},
            )
        self._buckets[tenant] = (tokens - 1.0, now)
