"""Long context, RULER-style and generated offline (docs/health.md): three tasks at
each configured length, answered by greedy generation and scored by string match.

- `needle`: a key-value sentence hidden at some depth of repeated filler; the value must come back;
- `variable_tracking`: `VAR X = <number>` and, later, `VAR Y = VAR X`; the value of Y must come back;
- `common_words`: a list in which a few words recur often; the three most common.

The lengths (60 and 150 words) and the one-step variable chain are what SmolLM2-135M-Instruct
answers above chance: at 120 and 300 words with a four-variable chain, it tracked no variable.
"""

import random
from typing import Any

from transformers import PreTrainedTokenizerBase

from eval.runners import ProbeRunner

__all__ = ["CHANCE", "LENGTHS", "PER_TASK", "SEED", "score", "tasks"]

SEED = 4096
LENGTHS = (60, 150)  # words per context
PER_TASK = 8  # items per task and length
ANSWER_TOKENS = 12
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
# Common English words, all in the vocabulary of the project's tiny base models.
WORDS = (
    "red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "brown", "pink",
    "silver", "gold", "teal", "violet", "crimson", "cat", "dog", "parrot", "rabbit", "goat", "owl",
    "tortoise", "hamster", "horse", "ferret", "canary", "lizard", "pony", "goldfish", "hedgehog", "duck",
)  # fmt: skip
# A model that ignores the context: no 5- or 6-digit number by chance; three of the listed words
# named at random find on average 3 / len(WORDS) of the common ones.
CHANCE = (0 + 0 + 3 / len(WORDS)) / 3


def tasks(seed: int = SEED, lengths: tuple[int, ...] = LENGTHS) -> list[dict[str, Any]]:
    """`{task, length, prompt, expected (strings)}` for every task, length and item."""
    rng = random.Random(seed)
    items = []
    for length in lengths:
        for _ in range(PER_TASK):
            items += [_needle(rng, length), _variables(rng, length), _common_words(rng, length)]
    return items


def score(runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase) -> tuple[list[float], dict[str, Any]]:
    """Per item, the share of its expected strings in the greedy answer."""
    items = tasks()
    answers = runner.complete([item["prompt"] for item in items], [ANSWER_TOKENS] * len(items))
    scores = [
        sum(expected in answer for expected in item["expected"]) / len(item["expected"])
        for item, answer in zip(items, answers, strict=True)
    ]
    by_task: dict[str, list[float]] = {}
    for item, value in zip(items, scores, strict=True):
        by_task.setdefault(f"{item['task']}@{item['length']}", []).append(value)
    accuracy = {key: sum(values) / len(values) for key, values in sorted(by_task.items())}
    return scores, {"chance": CHANCE, "accuracy": accuracy}


def _haystack(rng: random.Random, length: int) -> list[str]:
    sentences = [sentence.strip() + "." for sentence in FILLER.split(".") if sentence.strip()]
    out: list[str] = []
    while sum(len(sentence.split()) for sentence in out) < length:
        out.append(rng.choice(sentences))
    return out


def _needle(rng: random.Random, length: int) -> dict[str, Any]:
    key, value = rng.choice(WORDS), str(rng.randint(100000, 999999))
    hay = _haystack(rng, length)
    hay.insert(rng.randrange(len(hay) + 1), f"The special magic number for {key} is {value}.")
    prompt = (
        " ".join(hay) + f"\nWhat is the special magic number for {key}? The special magic number for {key} is"
    )
    return {"task": "needle", "length": length, "prompt": prompt, "expected": [value]}


def _variables(rng: random.Random, length: int) -> dict[str, Any]:
    value = str(rng.randint(10000, 99999))
    first, second = rng.sample(
        [f"{a}{b}" for a in "ABCDEFGHJKLMNPQRSTUVWXYZ" for b in "ABCDEFGHJKLMNPQRSTUVWXYZ"], 2
    )
    chain = [f"VAR {first} = {value}.", f"VAR {second} = VAR {first}."]
    hay = _haystack(rng, length)
    depths = sorted(rng.sample(range(len(hay) + 1), len(chain)))
    for inserted, (statement, depth) in enumerate(zip(chain, depths, strict=True)):
        hay.insert(depth + inserted, statement)  # in chain order, the second after the first
    prompt = " ".join(hay) + f"\nWhat is the value of VAR {second}? Answer: VAR {second} ="
    return {"task": "variable_tracking", "length": length, "prompt": prompt, "expected": [value]}


def _common_words(rng: random.Random, length: int) -> dict[str, Any]:
    common, size = rng.sample(WORDS, 3), length // 4  # a listed word and its comma cost several tokens
    rare = [word for word in WORDS if word not in common]
    repeats = max(3, size // 8)  # each common word fills an eighth of the list, a rare one far less
    rng.shuffle(rare)
    others = (rare * size)[: size - 3 * repeats]  # each rare word at most ceil(slots / len(rare)) times
    listed = common * repeats + others
    rng.shuffle(listed)
    prompt = (
        "Here is a list of words: "
        + ", ".join(listed)
        + ".\nWhat are the three most common words in the list? Answer: the three most common words are"
    )
    return {"task": "common_words", "length": length, "prompt": prompt, "expected": common}
