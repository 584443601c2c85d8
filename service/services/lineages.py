"""Lineages (continually adapted models) and their immutable versions."""

import secrets
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from trainers.registry import MethodConfigError, resolve_method_config

from service.errors import ApiError, not_found
from service.models import Lineage, Tenant, Version
from service.schemas.lineages import LineageCreate
from service.services.paging import page


def create_lineage(session: Session, tenant: Tenant, request: LineageCreate) -> Lineage:
    """Create a lineage after checking its base model path and method config."""
    _check_base_model(request.base_model)
    try:
        config = resolve_method_config(request.method.type, request.method.config)
    except MethodConfigError as error:
        raise ApiError(400, str(error), param=error.param, code="invalid_method") from error
    lineage = Lineage(
        id=f"lin-{secrets.token_hex(12)}",
        tenant_pk=tenant.pk,
        name=request.name,
        base_model=request.base_model,
        method_type=request.method.type,
        method_config=config,
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


def _check_base_model(base_model: str) -> None:
    if not base_model.startswith(("/", "./", "../", "~")):
        return  # a hub id: resolved by the trainer, which may have it cached
    path = Path(base_model).expanduser()
    if not (path / "config.json").is_file():
        raise ApiError(
            400,
            f"No model found at '{base_model}' (expected a folder with config.json).",
            param="base_model",
            code="invalid_base_model",
        )
