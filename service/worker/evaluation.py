"""What a worker asks the evaluator process (`python -m trainers.evaluate`) after a job, and for a
health check, and how it stores the answers: retention entries and panel results (the health gate
that reads them is `service.services.gate`).

After job N trains version N (still in its staging folder), the evaluator scores:

- version N on the probes of every job with a published version and of job N itself: row N of
  the retention matrix; and the lineage's gate suites of the health panel;
- the parent version on job N's probes: R[parent][N], the score before training (forward
  transfer); and any gate suite the parent was never scored on (its reference for the gate);
- the base model (version 0) on job N's probes: the baseline b[N] (and the gate suites, when it
  is the reference of a lineage's first version).

A health check scores the checked version on the probes of every job up to it and on the panel
suites it names (and its reference on those it lacks).

Versions are named to the evaluator by their local copies (`ArtifactStore.local_version`): before
it builds a spec, the worker fetches what `needed_versions` lists, with no transaction open.

When the worker evaluates through serving (`through_gateway`), every published version the gateway
would serve is asked there as `<lineage>@<N>`, so its scores are those of what users are served;
the base model, and versions the gate rejected (which the gateway refuses), are loaded in the
evaluator as before.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.models import HealthCheck, Job, Lineage, PanelResult, RetentionScore, Version
from service.services.reports import reference_version
from service.storage.store import ArtifactStore
from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation, ServingTarget
from trainers.contracts.lines import Panel, Scores
from trainers.contracts.statuses import VersionStatus

__all__ = [
    "PROBES_FILE",
    "earlier_probes",
    "health_check_spec",
    "needed_versions",
    "new_panels",
    "record_panel",
    "record_scores",
    "retention_spec",
    "through_gateway",
]

PROBES_FILE = "probes.json"  # in each version's folder, beside adapter/ and memory/


def needed_versions(session: Session, lineage: Lineage, below: int) -> list[str]:
    """Locations of the versions numbered below `below`: a spec for version `below` (or, with
    `below` one more, a health check of it) reads their probes and its parent or reference."""
    query = select(Version.path).where(Version.lineage_pk == lineage.pk, Version.number < below)
    return list(session.scalars(query.order_by(Version.number)))


def earlier_probes(session: Session, lineage: Lineage, below: int, store: ArtifactStore) -> dict[str, str]:
    """Probe files of the jobs whose versions (numbered below `below`) are published, oldest first."""
    query = (
        select(Version)
        .where(Version.lineage_pk == lineage.pk, Version.number < below)
        .order_by(Version.number)
    )
    probes = {
        version.job_id: store.local_file(version.path, PROBES_FILE) for version in session.scalars(query)
    }
    # Versions made before probes existed have none.
    return {job_id: str(path) for job_id, path in probes.items() if path is not None}


def retention_spec(
    session: Session, lineage: Lineage, job: Job, staging: Path, store: ArtifactStore
) -> EvaluatorSpec:
    """The evaluator's spec for job N's version, staged in `staging` (see the module docstring)."""
    # A job queued before probes existed has none of its own.
    own = {job.id: str(staging / PROBES_FILE)} if job.probes is not None else {}
    config = lineage.health_config
    suites: list[str] = list(config.gate_suites) if config.gate else []
    number = job.version_number or 0
    earlier = earlier_probes(session, lineage, number, store)
    spec = EvaluatorSpec(
        lineage.base_model,
        [ModelEvaluation(number, str(staging), earlier | own, suites), ModelEvaluation(0, None, own)],
    )
    if job.parent_version is not None:
        parent = session.scalars(
            select(Version).where(Version.lineage_pk == lineage.pk, Version.number == job.parent_version)
        ).one()
        parent_dir = str(store.local_version(parent.path))
        spec.evaluations.insert(1, ModelEvaluation(parent.number, parent_dir, own))
    _add_reference_suites(session, lineage, spec, job.parent_version or 0, suites, store)
    return spec


def health_check_spec(
    session: Session, lineage: Lineage, check: HealthCheck, store: ArtifactStore
) -> EvaluatorSpec:
    """The evaluator's spec for a health check of one published version."""
    version = session.scalars(
        select(Version).where(Version.lineage_pk == lineage.pk, Version.number == check.version)
    ).one()
    probes = (
        earlier_probes(session, lineage, version.number + 1, store) if "retention" in check.suites else {}
    )
    suites = [suite for suite in check.suites if suite != "retention"]
    version_dir = str(store.local_version(version.path))
    spec = EvaluatorSpec(lineage.base_model, [ModelEvaluation(version.number, version_dir, probes, suites)])
    reference = reference_version(session, lineage, version.number)
    _add_reference_suites(session, lineage, spec, reference, suites, store)
    return spec


