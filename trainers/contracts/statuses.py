"""The states of jobs, health checks, versions and webhook deliveries, and their groups.

Stored in the database as their string values and shown as such over REST; compare and assign
the members, never bare strings (a `StrEnum` member equals its value, so rows read back as plain
strings compare equal).
"""

from enum import StrEnum

__all__ = ["DeliveryStatus", "HealthCheckStatus", "JobStatus", "VersionStatus"]


class JobStatus(StrEnum):
    """A fine-tuning job's state (OpenAI's `fine_tuning.job.status`, plus `evaluating`)."""

    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    EVALUATING = "evaluating"  # trained; its version is being probed and gated
    PAUSED = "paused"  # by its owner; keeps its checkpoints and is not claimed until resumed
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def working(cls) -> tuple["JobStatus", ...]:
        """Held by a worker's lease (health checks use the same two)."""
        return (cls.RUNNING, cls.EVALUATING)

    @classmethod
    def active(cls) -> tuple["JobStatus", ...]:
        """Not finished: the job holds a quota slot and later jobs of its lineage wait for it."""
        return (cls.VALIDATING_FILES, cls.QUEUED, *cls.working(), cls.PAUSED)

    @classmethod
    def terminal(cls) -> tuple["JobStatus", ...]:
        """Finished, for good."""
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELLED)


class HealthCheckStatus(StrEnum):
    """A health check's state; workers lease checks like jobs."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @classmethod
    def active(cls) -> tuple["HealthCheckStatus", ...]:
        """Not finished: the check holds a quota slot, and its schedule skips runs until it ends."""
        return (cls.QUEUED, cls.RUNNING)


class VersionStatus(StrEnum):
    """A published version's place in its lineage."""

    CANDIDATE = "candidate"  # published; the gate has not decided yet
    PROMOTED = "promoted"  # served under the lineage's name
    REJECTED = "rejected"  # the gate found rot; served only when promoted with `force`
    RETIRED = "retired"  # promoted once, replaced since


class DeliveryStatus(StrEnum):
    """A webhook delivery's state."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its endpoint was deleted first
