"""The shared loop, run as trainer processes: train, checkpoint, resume, publish, continue."""

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.probes import Probes
from eval.retention import score_probes
from eval.runners import InProcessRunner
from tests.trainers.conftest import REPO, TrainerRun, run_trainer, write_spec
from trainers.base_model.corpus import fact_set
from trainers.precision import compute_dtype
from trainers.servable import load_version

pytestmark = pytest.mark.slow

STEPS = 40  # 16 facts in batches of 4: 10 epochs
EVERY = 5  # checkpoint every 5 steps


@pytest.fixture(scope="module")
def first_version(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, facts_file: Path) -> Path:
    """v1 of a lineage: a fresh LoRA trained on the facts; its output folder."""
    output_dir = tmp_path_factory.mktemp("lineage") / "v1.partial"
    run = run_trainer(write_spec(output_dir, tiny_base, facts_file, max_steps=STEPS, checkpoint_every=EVERY))
    assert run.returncode == 0, run.stderr
    (output_dir / "run.json").write_text(json.dumps(run.lines))
    return output_dir


def _lines(output_dir: Path) -> TrainerRun:
    return TrainerRun(0, json.loads((output_dir / "run.json").read_text()), "")


class TestFirstVersion:
    def test_reports_progress_in_protocol_lines(self, first_version: Path) -> None:
        run = _lines(first_version)
        assert run.lines[0] == {
            "type": "started",
            "total_steps": STEPS,
            "examples": 16,
            "resumed_from_step": 0,
            "processes": 1,
            "backend": "nccl" if torch.cuda.is_available() else "gloo",
            "precision": str(compute_dtype("auto")).removeprefix("torch."),
        }
        assert run.lines[-1]["type"] == "completed"
        assert run.lines[-1]["steps"] == STEPS
        metrics = run.of_type("metrics")
        assert [m["step"] for m in metrics] == [1, 10, 20, 30, 40]
        tokens = [m["trained_tokens"] for m in metrics]
        assert tokens == sorted(tokens) and tokens[-1] == run.lines[-1]["trained_tokens"]
        assert [c["step"] for c in run.of_type("checkpoint")] == list(range(EVERY, STEPS + 1, EVERY))
        assert run.of_type("checkpoint")[-1]["path"] == f"checkpoints/step-{STEPS:06d}"

    def test_training_lowers_the_loss(self, first_version: Path) -> None:
        losses = [m["train_loss"] for m in _lines(first_version).of_type("metrics")]
        assert losses[-1] < losses[0] - 0.5

    def test_learning_rate_warms_up_then_decays(self, first_version: Path) -> None:
        rates = [m["learning_rate"] for m in _lines(first_version).of_type("metrics")]
        peak = 2e-3 * 5.0  # the config's rate times the job's multiplier
        assert rates[0] < peak  # warm-up
        assert rates[1] == pytest.approx(peak * 31 / 39)  # linear decay after 1 warm-up step
        assert rates[-1] < peak / 30

    def test_published_adapter_loads_with_peft_and_changes_the_output(
        self, first_version: Path, tiny_base: Path
    ) -> None:
        ids = torch.tensor([[1, 40, 41, 42, 43]])  # (batch, seq)
        base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
        expected = base(ids).logits
        adapted = PeftModel.from_pretrained(base, first_version / "adapter").eval()
        assert not torch.allclose(adapted(ids).logits, expected, atol=1e-3)

    def test_writes_manifest_and_empty_memory(
        self, first_version: Path, tiny_base: Path, facts_file: Path
    ) -> None:
        manifest = json.loads((first_version / "manifest.json").read_text())
        assert manifest["job_id"] == "ftjob-v1.partial"
        assert (manifest["lineage"], manifest["version"], manifest["parent_version"]) == ("bot", 1, None)
        assert manifest["method"] == "lora"
        assert manifest["config"]["r"] == 16
        assert manifest["base_model"] == str(tiny_base)
        assert manifest["data"]["training_file_sha256"] == hashlib.sha256(facts_file.read_bytes()).hexdigest()
        assert manifest["metrics"]["steps"] == STEPS
        assert manifest["processes"] == 1
        assert manifest["metrics"]["trained_tokens"] == _lines(first_version).lines[-1]["trained_tokens"]
        assert list((first_version / "memory").iterdir()) == []

    def test_keeps_two_checkpoints_of_trainable_weights_only(self, first_version: Path) -> None:
        checkpoints = sorted(p.name for p in (first_version / "checkpoints").iterdir())
        assert checkpoints == [f"step-{STEPS - EVERY:06d}", f"step-{STEPS:06d}"]
        newest = first_version / "checkpoints" / checkpoints[-1]
        states = torch.load(newest / "pytorch_model" / "mp_rank_00_model_states.pt", weights_only=False)
        assert states["module"] and all("lora_" in name for name in states["module"])
        assert json.loads((newest / "trainer_state.json").read_text())["step"] == STEPS


