"""A lineage's retention matrix R[version][job], assembled from the scores workers stored.

After each job the worker's evaluator scores the new version on every earlier job's probes and
its own, the parent version and the base model on the new job's probes (`service.worker.evaluation`);
each score is one `RetentionScore` row. Rows of the matrix are versions 1..N; column j is the job
that produced version j, so R[j-1][j] is that job's score just before it trained (forward transfer).
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from eval.metrics import continual_metrics, forward_transfer
from service.models import Lineage, RetentionScore, Version
from service.schemas.lineages import RetentionJob, RetentionPublic, RetentionSummary

__all__ = ["HIGHER_IS_BETTER", "SCORES", "retention"]

SCORES = ("recall_exact", "recall_rouge_l", "recognition", "held_out_loss")
HIGHER_IS_BETTER = ("recall_exact", "recall_rouge_l", "recognition")


def retention(session: Session, lineage: Lineage) -> RetentionPublic:
    """The lineage's matrices, baselines and summaries, over the versions published so far."""
    versions = list(
        session.scalars(select(Version).where(Version.lineage_pk == lineage.pk).order_by(Version.number))
    )
    stored = session.scalars(select(RetentionScore).where(RetentionScore.lineage_pk == lineage.pk))
    by_entry = {(row.version, row.job_id): row.scores for row in stored}
    numbers = [version.number for version in versions]
    jobs = [version.job_id for version in versions]

    def entry(version: int, job_id: str, score: str) -> float | None:
        value = by_entry.get((version, job_id), {}).get(score)
        return None if value is None else float(value)

    matrices = {
        score: [[entry(number, job_id, score) for job_id in jobs] for number in numbers] for score in SCORES
    }
    baseline = {score: [entry(0, job_id, score) for job_id in jobs] for score in SCORES}
    return RetentionPublic(
        lineage=lineage.name,
        versions=numbers,
        jobs=[RetentionJob(job_id=job, version=number) for job, number in zip(jobs, numbers, strict=True)],
        baseline=baseline,
        matrices=matrices,
        summary={score: _summary(matrices[score], baseline[score]) for score in HIGHER_IS_BETTER},
    )


def _summary(matrix: list[list[float | None]], baseline: list[float | None]) -> RetentionSummary:
    """The CL metrics of one matrix; None where entries they need are missing (e.g. no probes)."""
    empty: dict[str, Any] = dict.fromkeys(RetentionSummary.model_fields)
    if not matrix:
        return RetentionSummary(**empty)
    try:
        metrics = continual_metrics(matrix)
    except ValueError:  # an entry on or below the diagonal was never measured
        return RetentionSummary(**empty | {"forward_transfer": forward_transfer(matrix, baseline)})
    return RetentionSummary(
        average_accuracy=metrics.average_accuracy,
        backward_transfer=metrics.backward_transfer,
        forgetting=metrics.forgetting,
        forward_transfer=forward_transfer(matrix, baseline),
    )
