"""Perplexity drift: how well the model still predicts a fixed reference text.

The reference is the fixed text in `eval/panel/reference.txt`: 24 paragraphs of general English
prose written for this project (food, rivers, the heart, libraries, weather, money, sport, ...,
one topic each). No job's training data covers it, so a job that teaches its own domain (facts,
a house style of prose, chat turns) is not counted as drift there; what does count is the model
getting worse at ordinary English. The item score of a paragraph is minus its mean NLL per
token, so a model that drifted scores lower. Chance: a model that spreads its probability evenly
over the vocabulary, minus ln(vocabulary size).
"""

import math
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from eval.runners import ProbeRunner

__all__ = ["REFERENCE", "reference_chunks", "score"]

REFERENCE = Path(__file__).with_name("reference.txt")


def reference_chunks() -> list[str]:
    """The reference text's chunks (its paragraphs), always the same."""
    paragraphs = REFERENCE.read_text().split("\n\n")
    return [" ".join(text.split()) for text in paragraphs if text.strip() and not text.startswith("#")]


def score(runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase) -> tuple[list[float], dict[str, Any]]:
    """Per chunk, minus its mean NLL per token."""
    chunks = reference_chunks()
    nll = runner.nll(chunks, [0] * len(chunks))
    mean = sum(nll) / len(nll)
    return [-value for value in nll], {
        "mean_nll": mean,
        "perplexity": math.exp(mean),
        "chance": -math.log(len(tokenizer)),
    }
