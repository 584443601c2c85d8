"""What a worker asks the evaluator process (`python -m eval.run`) after a job, and for a health check.

After job N trains version N (still in its staging folder), the evaluator scores:

- version N on the probes of every job with a published version and of job N itself: row N of
  the retention matrix;
- the parent version on job N's probes: R[parent][N], the score before training (forward transfer);
- the base model (version 0) on job N's probes: the baseline b[N].

A health check's `retention` suite scores the checked version on the probes of every job up to it.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.models import HealthCheck, Job, Lineage, RetentionScore, Version

__all__ = ["PROBES_FILE", "earlier_probes", "health_check_spec", "record_scores", "retention_spec"]

PROBES_FILE = "probes.json"  # in each version's folder, beside adapter/ and memory/


def earlier_probes(session: Session, lineage: Lineage, below: int) -> dict[str, str]:
    """Probe files of the jobs whose versions (numbered below `below`) are published, oldest first."""
    query = (
        select(Version)
        .where(Version.lineage_pk == lineage.pk, Version.number < below)
        .order_by(Version.number)
    )
    return {
        version.job_id: str(Path(version.path) / PROBES_FILE)
        for version in session.scalars(query)
        if (Path(version.path) / PROBES_FILE).exists()  # versions made before probes existed have none
    }


def retention_spec(session: Session, lineage: Lineage, job: Job, staging: Path) -> dict[str, Any]:
    """The evaluator's spec for job N's version, staged in `staging` (see the module docstring)."""
    own = {job.id: str(staging / PROBES_FILE)}
    evaluations = [
        {
            "version": job.version_number,
            "version_dir": str(staging),
            "probes": earlier_probes(session, lineage, job.version_number or 0) | own,
        },
        {"version": 0, "version_dir": None, "probes": own},
    ]
    if job.parent_version is not None:
        parent = session.scalars(
            select(Version).where(Version.lineage_pk == lineage.pk, Version.number == job.parent_version)
        ).one()
        evaluations.insert(1, {"version": parent.number, "version_dir": parent.path, "probes": own})
    return {"base_model": lineage.base_model, "evaluations": evaluations, "serving": None}


def health_check_spec(session: Session, lineage: Lineage, check: HealthCheck) -> dict[str, Any]:
    """The evaluator's spec for a health check of one published version."""
    version = session.scalars(
        select(Version).where(Version.lineage_pk == lineage.pk, Version.number == check.version)
    ).one()
    probes = earlier_probes(session, lineage, version.number + 1)
    evaluation = {"version": version.number, "version_dir": version.path, "probes": probes}
    return {"base_model": lineage.base_model, "evaluations": [evaluation], "serving": None}


def record_scores(session: Session, lineage: Lineage, lines: list[dict[str, Any]]) -> None:
    """Store the evaluator's `scores` lines as retention entries, replacing earlier ones of a retry."""
    for line in lines:
        session.execute(
            delete(RetentionScore).where(
                RetentionScore.lineage_pk == lineage.pk,
                RetentionScore.version == line["version"],
                RetentionScore.job_id == line["job_id"],
            )
        )
        session.add(
            RetentionScore(
                lineage_pk=lineage.pk, version=line["version"], job_id=line["job_id"], scores=line["scores"]
            )
        )