def through_gateway(session: Session, lineage: Lineage, spec: EvaluatorSpec, gateway: ServingTarget) -> None:
    """Ask `gateway` for every version of `spec` that it serves (see the module docstring)."""
    numbers = [evaluation.version for evaluation in spec.evaluations if evaluation.version]
    servable = set(
        session.scalars(
            select(Version.number).where(
                Version.lineage_pk == lineage.pk,
                Version.number.in_(numbers),
                Version.status != VersionStatus.REJECTED,
            )
        )
    )
    spec.serving = gateway
    for evaluation in spec.evaluations:
        if evaluation.version in servable:
            evaluation.served_model = f"{lineage.name}@{evaluation.version}"


def record_scores(session: Session, lineage: Lineage, lines: list[Scores]) -> None:
    """Store the evaluator's `scores` lines as retention entries, replacing earlier ones of a retry."""
    for line in lines:
        key = {"lineage_pk": lineage.pk, "version": line.version, "job_id": line.job_id}
        _replace(session, RetentionScore(**key, scores=line.scores), key)


def new_panels(session: Session, lineage: Lineage, lines: list[Panel]) -> list[Panel]:
    """The `panel` lines whose (version, suite) has no stored result yet: a version's panel scores
    are stored once, however many health checks ask for them."""
    return [line for line in lines if _new_panel(session, lineage, line)]


def record_panel(session: Session, lineage: Lineage, lines: list[Panel]) -> None:
    """Store the evaluator's `panel` lines (one version's item scores on one suite), replacing older ones."""
    for line in lines:
        key = {"lineage_pk": lineage.pk, "version": line.version, "suite": line.suite}
        _replace(session, PanelResult(**key, scores=line.scores, details=line.details), key)


def _add_reference_suites(
    session: Session,
    lineage: Lineage,
    spec: EvaluatorSpec,
    reference: int,
    suites: list[str],
    store: ArtifactStore,
) -> None:
    """Ask for the reference's scores on the suites it was never scored on."""
    scored = set(
        session.scalars(
            select(PanelResult.suite).where(
                PanelResult.lineage_pk == lineage.pk, PanelResult.version == reference
            )
        )
    )
    missing = [suite for suite in suites if suite not in scored]
    if not missing:
        return
    if (evaluation := spec.evaluation(reference)) is not None:
        evaluation.suites = sorted({*evaluation.suites, *missing})
        return
    directory = None
    if reference:
        location = session.scalars(
            select(Version.path).where(Version.lineage_pk == lineage.pk, Version.number == reference)
        ).one()
        directory = str(store.local_version(location))
    spec.evaluations.append(ModelEvaluation(reference, directory, {}, missing))


def _replace(session: Session, row: RetentionScore | PanelResult, key: dict[str, Any]) -> None:
    """Add `row` in place of any row of its table with the same `key` columns."""
    table = type(row)
    session.execute(delete(table).where(*(getattr(table, column) == value for column, value in key.items())))
    session.add(row)


def _new_panel(session: Session, lineage: Lineage, line: Panel) -> bool:
    stored = select(PanelResult.pk).where(
        PanelResult.lineage_pk == lineage.pk,
        PanelResult.version == line.version,
        PanelResult.suite == line.suite,
    )
    return session.scalar(stored) is None
