"""Health reports: a version against its reference, suite by suite, from the scores workers stored.

`build_report` reads the panel item scores (`PanelResult`) of the version and of its reference,
and the retention entries, compares them with `eval.stats` (Hedges' g, paired bootstrap,
verdicts under the lineage's thresholds), and writes the report as JSON and as a self-contained
HTML page (`eval.report`) into the artifact store. The retention suite compares the recall flags
of earlier jobs' probes (not the version's own job's, which it was trained on) item by item.
"""

import json
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from eval.report import render_html
from eval.stats import Thresholds, compare, overall_verdict
from service.errors import not_found
from service.models import Lineage, PanelResult, Report, RetentionScore, Tenant, Version, now
from service.schemas.lineages import HealthConfig
from service.services.retention import retention
from service.storage.store import ArtifactStore
from trainers.contracts.statuses import VersionStatus

__all__ = ["DEFAULT_THRESHOLDS", "build_report", "get_report", "reference_version"]

# Some forgetting of earlier jobs is what continual learning trades for learning the new one;
# the gate rejects only a large effect on them (Cohen's "large" is 0.8).
DEFAULT_THRESHOLDS = {"retention": Thresholds(rot=0.8, warn=0.3)}


def reference_version(session: Session, lineage: Lineage, number: int) -> int:
    """What version `number` is compared with: its parent, or the base model (0) for the first."""
    parent = session.scalar(
        select(Version.parent_number).where(Version.lineage_pk == lineage.pk, Version.number == number)
    )
    return parent or 0


def build_report(
    session: Session,
    tenant: Tenant,
    lineage: Lineage,
    version: int,
    suites: list[str],
    origin: str,
    store: ArtifactStore,
    gating: bool = False,
) -> Report:
    """Compare `version` with its reference on `suites`, store and write the report.

    Args:
        session: Open transaction; the report row is added to it.
        tenant: The lineage's tenant.
        lineage: The lineage.
        version: The version checked.
        suites: Panel suite names and/or `retention`.
        origin: What asked for it, e.g. `gate of ftjob-…` or `health check hc-…`.
        store: The artifact store (a remote one uploads the files after the commit).
        gating: This report decides a promotion: a `rot` verdict rejects the version.
    """
    config = lineage.health_config
    reference = reference_version(session, lineage, version)
    comparisons: dict[str, dict[str, Any]] = {}
    details: dict[str, Any] = {}
    for suite in suites:
        pair = _retention_pair(session, lineage, version, reference) if suite == "retention" else None
        if suite != "retention":
            mine, theirs = (
                _panel(session, lineage, version, suite),
                _panel(session, lineage, reference, suite),
            )
            if mine is None or theirs is None:
                continue
            details[suite] = mine.details
            pair = (mine.scores, theirs.scores)
        if pair is None or len(pair[0]) < 2:
            continue  # nothing to compare (e.g. retention of a lineage's first job)
        thresholds = _thresholds(config, suite)
        comparison = compare(pair[0], pair[1], thresholds, seed=version)
        comparisons[suite] = {**comparison.__dict__, "items": len(pair[0])}
    verdict = overall_verdict([c["verdict"] for c in comparisons.values()])
    report_id = f"report-{secrets.token_hex(12)}"
    matrix = retention(session, lineage)
    body = {
        "id": report_id,
        "object": "health_report",
        "lineage": lineage.name,
        "version": version,
        "reference_version": reference,
        "origin": origin,
        "verdict": verdict,
        "gate": (VersionStatus.REJECTED if verdict == "rot" else VersionStatus.PROMOTED) if gating else None,
        "suites": comparisons,
        "details": details,
        "thought_skipping": details.get("reasoning", {}).get("thought_skipping"),
        "retention": {
            "versions": matrix.versions,
            "jobs": [job.job_id for job in matrix.jobs],
            "matrix": matrix.matrices["recall_exact"],
            "recognition": matrix.matrices["recognition"],
        },
        "trend": _trend(session, lineage, version),
        "created_at": now(),
    }
    path = store.write_report(
        tenant.name, lineage.name, report_id, json.dumps(body, indent=2), render_html(body)
    )
    report = Report(
        id=report_id,
        tenant_pk=tenant.pk,
        lineage_pk=lineage.pk,
        version=version,
        verdict=verdict,
        body=body,
        path=path,
    )
    session.add(report)
    return report


def get_report(session: Session, tenant: Tenant, report_id: str) -> Report:
    """The tenant's report with this id, or a 404."""
    report = session.scalar(select(Report).where(Report.id == report_id, Report.tenant_pk == tenant.pk))
    if report is None:
        raise not_found("report", report_id, "report_id")
    return report


def _thresholds(config: HealthConfig, suite: str) -> Thresholds:
    if suite in config.thresholds:
        chosen = config.thresholds[suite]  # type: ignore[index]
        return Thresholds(rot=chosen.rot, warn=chosen.warn)
    return DEFAULT_THRESHOLDS.get(suite, Thresholds())


def _panel(session: Session, lineage: Lineage, version: int, suite: str) -> PanelResult | None:
    return session.scalar(
        select(PanelResult).where(
            PanelResult.lineage_pk == lineage.pk, PanelResult.version == version, PanelResult.suite == suite
        )
    )


def _retention_pair(
    session: Session, lineage: Lineage, version: int, reference: int
) -> tuple[list[float], list[float]] | None:
    """Recall flags of earlier jobs' probes under the version and its reference, item by item."""
    own_job = session.scalar(
        select(Version.job_id).where(Version.lineage_pk == lineage.pk, Version.number == version)
    )
    rows = session.scalars(
        select(RetentionScore).where(
            RetentionScore.lineage_pk == lineage.pk, RetentionScore.version.in_((version, reference))
        )
    )
    flags: dict[tuple[int, str], list[bool]] = {
        (row.version, row.job_id): row.scores.get("recall_flags") or [] for row in rows
    }
    mine: list[float] = []
    theirs: list[float] = []
    for (number, job_id), candidate in sorted(flags.items()):
        if number != version or job_id == own_job or (reference, job_id) not in flags:
            continue
        before = flags[(reference, job_id)]
        if len(before) == len(candidate):
            mine += [float(flag) for flag in candidate]
            theirs += [float(flag) for flag in before]
    return (mine, theirs) if mine else None


def _trend(session: Session, lineage: Lineage, up_to: int) -> dict[str, Any]:
    """Mean item score of each suite for every version up to `up_to` that was scored."""
    results = session.scalars(
        select(PanelResult)
        .where(PanelResult.lineage_pk == lineage.pk, PanelResult.version <= up_to)
        .order_by(PanelResult.version)
    )
    means: dict[str, dict[int, float]] = {}
    for result in results:
        means.setdefault(result.suite, {})[result.version] = sum(result.scores) / max(1, len(result.scores))
    versions = sorted({version for by_version in means.values() for version in by_version})
    return {
        "versions": versions,
        "suites": {
            suite: [by_version.get(v) for v in versions] for suite, by_version in sorted(means.items())
        },
    }