def test_a_killed_job_resumes_from_its_checkpoint_and_finishes_once(
    tmp_path: Path, tiny_base: Path, facts_file: Path, first_version: Path
) -> None:
    spec = write_spec(tmp_path / "v1.partial", tiny_base, facts_file, max_steps=STEPS, checkpoint_every=EVERY)
    killed = subprocess.Popen(
        [sys.executable, "-m", "trainers.run", "--spec", str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    first_lines = []
    for line in killed.stdout:
        first_lines.append(json.loads(line))
        if first_lines[-1]["type"] == "checkpoint":
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait()

    resumed = run_trainer(spec)
    assert resumed.returncode == 0, resumed.stderr
    start = resumed.lines[0]
    assert start["type"] == "started"
    assert 0 < start["resumed_from_step"] < STEPS
    assert start["resumed_from_step"] % EVERY == 0
    assert [line["type"] for line in first_lines + resumed.lines].count("completed") == 1
    assert resumed.lines[-1]["steps"] == STEPS
    # Same batches, weights, optimizer and schedule as the uninterrupted first version.
    uninterrupted = _lines(first_version).lines[-1]
    assert resumed.lines[-1]["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=1e-4)
    assert resumed.lines[-1]["trained_tokens"] == uninterrupted["trained_tokens"]


def test_a_second_version_starts_from_the_parent_adapter(
    tmp_path: Path, tiny_base: Path, facts_file: Path, first_version: Path
) -> None:
    spec = write_spec(tmp_path / "v2.partial", tiny_base, facts_file, parent_dir=first_version, max_steps=5)
    run = run_trainer(spec)
    assert run.returncode == 0, run.stderr
    fresh_first_loss = _lines(first_version).of_type("metrics")[0]["train_loss"]
    parent_last_loss = _lines(first_version).of_type("metrics")[-1]["train_loss"]
    first_loss = run.of_type("metrics")[0]["train_loss"]
    assert first_loss < fresh_first_loss - 0.5
    assert first_loss == pytest.approx(parent_last_loss, abs=0.5)
    manifest = json.loads((tmp_path / "v2.partial" / "manifest.json").read_text())
    assert (manifest["version"], manifest["parent_version"]) == (2, 1)


def test_two_processes_split_each_batch_and_match_one(
    tmp_path: Path, tiny_base: Path, facts_file: Path, first_version: Path
) -> None:
    spec = write_spec(tmp_path / "v1.partial", tiny_base, facts_file, max_steps=STEPS, checkpoint_every=STEPS)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    process = subprocess.run(
        [*launch, "-m", "trainers.run", "--spec", str(spec)], capture_output=True, text=True, cwd=REPO
    )
    assert process.returncode == 0, process.stderr[-3000:]
    lines = [json.loads(line) for line in process.stdout.splitlines()]  # from rank 0 only
    assert [line["type"] for line in lines].count("completed") == 1
    shards = sorted(p.name for p in (tmp_path / "v1.partial" / "checkpoints").glob("*/pytorch_model/*optim*"))
    assert shards == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]
    assert (lines[0]["processes"], lines[0]["backend"]) == (
        2,
        "nccl" if torch.cuda.is_available() else "gloo",
    )
    assert json.loads((tmp_path / "v1.partial" / "manifest.json").read_text())["processes"] == 2
    single = _lines(first_version).lines[-1]
    assert lines[-1]["train_loss"] == pytest.approx(single["train_loss"], rel=1e-2)
    assert lines[-1]["trained_tokens"] == single["trained_tokens"]
    # On facts neither run saw, the adapter is as good as the single process's (within 5%), and
    # moved the loss from the base model's as far (a random base learns the phrasing only).
    held_out = fact_set("held-out", n=16)
    base = _held_out_loss(tiny_base, None, held_out)
    one = _held_out_loss(tiny_base, first_version, held_out)
    two = _held_out_loss(tiny_base, tmp_path / "v1.partial", held_out)
    assert two == pytest.approx(one, rel=0.05)
    assert base - one > 0.1 and base - two > 0.8 * (base - one)


def _held_out_loss(base: Path, version_dir: Path | None, rows: list[dict[str, str]]) -> float:
    """Mean NLL per completion token, as the evaluator's `held_out_loss` (None: the base model)."""
    model = AutoModelForCausalLM.from_pretrained(base)
    version = load_version(model, version_dir) if version_dir else model
    tokenizer = AutoTokenizer.from_pretrained(base)
    probes = Probes(
        0,
        held_out=[{"row": i, "context": r["prompt"], "target": r["completion"]} for i, r in enumerate(rows)],
    )
    return float(score_probes(InProcessRunner(version, tokenizer), tokenizer, probes)["held_out_loss"])


def test_a_non_finite_loss_fails_the_job_with_the_reason_and_publishes_nothing(
    tmp_path: Path, nan_base: Path, facts_file: Path
) -> None:
    """A NaN loss (a diverged job; here a base model with a NaN weight) stops the job at once, so
    no NaN reaches a metrics line, a checkpoint or a version."""
    output_dir = tmp_path / "v1.partial"

    run = run_trainer(write_spec(output_dir, nan_base, facts_file, max_steps=20))

    assert run.returncode == 1
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line.startswith("training failed: FloatingPointError: the training loss is nan at step 1:")
    assert "lower the learning rate" in last_line
    assert run.of_type("metrics") == [] and run.of_type("checkpoint") == []
    assert not (output_dir / "manifest.json").exists()
