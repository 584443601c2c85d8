"""DPO in the shared loop: pairs render with loss on their outputs only, a dpo job measurably
raises the preferred outputs' log-probability margin over the non-preferred ones, and scores its
validation pairs with the same loss."""

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.jobs import job_spec
from tests.trainers.conftest import REPO, TrainerRun, run_trainer
from trainers.contracts.methods import Method
from trainers.contracts.objectives import Objective
from trainers.data import IGNORE_INDEX, Collator
from trainers.precision import compute_dtype
from trainers.preference import (
    PairCollator,
    PreferenceLoss,
    dpo_loss,
    load_preference_data,
    pair_sums,
    sequence_logps,
)
from trainers.servable import load_version
from trainers.validation import Scores

PAIRS = REPO / "examples" / "preferences-concise.jsonl"
# Questions the training pairs do not ask, answered in their two styles: (question, preferred, not);
# three prefer the concise answer, as the training pairs do, the last the rambling one.
VALIDATION_PAIRS = [
    (
        "What colour is the sky on a clear day?",
        "Blue.",
        "Well, the sky can look like many colours depending on the time of day and the weather, but "
        "on a clear day most people would agree that it is blue.",
    ),
    (
        "How many legs does a spider have?",
        "Eight.",
        "Spiders are fascinating creatures that people have studied for a very long time, and if you "
        "count carefully you will find that a spider has eight legs.",
    ),
    (
        "What is the opposite of hot?",
        "Cold.",
        "That is an interesting question, because temperature is a spectrum, but if you want the "
        "usual word for the opposite of hot, I would say it is cold.",
    ),
    (  # the other way round: a pair the job's training pushes the wrong way
        "Which planet do we live on?",
        "Let me think about this carefully. There are eight planets in our solar system, each quite "
        "different from the others, and the one we all live on is called Earth.",
        "Earth.",
    ),
]


