"""The replay method: earlier jobs' rows in each batch, the same ones on a resumed run, and
optionally a KL towards the parent on them."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from trainers.data import Collator
from trainers.methods.distillation import distillation_loss
from trainers.methods.replay.config import ReplayConfig
from trainers.methods.replay.method import ReplayMethod

ROWS = [{"input_ids": [1, 40 + i, 41], "labels": [-100, 40 + i, 41], "length": 3} for i in range(6)]


def test_batches_after_the_first_job_mix_in_earlier_rows(tiny_base: Path, tmp_path: Path) -> None:
    first = ReplayMethod(ReplayConfig(r=4, replay_ratio=0.5))
    first.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), None)
    first.start_job("job-1", ROWS, seed=3)
    assert first.replay_rows(step=0, batch_size=4) == []
    (tmp_path / "v1" / "memory").mkdir(parents=True)
    first.export_adapter(first.model, tmp_path / "v1" / "adapter")
    first.save_memory(tmp_path / "v1" / "memory")

    second = ReplayMethod(ReplayConfig(r=4, replay_ratio=0.5))
    second.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1")
    new_rows = [{"input_ids": [1, 60, 61], "labels": [-100, 60, 61], "length": 3}]
    second.start_job("job-2", new_rows, seed=9)
    replayed = second.replay_rows(step=5, batch_size=4)
    assert len(replayed) == 2 and all(row["replayed"] for row in replayed)
    assert all(row["input_ids"] in [r["input_ids"] for r in ROWS] for row in replayed)
    assert second.buffer.seed == 3  # the lineage's buffer keeps its first job's seed
    assert second.replay_rows(step=5, batch_size=4) == replayed
    assert len(second.buffer) == 7


def _first_version(tiny_base: Path, version: Path) -> None:
    """A replay lineage's first version: a few steps on ROWS, so its adapter is not the identity."""
    torch.manual_seed(0)
    method = ReplayMethod(ReplayConfig(r=4))
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), None)
    method.start_job("job-1", ROWS, seed=3)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        batch = Collator(pad_token_id=0)(ROWS)
        model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    (version / "memory").mkdir(parents=True)
    method.export_adapter(model, version / "adapter")
    method.save_memory(version / "memory")


def _losses(method: ReplayMethod, step: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The method's loss on a batch of new rows plus its replayed rows, the cross-entropy, the batch."""
    assert method.model is not None
    batch = Collator(pad_token_id=0)(NEW_ROWS + method.replay_rows(step, len(NEW_ROWS)))
    outputs = method.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")})
    return method.training_loss(method.model, batch, outputs), outputs.loss, batch


NEW_ROWS = [
    {"input_ids": [1, 60 + i, 61, 62], "labels": [-100, 60 + i, 61, 62], "length": 4} for i in range(4)
]


@pytest.mark.parametrize("distill_weight", [0.0, 0.5])
def test_distillation_adds_the_kl_to_the_parent_on_replayed_rows(
    tiny_base: Path, tmp_path: Path, distill_weight: float
) -> None:
    _first_version(tiny_base, tmp_path / "v1")
    method = ReplayMethod(ReplayConfig(r=4, replay_ratio=0.5, distill_weight=distill_weight))
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1")
    method.start_job("job-2", NEW_ROWS, seed=9)
    loss, cross_entropy, batch = _losses(method, step=0)
    assert batch["replayed"].sum() == 2
    assert loss.item() == pytest.approx(cross_entropy.item(), abs=1e-6)  # student = teacher: KL 0

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    for step in range(2):
        _losses(method, step)[0].backward()
        optimizer.step()
        optimizer.zero_grad()
    loss, cross_entropy, batch = _losses(method, step=2)
    replayed = batch["replayed"]
    parent = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1" / "adapter"
    )
    with torch.no_grad():
        student = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        teacher = parent(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    kl = distillation_loss(student[replayed], teacher[replayed], batch["labels"][replayed])
    assert kl.item() > 1e-4  # the job has moved the adapter away from the parent
    assert (loss - cross_entropy).item() == pytest.approx(distill_weight * kl.item(), rel=1e-4, abs=1e-7)
