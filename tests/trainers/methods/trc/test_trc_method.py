"""TRC² as a method: base model at init, delayed writes, distillation, consolidation, export, loading."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, DynamicCache

from trainers.contracts.lines import ContinualEvaluation
from trainers.data import Collator
from trainers.methods.distillation import distillation_loss
from trainers.methods.trc.config import TrcConfig
from trainers.methods.trc.method import TrcMethod
from trainers.methods.trc.model import consolidate, load_version

ROWS = [
    {"input_ids": [1, 40 + i, 41, 42, 43, 44, 45], "labels": [-100, -100, 41, 42, 43, 44, 45], "length": 7}
    for i in range(8)
]
IDS = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]])  # (batch, seq)


def _method(tiny_base: Path, parent: Path | None = None, **fields) -> tuple[TrcMethod, torch.nn.Module]:
    torch.manual_seed(0)
    method = TrcMethod(TrcConfig(r=4, **fields))
    return method, method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), parent)


def _step(method: TrcMethod, model: torch.nn.Module, rows: list[dict], step: int, optimizer) -> torch.Tensor:
    batch = Collator(pad_token_id=0)(rows + method.replay_rows(step, len(rows)))
    outputs = model(
        **{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}, output_hidden_states=True
    )
    loss = method.training_loss(model, batch, outputs)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    method.after_optimizer_step(model, step + 1)
    return loss


def _train(method: TrcMethod, model: torch.nn.Module, job: str, rows: list[dict], steps: int) -> None:
    method.start_job(job, rows, seed=0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(steps):
        _step(method, model, rows[:4] if step % 2 == 0 else rows[4:], step, optimizer)


def _evaluation(forgetting: float) -> ContinualEvaluation:
    return ContinualEvaluation(1, {}, 0.0, 0.0, 0.0, 0.0, forgetting)


@pytest.mark.parametrize("fields", [{}, {"router": False}, {"hippocampus": False}])
def test_at_init_the_model_is_the_base_model(tiny_base: Path, fields: dict) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    _, model = _method(tiny_base, **fields)
    torch.testing.assert_close(model.eval()(IDS).logits, base(IDS).logits, atol=0, rtol=0)


def test_writes_of_a_step_reach_reads_and_replay_only_after_its_optimizer_step(tiny_base: Path) -> None:
    method, model = _method(tiny_base)
    method.start_job("job-1", ROWS, seed=0)
    assert method.store is not None and method.cortex is not None and method.cortex.read is not None
    with torch.no_grad():
        method.cortex.read.up.weight.normal_()  # make reads visible in the logits
    batch = Collator(pad_token_id=0)(ROWS[:4])
    outputs = model(
        **{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}, output_hidden_states=True
    )
    method.training_loss(model, batch, outputs)
    assert method.store._pending and len(method.store) == 0  # stashed, not stored
    again = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(again, outputs.logits)  # the same step reads nothing new
    method.start_job("job-2", ROWS[4:], seed=0)
    assert method.replay_rows(0, 8) == []  # nothing committed to replay
    method.after_optimizer_step(model, 1)
    assert len(method.store) == 4  # every row is surprising to a critic that has seen none
    assert not torch.allclose(model(input_ids=batch["input_ids"]).logits, outputs.logits)
    replayed = method.replay_rows(0, 8)
    assert len(replayed) == 4 and all(row["replayed"] for row in replayed)  # round(0.5 * 8)
    assert {tuple(row["input_ids"]) for row in replayed} <= {tuple(row["input_ids"]) for row in ROWS[:4]}


def test_distillation_is_zero_at_the_job_start_and_grows_as_the_model_moves(tiny_base: Path) -> None:
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 2, 3, -100, -100]])
    assert distillation_loss(logits, logits.clone(), labels).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(logits, torch.randn(2, 5, 11), labels).item() > 0
    method, model = _method(tiny_base, hippocampus=True)
    _train(method, model, "job-1", ROWS, steps=4)
    method.start_job("job-2", ROWS, seed=0)
    rows = {k: v for k, v in Collator(0)(ROWS[:2]).items() if k != "replayed"}
    start = method._teacher_logits(rows)  # job 1 has no parent: the base model
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    torch.testing.assert_close(start, base(input_ids=rows["input_ids"]).logits, atol=1e-5, rtol=0)


def test_consolidation_moves_columns_into_the_stable_one_keeping_the_function(tiny_base: Path) -> None:
    method, model = _method(tiny_base, router=False)  # input-independent routing: exact
    _train(method, model, "job-1", ROWS, steps=3)
    model.eval()
    before = model(IDS).logits.detach()
    assert method.cortex is not None
    consolidate(method.cortex, method._mean_usage(), rate=0.5)
    column = next(iter(method.cortex.columns[0].values()))
    assert column.stable_B.abs().sum() > 0
    torch.testing.assert_close(model(IDS).logits, before, atol=1e-4, rtol=0)


def test_controller_adjustments_come_back_from_after_evaluation(tiny_base: Path) -> None:
    method, _ = _method(tiny_base)
    start = method.controller.state.replay_ratio
    adjustments = method.after_evaluation(10, _evaluation(0.4))
    assert adjustments["replay_ratio"] > start
    assert set(adjustments) == {"replay_ratio", "distill_weight", "consolidation_rate", "integral"}
    assert len(method.replay_rows(0, 8)) == 0  # nothing stored yet
    fixed, _ = _method(tiny_base, controller=False)
    assert fixed.after_evaluation(10, _evaluation(0.4)) == {}


def test_the_reference_evaluation_at_step_0_leaves_the_settings_as_the_parent_left_them(
    tiny_base: Path,
) -> None:
    method, _ = _method(tiny_base)
    method.after_evaluation(10, _evaluation(0.4))
    raised = method.controller.to_dict()
    assert method.after_evaluation(0, _evaluation(0.0)) == raised
    assert method.after_evaluation(10, _evaluation(0.0))["replay_ratio"] < raised["replay_ratio"]


def test_a_version_saves_loads_continues_and_exports(tiny_base: Path, tmp_path: Path) -> None:
    method, model = _method(tiny_base)
    _train(method, model, "job-1", ROWS, steps=6)
    method.after_evaluation(6, _evaluation(0.3))
    version = tmp_path / "v1"
    (version / "memory").mkdir(parents=True)
    method.export_adapter(model, version / "adapter")
    method.save_memory(version / "memory")
    (version / "manifest.json").write_text(json.dumps({"method": "trc", "config": asdict(method.config)}))
    model.eval()
    expected = model(IDS).logits.detach()

    served = load_version(AutoModelForCausalLM.from_pretrained(tiny_base), version)
    torch.testing.assert_close(served(input_ids=IDS).logits, expected)
    assert not served.training

    # The PEFT export is the best rank-r approximation of the usage-weighted update, and it is
    # closer to the routed model than the base model is.
    assert method.cortex is not None
    name, column = next(iter(method.cortex.columns[0].items()))
    B, A = column.update_factors(method._mean_usage()[0])
    u, singular, vh = torch.linalg.svd((B @ A).detach())  # the whole (out, in) update's SVD
    weights = load_file(version / "adapter" / "adapter_model.safetensors")
    prefix = f"base_model.model.model.layers.0.{name}"
    exported_update = weights[f"{prefix}.lora_B.weight"] @ weights[f"{prefix}.lora_A.weight"]
    torch.testing.assert_close(exported_update, (u[:, :4] * singular[:4]) @ vh[:4], atol=1e-5, rtol=1e-4)
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), version / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    exported = adapter.eval()(IDS).logits
    assert (exported - expected).abs().mean() < (base(IDS).logits - expected).abs().mean()

    # The next job starts from the parent: its store, controller settings, consolidated columns.
    child, _ = _method(tiny_base, parent=version)
    assert child.store is not None and method.store is not None
    assert len(child.store) == len(method.store) > 0
    assert child.controller.state == method.controller.state
    column = next(iter(child.cortex.columns[0].values()))
    assert column.stable_B.abs().sum() > 0
    parent_column = next(iter(method.cortex.columns[0].values()))
    rate = method.controller.state.consolidation_rate
    torch.testing.assert_close(column.lora_B, (1 - rate) * parent_column.lora_B.detach())

    # Its distillation teacher is the parent as published, not the consolidated model, whose
    # routed function consolidation has changed.
    child_model = child.model
    assert child_model is not None
    child_model.eval()
    rows = {"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}
    torch.testing.assert_close(child._teacher_logits(rows), expected, atol=1e-5, rtol=0)
    assert (child_model(IDS).logits - expected).abs().max() > 1e-3


def test_padding_on_either_side_does_not_change_a_rows_logits(tiny_base: Path) -> None:
    method, model = _method(tiny_base)
    _train(method, model, "job-1", ROWS, steps=4)  # columns, router and store all in play
    assert method.cortex is not None and method.cortex.read is not None
    with torch.no_grad():
        method.cortex.read.up.weight.normal_()
    model.eval()
    alone = model(input_ids=IDS).logits  # (1, seq, vocab)
    pad = torch.zeros(1, 3, dtype=torch.long)
    ones, zeros = torch.ones_like(IDS), torch.zeros(1, 3, dtype=torch.long)
    right = model(input_ids=torch.cat([IDS, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
    left = model(input_ids=torch.cat([pad, IDS], 1), attention_mask=torch.cat([zeros, ones], 1)).logits
    torch.testing.assert_close(right[:, : IDS.shape[1]], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(left[:, 3:], alone, atol=1e-4, rtol=0)


def test_decoding_with_a_key_value_cache_gives_the_whole_sequences_logits(tiny_base: Path) -> None:
    """The router's pooled past and the read's query span the cached prefix, across chunk bounds."""
    method, model = _method(tiny_base)
    _train(method, model, "job-1", ROWS, steps=4)
    assert method.cortex is not None and method.cortex.read is not None
    with torch.no_grad():
        method.cortex.read.up.weight.normal_()
    model.eval()
    long = torch.arange(40, 60).unsqueeze(0)  # (1, 20): past two chunks of 8
    ids = torch.cat([long, torch.cat([torch.zeros(1, 5, dtype=torch.long), long[:, :15]], 1)])  # (2, 20)
    mask = (torch.arange(20) >= torch.tensor([[0], [5]])).long()  # the second row left-padded by 5
    with torch.no_grad():
        whole = model(input_ids=ids, attention_mask=mask).logits  # (2, 20, vocab)
        cache, prompt = DynamicCache(), 6
        steps = [model(input_ids=ids[:, :prompt], attention_mask=mask[:, :prompt], cache=cache).logits]
        for t in range(prompt, 20):
            step = model(input_ids=ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache)
            steps.append(step.logits)
    cached = torch.cat(steps, dim=1)
    torch.testing.assert_close(cached[0], whole[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(cached[1, 5:], whole[1, 5:], atol=1e-4, rtol=0)
