"""Per-tenant quotas: unfinished jobs at once, and the gateway's request rate (a token bucket).

Both answer 429 with `retry-after`, which the openai SDK honours (research/platform.md 1.1).
"""

import math
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import ApiError
from service.models import Job, Tenant
from service.services.files import ACTIVE_STATUSES

# A job keeps its slot at least as long as a trainer process takes to start and train a few steps.
JOB_RETRY_AFTER_SECONDS = 30


def check_active_jobs(session: Session, tenant: Tenant, limit: int) -> None:
    """Raise a 429 when the tenant already has `limit` jobs that have not finished."""
    active = session.scalar(
        select(func.count(Job.pk)).where(Job.tenant_pk == tenant.pk, Job.status.in_(ACTIVE_STATUSES))
    )
    if (active or 0) >= limit:
        raise ApiError(
            429,
            f"Tenant '{tenant.name}' has {active} unfinished jobs, the most allowed at once; "
            "retry when one has finished.",
            code="too_many_jobs",
            headers={"retry-after": str(JOB_RETRY_AFTER_SECONDS)},
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
