"""What a job leaves in the database beside its status: events and checkpoints from its trainer's
protocol lines, its retention summary, its version row."""

import csv
import io
import secrets
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Checkpoint, Job, JobEvent, Lineage, Version
from service.services.jobs import add_event
from trainers.contracts.lines import Checkpoint as LineCheckpoint
from trainers.contracts.lines import Completed, Evaluation, Line, Message, Metrics, Started
from trainers.contracts.statuses import VersionStatus

__all__ = ["METRICS_COLUMNS", "candidate_version", "metrics_csv", "record_line", "retention_message"]

# OpenAI's result file: one row per metrics step, an empty cell where nothing was measured.
METRICS_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


def record_line(session: Session, job: Job, line: Line) -> None:
    """A trainer's line as the job's event (and, for a checkpoint, its row)."""
    data = asdict(line)
    match line:
        case Metrics():
            message = f"Step {line.step}/{line.total_steps}: training loss={line.train_loss:.4f}"
            if line.valid_loss is not None:
                message += f", validation loss={line.valid_loss:.4f}"
            measured = {name: value for name, value in data.items() if value is not None}
            add_event(session, job, message, type="metrics", data=measured)
        case Evaluation():
            message = (
                f"Step {line.step}: earlier jobs' recall min-ACC={line.min_acc:.3f}, "
                f"WC-ACC={line.wc_acc:.3f}, windowed forgetting={line.windowed_forgetting:.3f}, "
                f"forgetting since the job's start={line.forgetting:.3f}"
            )
            add_event(session, job, message, type="metrics", data=data)
        case LineCheckpoint():
            session.add(
                Checkpoint(
                    id=f"ftckpt-{secrets.token_hex(12)}",
                    job_pk=job.pk,
                    step_number=line.step,
                    path=line.path,
                    metrics={name: value for name, value in data.items() if name != "path"},
                )
            )
            measured = {name: value for name, value in data.items() if value is not None}
            add_event(session, job, f"Checkpoint saved at step {line.step}.", data=measured)
        case Started():
            origin = f", resuming from step {line.resumed_from_step}" if line.resumed_from_step else ""
            processes = f"{line.processes} process{'es' if line.processes > 1 else ''}"
            add_event(
                session,
                job,
                f"Training started: {line.total_steps} steps over {line.examples} examples "
                f"on {processes} ({line.backend}, {line.precision}){origin}.",
                data=data,
            )
        case Completed():
            add_event(session, job, f"Training completed after {line.steps} steps.", data=data)
        case Message():
            add_event(session, job, line.message, level=line.level)
        case _:  # an evaluator's line has no place in a trainer's log
            add_event(session, job, f"Unexpected {line.kind} line from the trainer.", level="warn")


def metrics_csv(session: Session, job: Job) -> str:
    """The job's metrics as OpenAI's result file: `METRICS_COLUMNS`, one row per reported step
    (the last report of a step, should a resumed attempt report it again)."""
    query = select(JobEvent.data).where(JobEvent.job_pk == job.pk, JobEvent.type == "metrics")
    by_step = {
        data["step"]: data
        for data in session.scalars(query.order_by(JobEvent.pk))
        if data is not None and "train_loss" in data  # not a continual evaluation's event
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for step in sorted(by_step):
        data = by_step[step]
        values = (
            step,
            data["train_loss"],
            data.get("train_mean_token_accuracy"),
            data.get("valid_loss"),
            data.get("valid_mean_token_accuracy"),
        )
        writer.writerow("" if value is None else value for value in values)
    return out.getvalue()


def retention_message(scores: dict[str, Any] | None, entries: int) -> str:
    if scores is None:
        return f"Retention measured ({entries} entries); this job has no probes of its own."
    shown = {
        "recall": scores["recall_exact"],
        "recognition": scores["recognition"],
        "held-out loss": scores["held_out_loss"],
    }
    parts = [f"{name} {value:.3f}" for name, value in shown.items() if value is not None]
    return f"Retention measured ({entries} entries); on this job's probes: {', '.join(parts) or 'no probes'}."


def candidate_version(lineage: Lineage, job: Job, path: str, manifest: dict[str, Any]) -> Version:
    # A candidate until the health gate (service.services.gate) promotes or rejects it. The
    # serving tier (docs/serving.md) then loads and warms up a promoted one before flipping the alias.
    return Version(
        lineage_pk=lineage.pk,
        number=job.version_number,
        parent_number=job.parent_version,
        job_id=job.id,
        status=VersionStatus.CANDIDATE,
        path=path,
        metrics=manifest.get("metrics", {}),
    )
