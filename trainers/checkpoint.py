"""Checkpoints of a running job: trainable weights, optimizer, scheduler, RNG, step, memory.

Layout, under `output_dir/checkpoints/`:

    step-000050/
      pytorch_model/          DeepSpeed: trainable weights only + the ZeRO optimizer shards
      scheduler.bin           learning-rate schedule
      random_states_<rank>.pkl
      memory/                 the method's state (`save_memory`)
      trainer_state.json      step, trained tokens, last reported metrics

A checkpoint is written under a temporary name and renamed when complete, so a half-written
one is never read; only the newest `KEEP` are kept. Frozen base weights are left out
(`exclude_frozen_parameters`): a checkpoint's size is the adapter's plus its optimizer state.

A checkpoint may come back from a remote artifact store, so loading one never runs code: every
pickle is read as tensors and plain data only (`load_checkpoint`), and a folder is a checkpoint only
when its own name says so (DeepSpeed's `latest` file is never read: accelerate names the tag).
"""

import json
import os
import pickle
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from deepspeed.runtime.fp16.loss_scaler import LossScaler
from deepspeed.runtime.zero.config import ZeroStageEnum
from deepspeed.utils.tensor_fragment import fragment_address

from trainers.interface import ContinualMethod

__all__ = [
    "KEEP",
    "TrainState",
    "UnsafeCheckpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

KEEP = 2
_NAME = re.compile(r"step-\d{6}")
# The classes besides tensors and containers in what ZeRO-2 saves (its optimizer shards), found
# with `torch.serialization.get_unsafe_globals_in_checkpoint`: plain records, none runs code.
DEEPSPEED_GLOBALS = [ZeroStageEnum, LossScaler, fragment_address]


class UnsafeCheckpoint(Exception):
    """A checkpoint file holds objects other than tensors and plain data; it was not loaded."""


@dataclass
class TrainState:
    """Counters the loop carries across a resume.

    Attributes:
        step: Optimizer steps done.
        trained_tokens: Tokens (padding excluded) of all rows trained on so far.
        replayed_tokens: Those of them in rows the method replayed from earlier jobs.
        train_loss: The last reported training loss, None before the first report.
        train_mean_token_accuracy: The last reported training token accuracy.
        valid_loss: The last reported loss on a validation batch (None: no validation file).
        valid_mean_token_accuracy: The last reported token accuracy on a validation batch.
        full_valid_loss: The loss on the whole validation file, measured at the last step.
        full_valid_mean_token_accuracy: The token accuracy on the whole validation file.
    """

    step: int = 0
    trained_tokens: int = 0
    replayed_tokens: int = 0
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None

    def checkpoint_metrics(self) -> dict[str, float | None]:
        """The metrics a checkpoint line carries (OpenAI's checkpoint `metrics`, less `step`)."""
        return {
            name: value
            for name, value in asdict(self).items()
            if name not in ("step", "trained_tokens", "replayed_tokens")
        }


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    if not checkpoints_dir.exists():
        return None
    complete = sorted(path for path in checkpoints_dir.iterdir() if _is_checkpoint(path))
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
        for old in sorted(p for p in checkpoints_dir.iterdir() if _is_checkpoint(p))[:-KEEP]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, method: ContinualMethod, path: Path) -> TrainState:
    """Restore everything `save_checkpoint` wrote, after `accelerator.prepare`.

    Raises:
        UnsafeCheckpoint: A file of the checkpoint would have built other objects than tensors,
            plain data and `DEEPSPEED_GLOBALS` (a pickle that runs code, say); nothing ran.
    """
    try:
        with _weights_only():
            # Not strict: the checkpoint holds the trainable weights only, the frozen ones stay as loaded.
            accelerator.load_state(str(path), load_module_strict=False)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"checkpoint {path.name} holds objects other than tensors and plain data; refused to load it"
        ) from error
    method.load_memory(path / "memory")
    return TrainState(**json.loads((path / "trainer_state.json").read_text()))


def _is_checkpoint(path: Path) -> bool:
    # A real folder of ours: no other name, and no link that would lead out of the job's folder.
    return _NAME.fullmatch(path.name) is not None and path.is_dir() and not path.is_symlink()


@contextmanager
def _weights_only() -> Iterator[None]:
    """Every `torch.load` inside reads tensors, plain data and `DEEPSPEED_GLOBALS` only.

    DeepSpeed's engine calls `torch.load(weights_only=False)` and takes no option to change it;
    torch's `TORCH_FORCE_WEIGHTS_ONLY_LOAD` overrides even that explicit argument, on every call.
    """
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(DEEPSPEED_GLOBALS):
            yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
