"""Follow a job: a progress bar fed by its `metrics` events, its messages printed as they come."""

import time
from typing import Any

from tqdm import tqdm

from service.client import Client
from trainers.contracts.statuses import JobStatus

TERMINAL = JobStatus.terminal()


def follow_job(
    client: Client, job_id: str, poll_seconds: float = 1.0, label: str | None = None
) -> dict[str, Any]:
    """Show a job's progress until it ends; returns the final job object."""
    seen: set[str] = set()
    bar = tqdm(total=None, desc=label or job_id, unit="step", dynamic_ncols=True)
    try:
        while True:
            job = client.get_job(job_id)
            for event in reversed(client.list_events(job_id)):
                if event["id"] not in seen:
                    seen.add(event["id"])
                    _show(bar, event)
            if job["status"] in TERMINAL:
                return job
            time.sleep(poll_seconds)
    finally:
        bar.close()


def _show(bar: tqdm, event: dict[str, Any]) -> None:
    data = event["data"] or {}
    if event["type"] != "metrics" or "train_loss" not in data:  # messages, continual evaluations
        bar.write(f"  {event['message']}")
        return
    bar.total = data["total_steps"]
    bar.n = data["step"]
    bar.set_postfix(loss=f"{data['train_loss']:.3f}")
