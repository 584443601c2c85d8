"""Lineages (continually adapted models) and their immutable versions."""

import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import ApiError, not_found
from service.models import Lineage, Tenant, Version
from service.schemas.lineages import LINEAGE_NAME, LineageCreate
from service.services.paging import page
from service.services.paths import find_base_model, resolve_base_model
from service.services.quotas import check_quota
from service.services.webhooks import emit, version_data
from service.settings import Settings
from trainers.contracts.methods import Method, MethodConfigError
from trainers.contracts.statuses import VersionStatus


def create_lineage(session: Session, settings: Settings, tenant: Tenant, request: LineageCreate) -> Lineage:
    """Create a lineage after checking its base model (a local one: under an allowed root) and method."""
    try:
        config = Method.resolve(request.method.type, request.method.config).fields
    except MethodConfigError as error:
        raise ApiError(400, str(error), param=error.param, code="invalid_method") from error
    base_model = resolve_base_model(request.base_model, settings.base_model_roots, settings.hub_models)
    served_by_vllm = settings.serving and request.method.type not in settings.native_backend_methods
    if served_by_vllm and config.get("r", 0) > settings.vllm_max_lora_rank:
        raise ApiError(
            400,
            f"r={config['r']} is above the serving tier's largest LoRA rank, {settings.vllm_max_lora_rank} "
            "(NEUROPLAST_VLLM_MAX_LORA_RANK): vLLM could never load this lineage's versions.",
            param=f"method.{request.method.type}.r",
            code="invalid_method",
        )
    lineage = Lineage(
        id=f"lin-{secrets.token_hex(12)}",
        tenant_pk=tenant.pk,
        name=request.name,
        base_model=base_model,
        method_type=request.method.type,
        method_config=config,
        evaluation=request.evaluation.model_dump(),
        health=request.health.model_dump(),
    )
    try:
        with session.begin_nested():
            session.add(lineage)
    except IntegrityError as error:
        raise ApiError(
            409,
            f"A lineage named '{request.name}' already exists.",
            param="name",
            code="lineage_exists",
        ) from error
    return lineage


def lineage_for_job(
    session: Session, settings: Settings, tenant: Tenant, model: str, suffix: str | None
) -> Lineage:
    """The lineage a job's `model` names: a lineage of the tenant's, else a base model the service
    knows (`find_base_model`), for which the lineage named `suffix` (else after the base model) is
    created with the default method, or reused when it already exists on that base model.

    Raises:
        ApiError: 404 on `model` when it names neither; 400 on `suffix` when it is no lineage name;
            409 on `suffix` when that lineage exists on another base model.
    """
    lineage = session.scalar(select(Lineage).where(Lineage.tenant_pk == tenant.pk, Lineage.name == model))
    if lineage is not None:
        return lineage
    base_model = find_base_model(model, settings.base_model_roots, settings.hub_models)
    if base_model is None:
        raise not_found("lineage or base model", model, "model")
    name = suffix if suffix is not None else re.sub(r"[^a-z0-9._-]", "-", model.rpartition("/")[2].lower())
    if not re.fullmatch(LINEAGE_NAME, name):
        raise ApiError(
            400,
            f"suffix '{name}' names the new lineage: lowercase letters, digits, '.', '_', '-', "
            "at most 63, starting with a letter or digit.",
            param="suffix",
            code="invalid_value",
        )
    lineage = session.scalar(select(Lineage).where(Lineage.tenant_pk == tenant.pk, Lineage.name == name))
    if lineage is not None and lineage.base_model == base_model:
        return lineage
    if lineage is not None:
        raise ApiError(
            409,
            f"Lineage '{name}' already exists on another base model ({lineage.base_model}); "
            "choose another suffix, or name the lineage as the job's model.",
            param="suffix",
            code="lineage_exists",
        )
    check_quota(session, settings, tenant, "max_lineages")
    return create_lineage(session, settings, tenant, LineageCreate(name=name, base_model=base_model))


def get_lineage(session: Session, tenant: Tenant, name: str, param: str | None = None) -> Lineage:
    """The tenant's lineage with this name, or a 404."""
    lineage = session.scalar(select(Lineage).where(Lineage.tenant_pk == tenant.pk, Lineage.name == name))
    if lineage is None:
        raise not_found("lineage", name, param)
    return lineage


def list_lineages(
    session: Session, tenant: Tenant, after: str | None, limit: int
) -> tuple[list[Lineage], bool]:
    """The tenant's lineages, newest first."""
    return page(session, Lineage, Lineage.tenant_pk == tenant.pk, after, limit)


def list_versions(session: Session, lineage: Lineage) -> list[Version]:
    """Every published version of a lineage, newest first."""
    query = select(Version).where(Version.lineage_pk == lineage.pk).order_by(Version.number.desc())
    return list(session.scalars(query))


