"""Continual evaluation in a job (eval/continual.py): its schedule, one pass, a tracker across jobs."""

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.continual import ContinualEvaluator, recall_inputs
from eval.metrics import StabilityTracker
from eval.probes import Probes
from eval.recall import greedy_matches
from trainers.contracts.job import ContinualEvalSpec


def _probes(tmp_path: Path, name: str, items: list[dict]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(Probes(seed=0, recall=items).to_json()))
    return str(path)


def _items(tokenizer, model, count: int, right: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """`count` recall items of which the first `right` are the model's own greedy continuation."""
    items = []
    for i in range(count):
        cue = f"Item {i}: the " + "word " * i  # different lengths
        ids = tokenizer(cue, return_tensors="pt").input_ids
        token = int(model(input_ids=ids).logits[0, -1].argmax())
        if i >= right:
            token = (token + 1) % len(tokenizer)
        items.append({"row": i, "context": "", "cue": cue, "continuation": tokenizer.decode([token])})
    return items


def test_one_pass_scores_each_job_as_scoring_it_alone_would(tiny_base: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    earlier, current = _items(tokenizer, model, 6, right=4), _items(tokenizer, model, 4, right=1)
    spec = ContinualEvalSpec(
        every=5,
        items=8,
        earlier={"ftjob-a": _probes(tmp_path, "a", earlier)},
        current=_probes(tmp_path, "b", current),
    )
    evaluation = ContinualEvaluator(spec, tokenizer).evaluate(model, step=0)
    alone = [greedy_matches(model, *recall_inputs(items, tokenizer)) for items in (earlier, current)]
    assert evaluation.accuracy == {"ftjob-a": sum(alone[0]) / 6}
    assert evaluation.current == sum(alone[1]) / 4


def test_dense_steps_evaluate_every_step_at_the_start() -> None:
    spec = ContinualEvalSpec(every=10, items=1, earlier={}, current="", dense_steps=3)
    evaluator = ContinualEvaluator.__new__(ContinualEvaluator)
    evaluator.every, evaluator.dense_steps = spec.every, spec.dense_steps
    assert [step for step in range(26) if evaluator.due(step, total_steps=25)] == [0, 1, 2, 3, 10, 20, 25]


def test_the_parent_tracker_carries_the_minimum_over(tiny_base: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    candidates = _items(tokenizer, model, 12, right=12)
    flags = greedy_matches(model, *recall_inputs(candidates, tokenizer))
    items = [item for item, right in zip(candidates, flags, strict=True) if right][:4]  # all right now
    assert items
    parent = StabilityTracker()
    parent.update({"ftjob-a": 0.25}, current=1.0)  # job a was nearly forgotten during the last job
    spec = ContinualEvalSpec(
        every=5,
        items=len(items),
        earlier={"ftjob-a": _probes(tmp_path, "a", items)},
        current=_probes(tmp_path, "b", items),
    )
    evaluation = ContinualEvaluator(spec, tokenizer, tracker=parent).evaluate(model, step=0)
    assert evaluation.accuracy == {"ftjob-a": 1.0}
    assert evaluation.min_acc == pytest.approx(0.25)


def test_a_negative_dense_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="dense_steps"):
        ContinualEvalSpec(every=5, items=1, earlier={}, current="", dense_steps=-1)
