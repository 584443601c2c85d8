"""Database tables. Public ids are prefixed strings; `pk` integers give a stable order for paging."""

import time
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from service.schemas.lineages import EvaluationConfig, HealthConfig
from trainers.contracts.methods import Method


def now() -> int:
    """Unix seconds, the time unit of every `*_at` field the API returns."""
    return int(time.time())


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"))
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(default=now)
    revoked_at: Mapped[int | None] = mapped_column(default=None)
    # `admin` manages tenants and keys; `member` works inside its tenant (docs/security.md).
    scope: Mapped[str] = mapped_column(String(16), default="member")
    name: Mapped[str | None] = mapped_column(String(64), default=None)


class File(Base):
    __tablename__ = "files"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)  # 64-bit on Postgres too (migration 0006)
    rows: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    # The training-data screen's share of junk rows (`eval.data_screen`), scored on upload.
    junk_ratio: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[int] = mapped_column(default=now)


class Lineage(Base):
    __tablename__ = "lineages"
    __table_args__ = (UniqueConstraint("tenant_pk", "name"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(Text)
    method_type: Mapped[str] = mapped_column(String(32))
    method_config: Mapped[dict[str, Any]]  # every field, resolved when the lineage was created
    # Probe sizes and continual-evaluation cadence (`evaluation_config`).
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The health gate, panel thresholds and training-data screen (`health_config`).
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    promoted_version: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[int] = mapped_column(default=now)

    # The JSON columns, typed: read through these, never through the columns themselves.
    @property
    def method(self) -> Method:
        """The lineage's method and its config."""
        return Method.resolve(self.method_type, self.method_config)

    @property
    def evaluation_config(self) -> EvaluationConfig:
        """How each job of the lineage is probed."""
        return EvaluationConfig(**self.evaluation)

    @property
    def health_config(self) -> HealthConfig:
        """The lineage's health gate, panel thresholds and training-data screen."""
        return HealthConfig(**self.health)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("lineage_pk", "number"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    number: Mapped[int]
    parent_number: Mapped[int | None]
    job_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[int] = mapped_column(default=now)
    # When this version last became the promoted one; rollback goes to the newest before the current.
    promoted_at: Mapped[float | None] = mapped_column(Float, default=None)
    # The health report of the gate that promoted or rejected this version.
    report_id: Mapped[str | None] = mapped_column(String(64), default=None)


class Leased:
    """Columns of queued work that workers claim: a lease held by `owner`, proven by `lease_token`."""

    status: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[int | None] = mapped_column(default=None)
    finished_at: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The lease: the worker holding `lease_token` may write until `lease_expires_at`.
    owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_token: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    attempts: Mapped[int] = mapped_column(default=0)


class Job(Leased, Base):
    __tablename__ = "jobs"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), default=None)
    # File ids of its results (the metrics CSV), once it succeeded.
    result_files: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # Its experiment trackers (`trainers.contracts.integrations.Integration`, as dicts).
    integrations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    hyperparameters: Mapped[dict[str, Any]]
    # Its training objective (OpenAI's job `method`; `trainers.contracts.objectives.Objective`):
    # None for jobs created before objectives, which are supervised.
    objective: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    seed: Mapped[int]
    suffix: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[int] = mapped_column(default=now)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)  # past 2**31 in big jobs
    version_number: Mapped[int | None] = mapped_column(default=None)
    # The version it trains from (None: the base model), set when it first starts, and why; or the
    # version it named itself (`model: "<lineage>@<N>"`), kept from its creation.
    parent_version: Mapped[int | None] = mapped_column(default=None)
    requested_parent: Mapped[int | None] = mapped_column(default=None)
    parent_reason: Mapped[str | None] = mapped_column(Text, default=None)
    junk_ratio: Mapped[float | None] = mapped_column(Float, default=None)  # of its training file
    # Trainer processes: as asked for (None: the worker's default), then as its first attempt ran;
    # a resumed job keeps the count, since its checkpoints hold one optimizer shard per process.
    processes: Mapped[int | None] = mapped_column(default=None)
    # The job's probes (`eval.probes.Probes`), drawn from its file when it was created; loaded on use.
    probes: Mapped[dict[str, Any] | None] = deferred(mapped_column(JSON, default=None))


class JobEvent(Base):
    __tablename__ = "job_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk"), index=True)
    created_at: Mapped[int] = mapped_column(default=now)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk"), index=True)
    step_number: Mapped[int]
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[int] = mapped_column(default=now)


class RetentionScore(Base):
    """One version's scores on one job's probes: an entry R[version][job] (version 0: the base model)."""

    __tablename__ = "retention_scores"
    __table_args__ = (UniqueConstraint("lineage_pk", "version", "job_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    version: Mapped[int]
    job_id: Mapped[str] = mapped_column(String(64))
    scores: Mapped[dict[str, Any]]
    created_at: Mapped[int] = mapped_column(default=now)


class HealthCheck(Leased, Base):
    """An evaluation of one version, queued for workers like jobs; its result is kept here."""

    __tablename__ = "health_checks"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    version: Mapped[int]
    suites: Mapped[list[Any]]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[int] = mapped_column(default=now)
    report_id: Mapped[str | None] = mapped_column(String(64), default=None)
    schedule_id: Mapped[str | None] = mapped_column(String(64), default=None)


class WebhookEndpoint(Base):
    """A tenant's receiver of signed events; `secret` (`whsec_<base64>`) signs every delivery."""

    __tablename__ = "webhook_endpoints"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    event_types: Mapped[list[Any]]
    created_at: Mapped[int] = mapped_column(default=now)
    deleted_at: Mapped[int | None] = mapped_column(default=None)


class WebhookEvent(Base):
    """The outbox: one event, written in the transaction of the state change it reports."""

    __tablename__ = "webhook_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[int] = mapped_column(default=now)


class WebhookDelivery(Base):
    """One event on its way to one endpoint: pending until delivered or out of attempts."""

    __tablename__ = "webhook_deliveries"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("webhook_events.pk"), index=True)
    endpoint_pk: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.pk"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    last_attempt_at: Mapped[int | None] = mapped_column(default=None)
    response_status: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(default=now)


class PanelResult(Base):
    """One version's item scores on one health-panel suite (version 0: the base model)."""

    __tablename__ = "panel_results"
    __table_args__ = (UniqueConstraint("lineage_pk", "version", "suite"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    version: Mapped[int]
    suite: Mapped[str] = mapped_column(String(32))
    scores: Mapped[list[Any]]
    details: Mapped[dict[str, Any]]
    created_at: Mapped[int] = mapped_column(default=now)


class Report(Base):
    """A health report: a version against its reference, suite by suite, with the verdict."""

    __tablename__ = "reports"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    version: Mapped[int]
    verdict: Mapped[str] = mapped_column(String(8))
    body: Mapped[dict[str, Any]]
    path: Mapped[str] = mapped_column(Text)  # report.json and report.html in the artifact store
    created_at: Mapped[int] = mapped_column(default=now)


class HealthCheckSchedule(Base):
    """A cron schedule of health checks of a lineage's promoted version."""

    __tablename__ = "health_check_schedules"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(ForeignKey("tenants.pk"), index=True)
    lineage_pk: Mapped[int] = mapped_column(ForeignKey("lineages.pk"), index=True)
    cron: Mapped[str] = mapped_column(String(128))
    suites: Mapped[list[Any]]
    # The next due run; claimed by moving it forward in the same transaction that queues the check.
    next_run_at: Mapped[float] = mapped_column(Float, index=True)
    last_run_at: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[int] = mapped_column(default=now)