def latest_version(session: Session, lineage: Lineage) -> int | None:
    """The newest published version number, or None before the first job succeeded."""
    return session.scalar(select(func.max(Version.number)).where(Version.lineage_pk == lineage.pk))


@dataclass(frozen=True)
class Parent:
    """What a lineage's next job trains from, and why.

    Attributes:
        version: The version, or None for the base model.
        reason: Why, in words (a job's first event when it starts).
        passes_over: Whether newer versions than `version` exist (rejected or rolled back).
    """

    version: int | None
    reason: str
    passes_over: bool = False


def next_parent(session: Session, lineage: Lineage, requested: int | None = None) -> Parent:
    """What the lineage's next job trains from: the version it names (`model: "<lineage>@<N>"`),
    else the promoted version, else the base model. The reason names every newer version passed
    over and why (rejected by the health gate, with its report; rolled back), so a lineage never
    changes parent silently."""
    if requested is not None:
        return Parent(
            requested, f"Training from v{requested}, the version the job named ({lineage.name}@{requested})."
        )
    parent = lineage.promoted_version
    newer = session.scalars(
        select(Version)
        .where(Version.lineage_pk == lineage.pk, Version.number > (parent or 0))
        .order_by(Version.number.desc())
    ).all()
    if not newer:
        why = "the lineage's promoted version" if parent else "the lineage's first version"
        return Parent(parent, f"Training from {f'v{parent}' if parent else 'the base model'}: {why}.")
    passed_over = "; ".join(_passed_over(version) for version in newer)
    if parent is None:
        return Parent(None, f"Training from the base model: no version is promoted ({passed_over}).", True)
    return Parent(parent, f"Training from v{parent}, the promoted version: {passed_over}.", True)


def parent_version(session: Session, lineage: Lineage, number: int, force: bool) -> Version:
    """Version `number` of the lineage, for a job to train from; a rejected one only with `force`.

    Raises:
        ApiError: 404 when there is no such version, 409 when the health gate rejected it.
    """
    version = _version(session, lineage, number, param="model")
    _unless_rejected(lineage, version, force, "pass force: true to train from it anyway")
    return version


def promote(session: Session, lineage: Lineage, number: int, force: bool = False) -> Version:
    """Make version `number` the one served under the lineage name (the swap happens in serving).

    A version the health gate rejected is promoted only with `force`.
    """
    version = _version(session, lineage, number)
    _unless_rejected(lineage, version, force, "promote it with force: true to serve it anyway")
    promote_version(session, lineage, version)
    return version


def rollback(session: Session, lineage: Lineage) -> Version:
    """Promote the version that was promoted before the current one."""
    query = (
        select(Version)
        .where(
            Version.lineage_pk == lineage.pk,
            Version.promoted_at.is_not(None),
            Version.number != lineage.promoted_version,
        )
        .order_by(Version.promoted_at.desc(), Version.number.desc())
    )
    previous = session.scalars(query).first()
    if previous is None:
        raise ApiError(
            409,
            f"Lineage '{lineage.name}' has no previously promoted version to roll back to.",
            code="no_previous_version",
        )
    promote_version(session, lineage, previous)
    return previous


def promote_version(session: Session, lineage: Lineage, version: Version) -> None:
    """Record `version` as the promoted one; the one it replaces is retired."""
    if lineage.promoted_version is not None and lineage.promoted_version != version.number:
        _version(session, lineage, lineage.promoted_version).status = VersionStatus.RETIRED
    version.status, version.promoted_at = VersionStatus.PROMOTED, time.time()
    lineage.promoted_version = version.number
    emit(session, lineage.tenant_pk, "lineage.version.promoted", version_data(lineage, version))


def _passed_over(version: Version) -> str:
    if version.status == VersionStatus.REJECTED and version.report_id:
        return f"v{version.number} was rejected by the health gate ({version.report_id})"
    if version.status == VersionStatus.REJECTED:
        return f"v{version.number} was rejected (its evaluation failed)"
    if version.status == VersionStatus.RETIRED:
        return f"v{version.number} was rolled back"
    return f"v{version.number} is {version.status}"


def _version(session: Session, lineage: Lineage, number: int, param: str = "version") -> Version:
    query = select(Version).where(Version.lineage_pk == lineage.pk, Version.number == number)
    version = session.scalar(query)
    if version is None:
        raise not_found("version", f"{lineage.name}@{number}", param)
    return version


def _unless_rejected(lineage: Lineage, version: Version, force: bool, remedy: str) -> None:
    """409 `version_rejected`, naming the report and the `remedy`, for a rejected version without `force`."""
    if version.status == VersionStatus.REJECTED and not force:
        raise ApiError(
            409,
            f"Version {lineage.name}@{version.number} was rejected by the health gate "
            f"(report {version.report_id}); {remedy}.",
            param="force",
            code="version_rejected",
        )
