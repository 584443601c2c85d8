"""LoRA with online EWC: the penalty holds a job near its parent, the Fisher accumulates and resumes."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from memory.fisher import ParameterAnchor
from trainers.data import Collator
from trainers.methods.ewc.config import EwcConfig
from trainers.methods.ewc.method import EwcMethod, job_fisher
from trainers.methods.lora.config import LoraConfig
from trainers.methods.lora.method import LoraMethod

FIRST = [
    {"input_ids": [1, 40 + i, 41, 42, 43, 44], "labels": [-100, -100, 41, 42, 43, 44], "length": 6}
    for i in range(8)
]
SECOND = [
    {"input_ids": [1, 60 + i, 61, 62, 63, 64], "labels": [-100, -100, 61, 62, 63, 64], "length": 6}
    for i in range(8)
]
STEPS = 8


def _train(method: LoraMethod, tiny_base: Path, parent: Path | None, job: str, rows: list[dict]) -> PeftModel:
    torch.manual_seed(0)
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), parent)
    method.start_job(job, rows, seed=0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(STEPS):
        _loss(method, model, rows[:4] if step % 2 == 0 else rows[4:])[0].backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


def _loss(method: LoraMethod, model: torch.nn.Module, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """The method's training loss on `rows`, and the cross-entropy alone."""
    batch = Collator(pad_token_id=0)(rows)
    outputs = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")})
    return method.training_loss(model, batch, outputs), outputs.loss


def _publish(method: LoraMethod, model: PeftModel, version: Path) -> None:
    """What the loop does at a job's end: adapter, then memory."""
    (version / "memory").mkdir(parents=True)
    method.export_adapter(model, version / "adapter")
    method.save_memory(version / "memory")


def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return sum(((a[name] - b[name]) ** 2).sum() for name in a).sqrt().item()


@pytest.fixture
def first_version(tiny_base: Path, tmp_path: Path) -> Path:
    """An ewc lineage's first version, trained on FIRST."""
    method = EwcMethod(EwcConfig(r=4))
    _publish(method, _train(method, tiny_base, None, "job-1", FIRST), tmp_path / "v1")
    return tmp_path / "v1"


def test_the_penalty_holds_a_second_job_nearer_its_parent_than_lora(
    tiny_base: Path, first_version: Path
) -> None:
    parent = _trainable(
        PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny_base), first_version / "adapter", is_trainable=True
        )
    )
    moved = {
        name: _distance(_trainable(_train(method, tiny_base, first_version, "job-2", SECOND)), parent)
        for name, method in [
            ("lora", LoraMethod(LoraConfig(r=4))),
            ("ewc, weight 0", EwcMethod(EwcConfig(r=4, ewc_weight=0.0))),
            ("ewc, weight 1e4", EwcMethod(EwcConfig(r=4, ewc_weight=1e4))),
        ]
    }
    assert moved["ewc, weight 0"] == pytest.approx(moved["lora"], rel=1e-5)  # the penalty is all it adds
    assert moved["ewc, weight 1e4"] < 0.7 * moved["lora"]


def test_the_loss_is_the_cross_entropy_plus_the_weighted_fisher_distance(
    tiny_base: Path, first_version: Path
) -> None:
    method = EwcMethod(EwcConfig(r=4, ewc_weight=3.0))
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), first_version)
    method.start_job("job-2", SECOND, seed=0)
    loss, cross_entropy = _loss(method, model, SECOND[:4])
    assert loss.item() == pytest.approx(cross_entropy.item(), abs=1e-6)  # at the parent: no penalty
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    assert method.anchor is not None
    expected = sum(
        (method.anchor.fisher[name] * (p - method.anchor.anchor[name]) ** 2).sum()
        for name, p in model.named_parameters()
        if p.requires_grad
    )
    loss, cross_entropy = _loss(method, model, SECOND[:4])
    assert expected > 0
    assert (loss - cross_entropy).item() == pytest.approx(1.5 * expected.item(), rel=1e-4)


def test_the_fisher_accumulates_over_jobs_and_a_resume_restores_it_exactly(
    tiny_base: Path, first_version: Path, tmp_path: Path
) -> None:
    first = ParameterAnchor.load(first_version / "memory")
    assert any(f.abs().sum() > 0 for f in first.fisher.values())
    assert all((f >= 0).all() for f in first.fisher.values())
    # The version's anchor is where its job ended: its adapter.
    adapter = _trainable(
        PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny_base), first_version / "adapter", is_trainable=True
        )
    )
    for name, anchor in first.anchor.items():
        torch.testing.assert_close(anchor, adapter[name], atol=0, rtol=0)

    method = EwcMethod(EwcConfig(r=4, fisher_decay=0.5))
    model = _train(method, tiny_base, first_version, "job-2", SECOND)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    method.save_memory(checkpoint)  # mid-job (no export yet): this job's anchor and Fisher
    _publish(method, model, tmp_path / "v2")
    assert all(p.grad is None for p in model.parameters())  # the Fisher leaves the model's gradients alone

    second = ParameterAnchor.load(tmp_path / "v2" / "memory")
    this_job = job_fisher(model, _trainable(model), method.fisher_sample)
    for name, fisher in second.fisher.items():
        torch.testing.assert_close(fisher, 0.5 * first.fisher[name] + this_job[name])
        torch.testing.assert_close(second.anchor[name], model.get_parameter(name).detach(), atol=0, rtol=0)

    resumed = EwcMethod(EwcConfig(r=4, fisher_decay=0.5))
    resumed.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), first_version)
    resumed.start_job("job-2", SECOND, seed=0)
    resumed.load_memory(checkpoint)
    assert resumed.anchor is not None
    for name in first.fisher:
        assert torch.equal(resumed.anchor.fisher[name], first.fisher[name])
        assert torch.equal(resumed.anchor.anchor[name], first.anchor[name])
    assert resumed.fisher_sample == method.fisher_sample
