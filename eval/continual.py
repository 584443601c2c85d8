"""Continual evaluation inside a job: earlier jobs' probes scored every few steps (the stability gap).

De Lange et al. (arXiv 2205.13452; docs/evaluation.md) show that evaluating only at
task boundaries hides the sharp, transient forgetting at the start of a new task. The shared
training loop therefore asks a `ContinualEvaluator` at the job's start, every `every` steps and
at its last step to score a small fixed subset of each earlier job's probes, and of the current
job's: recall (teacher-forced, so one forward pass per batch decides greedy exact match, see
`eval.recall`) and, when asked for, recognition (mean NLL of seen text against foil).
`eval.metrics.StabilityTracker` turns the recall accuracies into min-ACC, WC-ACC and windowed
forgetting; its state passes from a version to the next (`STABILITY_FILE`), so min-ACC is the
lowest accuracy of each earlier task over the whole stream, not only over the current job.

One evaluation is one teacher-forced pass over every subset's recall items together (sorted by
length, so batches carry little padding; a chat template's common start run once per batch where
the model allows it); recognition, when asked for, adds the likelihood pass. The loop runs it in
the job's compute precision.
"""

import json
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from eval.metrics import StabilityTracker
from eval.probes import Probes
from eval.recall import greedy_matches
from eval.retention import render
from eval.runners import InProcessRunner
from trainers.contracts.job import ContinualEvalSpec
from trainers.contracts.lines import ContinualEvaluation

__all__ = ["STABILITY_FILE", "ContinualEvaluator", "log_spaced", "recall_inputs"]

STABILITY_FILE = "stability.json"  # in a version's folder: the tracker's state as its job ended


class ContinualEvaluator:
    """Scores fixed probe subsets of earlier jobs and the current one on the model being trained.

    Args:
        config: The spec's `continual_eval` (`every` may be `"log"`: Orhan's log-spaced schedule,
            `log_spaced`).
        tokenizer: The base model's tokenizer.
        window: Evaluations per window of the windowed forgetting.
        tracker: The tracker the parent version's job ended with (`STABILITY_FILE`), to go on
            with; None starts a new one.
        shared_prefix: The model is a transformers model (PEFT adapters allowed) whose key-value
            cache may carry the prompts' common start (`eval.recall.greedy_matches`).
    """

    def __init__(
        self,
        config: ContinualEvalSpec,
        tokenizer: PreTrainedTokenizerBase,
        window: int = 10,
        tracker: StabilityTracker | None = None,
        shared_prefix: bool = False,
    ) -> None:
        self.shared_prefix = shared_prefix
        self.every = config.every
        self.dense_steps = config.dense_steps
        self.recognition = config.recognition
        self.tokenizer = tokenizer
        self.tracker = tracker or StabilityTracker(window=window)
        self.earlier = {job: _load(path, config.items, tokenizer) for job, path in config.earlier.items()}
        self.current = _load(config.current, config.items, tokenizer)

    @property
    def active(self) -> bool:
        """Whether there is anything earlier to watch; a lineage's first job has nothing."""
        return any(subset.prompts for subset in self.earlier.values())

    def due(self, step: int, total_steps: int) -> bool:
        """Evaluate after `step` (0: before the first step)?"""
        if step in (0, total_steps) or step <= self.dense_steps:
            return True
        if self.every == "log":
            return step in log_spaced(total_steps)
        return step % int(self.every) == 0

    def evaluate(self, model: nn.Module, step: int) -> ContinualEvaluation:
        """Score every subset on `model` (put in eval mode for the call) and update the running metrics."""
        was_training = model.training
        model.eval()
        subsets = [*self.earlier.values(), self.current]
        flags = greedy_matches(
            model,
            [prompt for subset in subsets for prompt in subset.prompts],
            [answer for subset in subsets for answer in subset.answers],
            batch_size=64,
            shared_prefix=self.shared_prefix,
        )
        accuracies = []
        for subset in subsets:
            mine, flags = flags[: len(subset.prompts)], flags[len(subset.prompts) :]
            accuracies.append(sum(mine) / len(mine) if mine else 0.0)
        recall, current = dict(zip(self.earlier, accuracies, strict=False)), accuracies[-1]
        recognition = {}
        if self.recognition:
            runner = InProcessRunner(model, self.tokenizer, batch_size=64)
            recognition = {job: subset.recognition_accuracy(runner) for job, subset in self.earlier.items()}
        model.train(was_training)
        metrics = self.tracker.update(recall, current)
        return ContinualEvaluation(
            step=step, accuracy=recall, current=current, recognition=recognition, **metrics
        )


def log_spaced(total_steps: int) -> set[int]:
    """Orhan's retention schedule: steps 1-10, then every 10 to 100, every 100 to 1000, and so on."""
    steps, stride = set(range(1, 11)), 10
    while stride < total_steps:
        steps |= set(range(stride, min(total_steps, stride * 10) + 1, stride))
        stride *= 10
    return {step for step in steps if step <= total_steps}


def recall_inputs(
    items: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
) -> tuple[list[list[int]], list[list[int]]]:
    """Recall items (`eval.probes` layout) as `greedy_matches` reads them: prompt and answer token ids."""
    prompts = [tokenizer(render(tokenizer, item["context"]) + item["cue"]).input_ids for item in items]
    answers = [
        tokenizer(item["continuation"], add_special_tokens=False).input_ids or [tokenizer.eos_token_id]
        for item in items
    ]
    return prompts, answers


class _Subset:
    """The first `items` recall and recognition probes of one job, tokenized once."""

    def __init__(self, probes: Probes, items: int, tokenizer: PreTrainedTokenizerBase) -> None:
        self.prompts, self.answers = recall_inputs(probes.recall[:items], tokenizer)
        pairs = probes.recognition[:items]
        self.seen = [render(tokenizer, pair["seen"]["context"]) + pair["seen"]["target"] for pair in pairs]
        self.foils = [render(tokenizer, pair["foil"]["context"]) + pair["foil"]["target"] for pair in pairs]

    def recognition_accuracy(self, runner: InProcessRunner) -> float:
        if not self.seen:
            return 0.0
        nll = runner.nll(self.seen + self.foils, [0] * (2 * len(self.seen)))
        seen, foils = nll[: len(self.seen)], nll[len(self.seen) :]
        return sum(s < f for s, f in zip(seen, foils, strict=True)) / len(seen)


def _load(path: str, items: int, tokenizer: PreTrainedTokenizerBase) -> _Subset:
    return _Subset(Probes.from_json(json.loads(Path(path).read_text())), items, tokenizer)
