"""I-LoRA's maths: the slow adapter's interpolation, the consistency loss and its gradient, export."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from trainers.data import Collator
from trainers.methods.ilora.config import IloraConfig
from trainers.methods.ilora.method import IloraMethod, consistency_loss

ROWS = [
    {"input_ids": [1, 40, 41, 42, 43, 44], "labels": [-100, -100, 41, 42, 43, 44], "length": 6},
    {"input_ids": [1, 50, 51, 52], "labels": [-100, 50, 51, 52], "length": 4},
]


def _method(tiny_base: Path, **fields) -> tuple[IloraMethod, PeftModel]:
    method = IloraMethod(IloraConfig(r=4, **fields))
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), parent_dir=None)
    return method, model


def _lora(model: PeftModel) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def _perturb(model: PeftModel, generator: torch.Generator) -> None:
    for p in _lora(model).values():
        p.add_(torch.randn(p.shape, generator=generator) * 0.1)


def _second_job_batch(method: IloraMethod) -> dict[str, torch.Tensor]:
    """A batch of one new row and the replayed rows of a first job."""
    method.start_job("job-1", ROWS, seed=0)
    method.start_job("job-2", [ROWS[0]], seed=0)
    return Collator(pad_token_id=0)([ROWS[0], *method.replay_rows(step=0, batch_size=4)])


def test_slow_adapter_is_the_interpolation_applied_after_each_of_k_steps(tiny_base: Path) -> None:
    method, model = _method(tiny_base, slow_lambda=0.9)
    method.start_job("job-1", ROWS, seed=0)
    generator = torch.Generator().manual_seed(0)
    expected = {name: t.clone() for name, t in method.slow.items()}
    for step in range(1, 6):  # the fast adapter moves every step
        _perturb(model, generator)
        method.after_optimizer_step(model, step)
        for name, p in _lora(model).items():
            expected[name] = 0.9 * expected[name] + 0.1 * p.detach()
    for name, slow in method.slow.items():
        torch.testing.assert_close(slow, expected[name])

    # With the fast adapter held at F for k more steps: slow = l^k slow_0 + (1 - l^k) F.
    start = {name: t.clone() for name, t in method.slow.items()}
    for step in range(6, 16):
        method.after_optimizer_step(model, step)
    for name, p in _lora(model).items():
        torch.testing.assert_close(method.slow[name], 0.9**10 * start[name] + (1 - 0.9**10) * p.detach())


def test_update_probability_skips_steps_deterministically(tiny_base: Path) -> None:
    method, model = _method(tiny_base, update_probability=0.0)
    method.start_job("job-1", ROWS, seed=0)
    before = {name: t.clone() for name, t in method.slow.items()}
    _perturb(model, torch.Generator().manual_seed(0))
    for step in range(1, 20):
        method.after_optimizer_step(model, step)
    for name, slow in method.slow.items():
        torch.testing.assert_close(slow, before[name])


def test_consistency_loss_is_zero_when_fast_and_slow_agree(tiny_base: Path) -> None:
    method, model = _method(tiny_base)  # a fresh slow adapter is a copy of the fast one
    batch = _second_job_batch(method)
    assert batch["replayed"].tolist() == [False, True, True]
    outputs = model(
        **{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}, output_hidden_states=True
    )
    torch.testing.assert_close(method.training_loss(model, batch, outputs), outputs.loss)
    hidden = torch.randn(2, 5, 8)
    assert consistency_loss([hidden], [hidden.clone()], torch.ones(2, 5)).item() == 0.0


def test_consistency_loss_ignores_padding() -> None:
    fast, slow = torch.ones(1, 4, 3), torch.ones(1, 4, 3)
    slow[0, 3] = -100.0  # a padded position
    mask = torch.tensor([[1, 1, 1, 0]])
    assert consistency_loss([fast], [slow], mask).item() == 0.0
    slow[0, 0] = torch.tensor([1.0, 1.0, -1.0])  # a real token: one of three elements flips sign
    assert consistency_loss([fast], [slow], mask).item() == pytest.approx(4 / 9, rel=1e-5)


def test_consistency_loss_does_not_scale_with_the_hidden_states() -> None:
    """A real LLM's massive activations (thousands) must not swamp the cross-entropy: the loss of
    hidden states a thousand times larger is the same."""
    fast, slow = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.ones(2, 5)
    small = consistency_loss([fast], [slow], mask)
    assert consistency_loss([1000 * fast], [1000 * slow], mask).item() == pytest.approx(
        small.item(), rel=1e-4
    )
    assert 0 < small.item() <= 4


def test_consistency_gradient_flows_only_into_the_fast_adapter(tiny_base: Path) -> None:
    method, model = _method(tiny_base, consistency_weight=1.0)
    _perturb(model, torch.Generator().manual_seed(1))  # fast now differs from slow
    batch = _second_job_batch(method)
    outputs = model(
        **{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}, output_hidden_states=True
    )
    loss = method.training_loss(model, batch, outputs)
    consistency = loss - outputs.loss
    assert consistency.item() > 0
    consistency.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in _lora(model).values())
    assert all(not slow.requires_grad and slow.grad is None for slow in method.slow.values())
    assert all(p.grad is None for name, p in model.named_parameters() if "lora_" not in name)


def test_the_served_adapter_is_the_slow_one_as_plain_peft(tiny_base: Path, tmp_path: Path) -> None:
    method, model = _method(tiny_base, slow_lambda=0.5)
    method.start_job("job-1", ROWS, seed=0)
    _perturb(model, torch.Generator().manual_seed(2))
    method.after_optimizer_step(model, 1)  # slow is halfway between the start and fast
    ids = torch.tensor([ROWS[0]["input_ids"]])  # (batch, seq)
    fast_logits = model(ids).logits.detach()
    method.export_adapter(model, tmp_path / "adapter")
    torch.testing.assert_close(model(ids).logits, fast_logits)  # export leaves the fast adapter in place

    served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "adapter")
    slow_hidden = method.slow_hidden_states(ids, torch.ones_like(ids))
    torch.testing.assert_close(served(ids, output_hidden_states=True).hidden_states[-1], slow_hidden[-1])
    assert not torch.allclose(served(ids).logits, fast_logits)


def test_first_job_replays_nothing(tiny_base: Path) -> None:
    method, _ = _method(tiny_base)
    method.start_job("job-1", ROWS, seed=0)
    assert method.replay_rows(step=0, batch_size=8) == []