def test_each_side_learns_only_its_output(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    row = json.loads(PAIRS.read_text().splitlines()[0])

    pair = load_preference_data(PAIRS, tokenizer, max_seq_len=512).rows[0]

    learned = tokenizer.decode([t for t in pair["labels"] if t != IGNORE_INDEX])
    other = tokenizer.decode([t for t in pair["non_preferred_labels"] if t != IGNORE_INDEX])
    assert learned.startswith(row["preferred_output"][0]["content"])
    assert other.startswith(row["non_preferred_output"][0]["content"])
    assert row["input"]["messages"][0]["content"] in tokenizer.decode(pair["input_ids"])
    assert row["input"]["messages"][0]["content"] not in learned


def test_held_out_pairs_and_pairs_cut_to_nothing_are_left_out(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    assert len(load_preference_data(PAIRS, tokenizer, 512, held_out_rows=[0, 3]).rows) == 6
    cut = load_preference_data(PAIRS, tokenizer, max_seq_len=8)  # the question alone is longer
    assert (len(cut.rows), cut.dropped) == (0, 8)


def test_the_loss_is_dpo() -> None:
    policy = torch.tensor([[-3.0, -5.0], [-4.0, -4.0]])
    reference = torch.tensor([[-4.0, -4.0], [-4.0, -4.0]])

    loss, rewards = dpo_loss(policy, reference, beta=0.5)

    # pair 1: beta * ((-3 + 4) - (-5 + 4)) = 1; pair 2: a tie, margin 0
    expected = (-math.log(1 / (1 + math.exp(-1.0))) + math.log(2)) / 2
    assert loss.item() == pytest.approx(expected)
    assert rewards.tolist() == [[0.5, -0.5], [0.0, 0.0]]


def test_the_loss_keeps_the_rewards_accuracy_and_margin_until_asked() -> None:
    loss = PreferenceLoss(beta=1.0)
    logits = torch.zeros(4, 2, 3)  # (2 pairs x 2 sides, seq, vocab): every loss token costs log 3
    batch = {
        "labels": torch.tensor([[IGNORE_INDEX, 1]] * 4),
        "reference_logps": torch.tensor([[-math.log(3) - 1, -math.log(3)], [0.0, 0.0]]),
        "replayed": torch.zeros(4, dtype=torch.bool),
    }

    loss(logits, batch)

    # pair 1: rewards (1, 0), margin 1; pair 2: rewards (-log 3, -log 3), margin 0 (not ahead)
    assert loss.rewards() == pytest.approx({"reward_accuracy": 0.5, "reward_margin": 0.5})
    assert loss.rewards() == {"reward_accuracy": 0.0, "reward_margin": 0.0}  # started over


def test_pairs_collate_side_by_side_ahead_of_replayed_rows() -> None:
    pair = {
        "input_ids": [1, 2, 3],
        "labels": [-100, 2, 3],
        "length": 3,
        "non_preferred_input_ids": [1, 2],
        "non_preferred_labels": [-100, 9],
        "non_preferred_length": 2,
        "reference_logps": [-1.0, -2.0],
    }
    replayed = {"input_ids": [5], "labels": [5], "length": 1, "replayed": True}

    batch = PairCollator(Collator(pad_token_id=0))([replayed, pair])

    assert batch["input_ids"].tolist() == [[1, 2, 3], [1, 2, 0], [5, 0, 0]]
    assert batch["replayed"].tolist() == [False, False, True]
    assert batch["reference_logps"].tolist() == [[-1.0, -2.0]]


def test_validation_pairs_sum_the_dpo_loss_and_the_pairs_ahead() -> None:
    logits = torch.zeros(4, 2, 3)  # (2 pairs x 2 sides, seq, vocab): every loss token costs log 3
    batch = {
        "labels": torch.tensor([[IGNORE_INDEX, 1]] * 4),
        "reference_logps": torch.tensor([[-math.log(3) - 1, -math.log(3)], [0.0, 0.0]]),
    }

    scores = Scores.from_sums(pair_sums(logits, batch, beta=1.0))

    # pair 1: rewards (1, 0), margin 1, ahead; pair 2: margin 0, a tie, not ahead
    assert scores.loss == pytest.approx((math.log(1 + math.exp(-1.0)) + math.log(2)) / 2)
    assert scores.accuracy == 0.5


def test_sequence_log_probabilities_sum_the_loss_tokens_only() -> None:
    logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens: each loss token costs log 4
    labels = torch.tensor([[IGNORE_INDEX, 2, 3]])
    assert sequence_logps(logits, labels).item() == pytest.approx(-2 * math.log(4))


def _dpo_job(
    output_dir: Path,
    base: Path,
    method: str,
    parent: Path | None,
    data: Path,
    steps: int,
    learning_rate_multiplier: float = 5.0,
    checkpoint_every: int | None = None,
    validation_file: Path | None = None,
) -> TrainerRun:
    """Run a job (dpo on the pairs, supervised on other data) to its end."""
    spec = job_spec(
        output_dir,
        base,
        data,
        steps=steps,
        method=Method.resolve(method),
        parent_dir=parent,
        job_id=f"ftjob-{output_dir.name}",
        batch_size=4,
        learning_rate_multiplier=learning_rate_multiplier,
        cache_dir=output_dir.parent / "cache",
        checkpoint_every=checkpoint_every,
        validation_file=validation_file,
    )
    if data == PAIRS:
        spec = dataclasses.replace(spec, objective=Objective("dpo", 0.1))
    output_dir.mkdir(parents=True, exist_ok=True)
    run = run_trainer(spec.write(output_dir / "spec.json"))
    assert run.returncode == 0, run.stderr
    assert run.lines[-1]["type"] == "completed"
    return run


@torch.no_grad()
def _margin(model: torch.nn.Module, base: Path) -> float:
    """Mean over the example's pairs of log pi(preferred) - log pi(non-preferred)."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = list(load_preference_data(PAIRS, tokenizer, 512).rows)
    batch = PairCollator(Collator(pad_token_id=0))(rows)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = sequence_logps(logits, batch["labels"]).view(-1, 2)
    return (logps[:, 0] - logps[:, 1]).mean().item()


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> tuple[Path, Path, TrainerRun]:
    """20 steps of a lora dpo job on the example pairs, validated on `VALIDATION_PAIRS`: its
    version's folder, its validation file, its run."""
    folder = tmp_path_factory.mktemp("dpo")
    validation = folder / "validation.jsonl"
    validation.write_text(
        "".join(
            json.dumps(
                {
                    "input": {"messages": [{"role": "user", "content": question}]},
                    "preferred_output": [{"role": "assistant", "content": preferred}],
                    "non_preferred_output": [{"role": "assistant", "content": other}],
                }
            )
            + "\n"
            for question, preferred, other in VALIDATION_PAIRS
        )
    )
    run = _dpo_job(folder / "v1", tiny_base, "lora", None, PAIRS, steps=20, validation_file=validation)
    return folder / "v1", validation, run


@pytest.mark.slow
def test_a_dpo_job_raises_the_preferred_margin(
    dpo_run: tuple[Path, Path, TrainerRun], tiny_base: Path
) -> None:
    version, _, run = dpo_run
    before = _margin(AutoModelForCausalLM.from_pretrained(tiny_base).eval(), tiny_base)
    metrics = run.of_type("metrics")

    after = _margin(load_version(AutoModelForCausalLM.from_pretrained(tiny_base), version), tiny_base)
    assert after > before + 10.0, (before, after)  # measured: 524 -> 556 nats
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["objective"] == {"type": "dpo", "beta": 0.1}
    # the metrics lines report the implicit rewards: the preferred ones pull ahead
    assert metrics[0]["train_loss"] == pytest.approx(math.log(2), abs=0.1)  # pi = pi_ref at step 1
    assert metrics[-1]["reward_margin"] > metrics[0]["reward_margin"]
    assert metrics[-1]["reward_accuracy"] == 1.0 and metrics[-1]["train_loss"] < metrics[0]["train_loss"]


@pytest.mark.slow
def test_a_dpo_job_reports_the_dpo_loss_and_pairs_ahead_on_its_validation_pairs(
    dpo_run: tuple[Path, Path, TrainerRun], tiny_base: Path
) -> None:
    version, validation, run = dpo_run
    metrics = run.of_type("metrics")
    # 3 of the 4 pairs prefer the style the job learns, the last the other one (measured: valid_loss
    # 0.65, 0.69, 0.74 at steps 1, 10, 20, as the job pushes that pair's margin further below 0)
    assert [m["valid_mean_token_accuracy"] for m in metrics] == [0.75, 0.75, 0.75]

    # the published version's DPO loss on every validation pair, the base model its reference
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    batch = PairCollator(Collator(pad_token_id=0))(
        list(load_preference_data(validation, tokenizer, 512).rows)
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    trained = load_version(AutoModelForCausalLM.from_pretrained(tiny_base), version).eval()
    compute = compute_dtype("auto")  # as the job computed, bfloat16 autocast where the CPU has it
    with torch.no_grad(), torch.autocast("cpu", dtype=compute, enabled=compute != torch.float32):
        reference = sequence_logps(
            base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"]
        )
        policy = sequence_logps(
            trained(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["labels"],
        )
    loss, rewards = dpo_loss(policy.view(-1, 2), reference.view(-1, 2), beta=0.1)
    last = run.of_type("checkpoint")[-1]
    assert last["full_valid_loss"] == pytest.approx(loss.item(), rel=1e-4)  # measured: within 1e-6
    assert last["full_valid_mean_token_accuracy"] == (rewards[:, 0] > rewards[:, 1]).float().mean().item()


@pytest.mark.slow
# titans' step is 1x: at 5x its dpo job on these pairs diverged (NaN loss at step 5)
@pytest.mark.parametrize(("method", "rate"), [("replay", 5.0), ("ilora", 5.0), ("titans", 1.0)])
def test_a_dpo_job_continues_a_supervised_parent_with_replay(
    method: str, rate: float, tmp_path: Path, tiny_base: Path, facts_file: Path
) -> None:
    """The reference is the parent version; the parent's rows are replayed into the pairs' batches."""
    _dpo_job(tmp_path / "v1", tiny_base, method, None, facts_file, steps=8, learning_rate_multiplier=rate)
    parent = _margin(
        load_version(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1"), tiny_base
    )

    _dpo_job(
        tmp_path / "v2", tiny_base, method, tmp_path / "v1", PAIRS, steps=20, learning_rate_multiplier=rate
    )

    after = _margin(load_version(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v2"), tiny_base)
    assert after > parent + 10.0, (
        parent,
        after,
    )  # measured: replay 522 -> 546, ilora (its served slow adapter) 524 -> 538, titans 524 -> 539


@pytest.mark.slow
def test_a_resumed_dpo_job_keeps_the_parent_as_its_reference(tmp_path: Path, tiny_base: Path) -> None:
    """The reference log-probs come from the model as loaded, not from the checkpoint a resume
    restores: a job resumed mid-way ends with the uninterrupted job's weights."""
    _dpo_job(tmp_path / "v1", tiny_base, "lora", None, PAIRS, steps=12, checkpoint_every=6)
    resumed = tmp_path / "resumed" / "v1"  # same folder name: the same job id
    shutil.copytree(tmp_path / "v1" / "checkpoints" / "step-000006", resumed / "checkpoints" / "step-000006")

    metrics = _dpo_job(resumed, tiny_base, "lora", None, PAIRS, steps=12, checkpoint_every=6).of_type(
        "metrics"
    )

    assert metrics[0]["step"] == 10
    expected = load_file(tmp_path / "v1" / "adapter" / "adapter_model.safetensors")
    got = load_file(resumed / "adapter" / "adapter_model.safetensors")
    assert expected.keys() == got.keys()
    for name, weights in expected.items():
        torch.testing.assert_close(got[name], weights)


@pytest.mark.slow
def test_two_processes_split_a_dpo_batch_by_pairs(tmp_path: Path, tiny_base: Path) -> None:
    """Each process takes whole pairs and its own reference; the rewards are summed over both."""
    spec = job_spec(
        tmp_path / "v1",
        tiny_base,
        PAIRS,
        steps=20,
        batch_size=4,
        learning_rate_multiplier=5.0,
        cache_dir=tmp_path / "cache",
    )
    (tmp_path / "v1").mkdir()
    path = dataclasses.replace(spec, objective=Objective("dpo", 0.1)).write(tmp_path / "v1" / "spec.json")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]

    process = subprocess.run(
        [*launch, "-m", "trainers.run", "--spec", str(path)], capture_output=True, text=True, cwd=REPO
    )

    assert process.returncode == 0, process.stderr[-3000:]
    metrics = [line for line in map(json.loads, process.stdout.splitlines()) if line["type"] == "metrics"]
    assert metrics[0]["train_loss"] == pytest.approx(math.log(2), abs=0.1)
    assert metrics[-1]["reward_accuracy"] == 1.0  # summed over both processes: a share, at most 1
    before = _margin(AutoModelForCausalLM.from_pretrained(tiny_base).eval(), tiny_base)
    after = _margin(load_version(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1"), tiny_base)
    assert after > before + 10.0, (before, after)
