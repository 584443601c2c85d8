"""A job's metrics logged to its experiment trackers (OpenAI's job `integrations`): Weights &
Biases, MLflow, TensorBoard, each through its own package, from the main process only.

Where each writes comes from the worker's environment, as the package reads it: `WANDB_API_KEY`,
`WANDB_MODE` (`offline`: a run file under the version's `wandb/` folder only, for `wandb sync`
later); `MLFLOW_TRACKING_URI` (a server, or a database such as `sqlite:///path`; unset: a SQLite
store in the version's folder, `mlflow.db`, rather than the trainer's working directory, where
every job would share one; MLflow 3 refuses a `file:` folder unless `MLFLOW_ALLOW_FILE_STORE=true`).
TensorBoard writes event files into the version's `tensorboard/` folder.

A job that starts again (resumed after a pause, or after its worker died) continues its runs
rather than opening new ones: the W&B run's id is the job's id (`resume="allow"`), the MLflow run
is the one tagged with the job's id, and TensorBoard's folder is the same. Steps the job trains
again after its checkpoint are logged again (W&B keeps only steps past its last one).
"""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainers.contracts.integrations import Integration

__all__ = ["Trackers"]


class Trackers:
    """The open runs of a job's integrations.

    Args:
        integrations: The job's integrations (none: nothing is logged).
        job_id: Names a TensorBoard run without a name, and is tagged on every run.
        config: The run's configuration (the job's hyperparameters and method).
        folder: Where trackers that write files keep them (the version's output folder).
    """

    def __init__(
        self, integrations: list[Integration], job_id: str, config: dict[str, Any], folder: Path
    ) -> None:
        self._log: list[Callable[[dict[str, float], int], None]] = []
        self._close: list[Callable[[], None]] = []
        for integration in integrations:
            start = {"wandb": _wandb, "mlflow": _mlflow, "tensorboard": _tensorboard}[integration.type]
            log, close = start(integration, job_id, config, folder)
            self._log.append(log)
            self._close.append(close)

    def log(self, metrics: dict[str, float | int | None], step: int) -> None:
        """Log the measured values of a metrics line at `step` (None: not measured, left out)."""
        measured = {name: float(value) for name, value in metrics.items() if value is not None}
        for log in self._log:
            log(measured, step)

    def close(self) -> None:
        """End every run."""
        for close in self._close:
            close()


def _wandb(integration: Integration, job_id: str, config: dict[str, Any], folder: Path) -> tuple[Any, Any]:
    import wandb

    (folder / "wandb").mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=integration.project,
        name=integration.name,
        entity=integration.entity,
        tags=[*integration.tags, job_id],
        config=config,
        dir=str(folder / "wandb"),
        id=job_id,
        resume="allow",
    )
    return (lambda metrics, step: run.log(metrics, step=step)), run.finish


def _mlflow(integration: Integration, job_id: str, config: dict[str, Any], folder: Path) -> tuple[Any, Any]:
    # The client, not mlflow's module-level run: no process-wide tracking URI or active run to set.
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(integration.project)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(integration.project)
    earlier = client.search_runs([experiment_id], filter_string=f"tags.job_id = '{job_id}'", max_results=1)
    if earlier:  # the job started before: go on with its run
        run_id = earlier[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        tags = {**dict.fromkeys(integration.tags, ""), "job_id": job_id}
        run_id = client.create_run(experiment_id, run_name=integration.name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param(name, str(value)[:250]) for name, value in config.items()])

    def log(metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(name, value, now, step) for name, value in metrics.items()])

    return log, lambda: client.set_terminated(run_id)


def _tensorboard(
    integration: Integration, job_id: str, config: dict[str, Any], folder: Path
) -> tuple[Any, Any]:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package; tensorboardX has the same API
        from tensorboardX import SummaryWriter

    writer = SummaryWriter(
        log_dir=str(folder / "tensorboard" / integration.project / (integration.name or job_id))
    )
    writer.add_text("config", str(config))

    def log(metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)
        writer.flush()

    return log, writer.close
