"""Perplexity drift: how well the model still predicts a fixed reference text.

The reference is generated prose (`trainers.base_model.corpus.documents` at a seed of its own,
in the style the project's base models are pretrained on) plus plain paragraphs written here,
cut into chunks; the item score of a chunk is minus its mean NLL per token, so a model that
drifted from ordinary text scores lower.
"""

from typing import Any

from transformers import PreTrainedTokenizerBase

from eval.runners import ProbeRunner
from trainers.base_model.corpus import documents

__all__ = ["CHUNKS", "PARAGRAPHS", "SEED", "reference_chunks", "score"]

SEED = 777
CHUNKS = 24
PARAGRAPHS = (
    "The river runs through the middle of the town, and in the morning the fishers take their boats out "
    "before the market opens. By noon the square is full of people buying bread, fruit and fresh fish.",
    "A good teacher explains an idea more than once, each time from a different side, until the students "
    "can explain it back in their own words. Practice and patience matter more than talent.",
    "When the weather turns cold, the village gathers wood for the winter. Children carry small branches, "
    "and the older people stack the logs neatly against the walls of their houses.",
    "To bake simple bread you mix flour, water, salt and yeast, knead the dough, let it rise for an hour, "
    "shape it, let it rise again and bake it in a hot oven until the crust is brown.",
)


def reference_chunks(n: int = CHUNKS) -> list[str]:
    """The reference text's chunks, always the same."""
    generated = documents(n - len(PARAGRAPHS), seed=SEED)
    return [" ".join(text.split()[:80]) for text in generated] + list(PARAGRAPHS)


def score(runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase) -> tuple[list[float], dict[str, Any]]:
    """Per chunk, minus its mean NLL per token."""
    chunks = reference_chunks()
    nll = runner.nll(chunks, [0] * len(chunks))
    mean = sum(nll) / len(nll)
    return [-value for value in nll], {"mean_nll": mean, "perplexity": 2.718281828459045**mean}
