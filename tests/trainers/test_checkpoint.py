"""Checkpoints as the artifact store hands them back: a resume reads tensors and plain data only."""

import shutil
from pathlib import Path

import pytest
import torch

from tests.trainers.conftest import run_trainer, write_spec
from trainers.checkpoint import latest_checkpoint

STEPS = 10
EVERY = 5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, facts_file: Path) -> Path:
    """A complete checkpoint at step 5 of a job that stopped there."""
    output_dir = tmp_path_factory.mktemp("first") / "v1.partial"
    run = run_trainer(write_spec(output_dir, tiny_base, facts_file, max_steps=EVERY, checkpoint_every=EVERY))
    assert run.returncode == 0, run.stderr
    return output_dir / "checkpoints" / f"step-{EVERY:06d}"


class CreatesFile:
    """Unpickling this runs code: it creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _resume_spec(tmp_path: Path, checkpoint: Path, tiny_base: Path, facts_file: Path) -> Path:
    """A job of STEPS steps whose output folder holds a copy of `checkpoint`, as a restore leaves it."""
    output_dir = tmp_path / "v1.partial"
    shutil.copytree(checkpoint, output_dir / "checkpoints" / checkpoint.name)
    return write_spec(output_dir, tiny_base, facts_file, max_steps=STEPS, checkpoint_every=EVERY)


@pytest.mark.slow
def test_a_checkpoint_resumes(tmp_path: Path, checkpoint: Path, tiny_base: Path, facts_file: Path) -> None:
    """Everything DeepSpeed and accelerate saved loads as data (the ZeRO classes allowed by name)."""
    run = run_trainer(_resume_spec(tmp_path, checkpoint, tiny_base, facts_file))
    assert run.returncode == 0, run.stderr
    assert run.lines[0]["resumed_from_step"] == EVERY
    assert run.lines[-1]["type"] == "completed" and run.lines[-1]["steps"] == STEPS


@pytest.mark.slow
@pytest.mark.parametrize(
    "poisoned", ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"]
)
def test_a_checkpoint_that_would_run_code_is_refused(
    tmp_path: Path, checkpoint: Path, tiny_base: Path, facts_file: Path, poisoned: str
) -> None:
    """DeepSpeed reads these files with `weights_only=False`; a pickle in them must not run."""
    spec = _resume_spec(tmp_path, checkpoint, tiny_base, facts_file)
    marker = tmp_path / "code-ran"
    shard = spec.parent / "checkpoints" / checkpoint.name / "pytorch_model" / poisoned
    states = torch.load(shard, weights_only=False)  # our own file, written by the fixture's trainer
    states["extra"] = CreatesFile(marker)
    torch.save(states, shard)

    run = run_trainer(spec)

    assert not marker.exists()
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "training failed: UnsafeCheckpoint: checkpoint step-000005 holds objects other than tensors "
        "and plain data; refused to load it"
    )
    assert run.of_type("completed") == []


def test_only_real_folders_named_as_checkpoints_count(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "step-000005").mkdir()
    (checkpoints / "step-000009").symlink_to(outside)  # a link out of the job's folder
    (checkpoints / "step-000007\n").mkdir()  # `$` of a regex would match before the newline
    (checkpoints / "step-000008").write_text("")  # a file, not a folder

    assert latest_checkpoint(checkpoints) == checkpoints / "step-000005"
