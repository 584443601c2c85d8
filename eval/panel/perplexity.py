"""Perplexity drift: how well the model still predicts a fixed reference text.

The reference is the fixed text in `eval/panel/reference.txt`: 24 short paragraphs of plain
prose about people, places and everyday life (20 in the style of the project's tiny base models'
pretraining text, 4 ordinary paragraphs). The item score of a chunk is minus its mean NLL per
token, so a model that drifted from ordinary text scores lower.
"""

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
    return [-value for value in nll], {"mean_nll": mean, "perplexity": 2.718281828459045**mean}
