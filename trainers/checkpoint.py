"""Checkpoints of a running job: trainable weights, optimizer, scheduler, RNG, step, memory.

Layout, under `output_dir/checkpoints/`:

    step-000050/
      pytorch_model/          DeepSpeed: trainable weights only + the ZeRO optimizer shards
      scheduler.bin           learning-rate schedule
      random_states_<rank>.pkl
      memory/                 the method's state (`save_memory`)
      trainer_state.json      step, trained tokens, last reported loss

A checkpoint is written under a temporary name and renamed when complete, so a half-written
one is never read; only the newest `KEEP` are kept. Frozen base weights are left out
(`exclude_frozen_parameters`): a checkpoint's size is the adapter's plus its optimizer state.
"""

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import Accelerator

from trainers.interface import ContinualMethod

__all__ = ["KEEP", "TrainState", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

KEEP = 2
_NAME = re.compile(r"^step-(\d{6})$")


@dataclass
class TrainState:
    """Counters the loop carries across a resume.

    Attributes:
        step: Optimizer steps done.
        trained_tokens: Tokens (padding excluded) of all rows trained on so far.
        train_loss: The last reported training loss, None before the first report.
    """

    step: int = 0
    trained_tokens: int = 0
    train_loss: float | None = None


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    if not checkpoints_dir.exists():
        return None
    complete = sorted(path for path in checkpoints_dir.iterdir() if _NAME.match(path.name))
    return complete[-1] if complete else None


def save_checkpoint(
    accelerator: Accelerator, method: ContinualMethod, state: TrainState, checkpoints_dir: Path
) -> Path:
    """Write a checkpoint of the current step; every process calls this.

    Returns:
        The checkpoint's folder.
    """
    final = checkpoints_dir / f"step-{state.step:06d}"
    tmp = checkpoints_dir / f".tmp-step-{state.step:06d}"
    if accelerator.is_main_process:
        for leftover in checkpoints_dir.glob(".tmp-*"):  # from a run killed while saving
            shutil.rmtree(leftover)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), exclude_frozen_parameters=True)
    accelerator.wait_for_everyone()  # every process has written its optimizer shard
    if accelerator.is_main_process:
        (tmp / "memory").mkdir()
        method.save_memory(tmp / "memory")
        (tmp / "trainer_state.json").write_text(json.dumps(asdict(state)) + "\n")
        tmp.rename(final)
        for old in sorted(p for p in checkpoints_dir.iterdir() if _NAME.match(p.name))[:-KEEP]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, method: ContinualMethod, path: Path) -> TrainState:
    """Restore everything `save_checkpoint` wrote, after `accelerator.prepare`."""
    # Not strict: the checkpoint holds the trainable weights only, the frozen ones stay as loaded.
    accelerator.load_state(str(path), load_module_strict=False)
    method.load_memory(path / "memory")
    return TrainState(**json.loads((path / "trainer_state.json").read_text()))
