"""Score a model on jobs' probes: recall, recognition and held-out loss (docs/evaluation.md).

`score_probes` gives one job's scores under one model; the retention matrix R[version][job] of a
lineage is these scores for every version on every job's probes (`trainers.evaluate` fills it after each
job, `service.services.retention` assembles it, `eval.metrics` summarises it).
"""

import math
import re
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from eval.probes import Context, Probes
from eval.runners import ProbeRunner

__all__ = ["RETENTION_METRICS", "render", "rouge_l", "score_probes"]

# The scores of one model on one job's probes; the first is what the CL metrics summarise.
RETENTION_METRICS = ("recall_exact", "recall_rouge_l", "recognition", "held_out_loss")


def score_probes(runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase, probes: Probes) -> dict[str, Any]:
    """One model's scores on one job's probes.

    Returns:
        `recall_exact` (share of continuations reproduced exactly, whitespace aside, with the
        per-item flags in `recall_flags`, which the health gate compares item by item) and
        `recall_rouge_l` (mean word-level ROUGE-L F1), `recognition` (share of pairs where the
        seen text has the lower mean NLL; ties count as wrong) with `recognition_by_family` and
        `nll_gap` (mean foil NLL minus seen NLL), and `held_out_loss` (mean per-token NLL of the
        held-out targets). A score is None when the job has no probe of its kind.
    """
    scores: dict[str, Any] = dict.fromkeys(RETENTION_METRICS)
    scores |= {"recognition_by_family": {}, "nll_gap": None, "recall_flags": []}
    if probes.recall:
        cues = [render(tokenizer, item["context"]) + item["cue"] for item in probes.recall]
        truths = [item["continuation"] for item in probes.recall]
        lengths = [max(1, len(tokenizer(truth, add_special_tokens=False).input_ids)) for truth in truths]
        generated = runner.complete(cues, lengths)
        flags = [_normal(g) == _normal(t) for g, t in zip(generated, truths, strict=True)]
        scores["recall_exact"], scores["recall_flags"] = _mean(flags), flags
        scores["recall_rouge_l"] = _mean([rouge_l(g, t) for g, t in zip(generated, truths, strict=True)])
    if probes.recognition:
        seen = _nll_of_texts(runner, tokenizer, [item["seen"] for item in probes.recognition])
        foil = _nll_of_texts(runner, tokenizer, [item["foil"] for item in probes.recognition])
        correct = [s < f for s, f in zip(seen, foil, strict=True)]
        scores["recognition"] = _mean(correct)
        scores["nll_gap"] = _mean([f - s for s, f in zip(seen, foil, strict=True)])
        families: dict[str, list[bool]] = {}
        for item, right in zip(probes.recognition, correct, strict=True):
            families.setdefault(item["family"], []).append(right)
        scores["recognition_by_family"] = {family: _mean(flags) for family, flags in sorted(families.items())}
    if probes.held_out:
        contexts = [render(tokenizer, item["context"]) for item in probes.held_out]
        texts = [context + item["target"] for context, item in zip(contexts, probes.held_out, strict=True)]
        losses = runner.nll(texts, [len(context) for context in contexts])
        scores["held_out_loss"] = _mean([loss for loss in losses if not math.isnan(loss)])
    return scores


def render(tokenizer: PreTrainedTokenizerBase, context: Context) -> str:
    """A probe's context as the model reads it: chat messages through the chat template."""
    if isinstance(context, str):
        return context
    return str(tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True))


def rouge_l(candidate: str, reference: str) -> float:
    """Word-level ROUGE-L F1 (longest common subsequence), case-insensitive; 1.0 for two empty texts."""
    a, b = _words(candidate), _words(reference)
    if not a or not b:
        return float(a == b)
    previous = [0] * (len(b) + 1)
    for word in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def _nll_of_texts(
    runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase, parts: Sequence[dict[str, Any]]
) -> list[float]:
    texts = [render(tokenizer, part["context"]) + part["target"] for part in parts]
    return runner.nll(texts, [0] * len(texts))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _normal(text: str) -> str:
    return " ".join(text.split())


def _mean(values: Sequence[float | bool]) -> float | None:
    return sum(values) / len(values) if values else None
