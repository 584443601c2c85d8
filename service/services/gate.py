"""The health gate: whether a job's new version is promoted or rejected.

It runs in the worker once the evaluator's scores are stored (`service.worker.evaluation`): it
builds the version's health report against its reference (`service.services.reports`) and
promotes the version unless the report's verdict is `rot` (docs/health.md).
"""

from sqlalchemy.orm import Session

from service.models import Job, Lineage, Tenant, Version
from service.services.lineages import promote_version
from service.services.reports import build_report
from service.services.webhooks import emit, version_data
from service.storage.store import ArtifactStore
from trainers.contracts.statuses import VersionStatus

__all__ = ["gate"]


def gate(
    session: Session,
    lineage: Lineage,
    job: Job,
    version: Version,
    store: ArtifactStore,
    evaluated: bool = True,
) -> VersionStatus:
    """The health gate on a job's new version: `promoted`, or `rejected` with a `rot` verdict.

    Without a gate (`health.gate: false`) the version is promoted with no report. A version
    whose evaluation failed (`evaluated` False) is rejected with no report: nothing shows it
    healthy; a forced promote can still serve it.
    """
    config = lineage.health_config
    if not config.gate:
        promote_version(session, lineage, version)
        return VersionStatus.PROMOTED
    if not evaluated:
        version.status = VersionStatus.REJECTED
        emit(session, lineage.tenant_pk, "lineage.version.rejected", version_data(lineage, version))
        return VersionStatus.REJECTED
    tenant = session.get_one(Tenant, lineage.tenant_pk)
    suites = ["retention", *config.gate_suites]
    report = build_report(
        session, tenant, lineage, version.number, suites, f"gate of {job.id}", store, gating=True
    )
    version.report_id = report.id
    if report.verdict == "rot":
        version.status = VersionStatus.REJECTED
        emit(session, lineage.tenant_pk, "lineage.version.rejected", version_data(lineage, version))
        return VersionStatus.REJECTED
    promote_version(session, lineage, version)
    return VersionStatus.PROMOTED
