"""Reasoning: templated questions answered by likelihood, and a few again with a chain of thought.

Questions come from four generators (arithmetic, sequences of days or months, number patterns,
syllogisms) at a fixed seed, each written as a statement the answer completes (`3 plus 4 is`):
on SmolLM2-135M-Instruct that form scores 0.8 where a bare `Question: ... Answer:` scored 0.3
(chance 0.25) and the chat template scored lower still (docs/health.md). The option with the
lowest mean NLL after the statement is chosen (lm-evaluation-harness's `multiple_choice`,
normalised per token); these items are the suite's scores.

With a chain of thought (chat template when the tokenizer has one), the model writes a numbered
plan and its steps and ends with `The answer is X`; the letter is extracted by regex. A 135M model
is below chance there, so the chain-of-thought accuracy and Xing et al.'s thought-skipping families
of its failures (`no_reasoning`, `no_plan`, `skipped_steps`, `other`) are reported in the details,
not gated.
"""

import random
import re
from typing import Any

from transformers import PreTrainedTokenizerBase

from eval.runners import ProbeRunner

__all__ = ["CHANCE", "COT_ITEMS", "COT_TOKENS", "ITEMS", "SEED", "questions", "score", "thought_skipping"]

SEED = 20251015  # fixed: every version answers the same questions
ITEMS = 48  # questions answered by likelihood (the suite's scores)
COT_ITEMS = 8  # the first of them answered again with a chain of thought (details only)
COT_TOKENS = 48
LETTERS = "ABCD"
CHANCE = 1 / len(LETTERS)  # four options per question
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
KINDS = ("blickets", "daxes", "wugs", "feps", "toves", "glorps")
TRAITS = ("red", "round", "heavy", "loud", "soft", "bright")
NAMES = ("Sam", "Ada", "Lio", "Mira", "Tov", "Nell")
ANSWER = re.compile(r"answer is\s*\(?([ABCD])\b", re.IGNORECASE)


def questions(n: int = ITEMS, seed: int = SEED) -> list[dict[str, Any]]:
    """`{question, statement, options (4), answer (index)}`, drawn round-robin from the generators.

    `statement` is what the right option completes; `question` asks the same for the chain of thought.
    """
    rng = random.Random(seed)
    makers = (_arithmetic, _sequence, _pattern, _syllogism)
    return [makers[i % len(makers)](rng) for i in range(n)]


def score(runner: ProbeRunner, tokenizer: PreTrainedTokenizerBase) -> tuple[list[float], dict[str, Any]]:
    """Per question, 1 if right by likelihood; the chain of thought goes into the details."""
    items = questions()
    texts = [item["statement"] + " " + option for item in items for option in item["options"]]
    starts = [len(item["statement"]) for item in items for _ in item["options"]]
    nll = runner.nll(texts, starts)
    likelihood = [
        float(min(range(4), key=lambda k: nll[4 * i + k]) == item["answer"]) for i, item in enumerate(items)
    ]
    prompts = [_cot_prompt(tokenizer, item) for item in items[:COT_ITEMS]]
    responses = runner.complete(prompts, [COT_TOKENS] * len(prompts))
    chosen = [_extract(response) for response in responses]
    cot = [float(letter == LETTERS[item["answer"]]) for letter, item in zip(chosen, items, strict=False)]
    failures = [response for response, right in zip(responses, cot, strict=True) if not right]
    details = {
        "chance": CHANCE,
        "multiple_choice_accuracy": sum(likelihood) / len(likelihood),
        "by_kind": _by_kind(items, likelihood),
        "chain_of_thought_accuracy": sum(cot) / len(cot),
        "thought_skipping": thought_skipping(failures),
        "examples": [{"question": items[i]["question"], "response": responses[i]} for i in range(3)],
    }
    return likelihood, details


def thought_skipping(responses: list[str]) -> dict[str, int]:
    """Failure families of wrong chain-of-thought answers, by rules (first that applies).

    - `no_reasoning`: fewer than 8 words before the answer (or in all, without one);
    - `no_plan`: reasoning without a numbered plan (`1.` / `1)` lines, or `First,`);
    - `skipped_steps`: a plan of k steps, fewer than k of them carried out (`Step i` or a
      repeated number) before the answer;
    - `other`: a full chain that still ends wrong.
    """
    counts = dict.fromkeys(("no_reasoning", "no_plan", "skipped_steps", "other"), 0)
    for response in responses:
        reasoning = ANSWER.split(response, maxsplit=1)[0]
        planned = re.findall(r"^\s*(\d+)[.)]\s", reasoning, flags=re.MULTILINE)
        if len(reasoning.split()) < 8:
            counts["no_reasoning"] += 1
        elif not planned and not re.search(r"\bfirst,", reasoning, flags=re.IGNORECASE):
            counts["no_plan"] += 1
        elif planned and _steps_done(reasoning, len(set(planned))) < len(set(planned)):
            counts["skipped_steps"] += 1
        else:
            counts["other"] += 1
    return counts


def _by_kind(items: list[dict[str, Any]], scores: list[float]) -> dict[str, float]:
    kinds: dict[str, list[float]] = {}
    for item, value in zip(items, scores, strict=True):
        kinds.setdefault(item["kind"], []).append(value)
    return {kind: sum(values) / len(values) for kind, values in kinds.items()}


def _steps_done(reasoning: str, planned: int) -> int:
    """Planned steps carried out: `Step i` mentions, or numbers listed a second time."""
    done = {int(i) for i in re.findall(r"\bstep\s+(\d+)", reasoning, flags=re.IGNORECASE)}
    numbers = re.findall(r"^\s*(\d+)[.)]\s", reasoning, flags=re.MULTILINE)
    repeated = {int(number) for number in numbers if numbers.count(number) > 1}
    return len({i for i in done | repeated if 1 <= i <= planned})


def _cot_prompt(tokenizer: PreTrainedTokenizerBase, item: dict[str, Any]) -> str:
    options = "\n".join(f"{LETTERS[k]}) {option}" for k, option in enumerate(item["options"]))
    request = (
        f"{item['question']}\n{options}\nFirst write a short numbered plan, then carry out each step, "
        "then finish with 'The answer is' and the letter."
    )
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": request}]
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return f"Question: {request}\nAnswer:"


def _extract(response: str) -> str | None:
    found = ANSWER.search(response)
    return found.group(1).upper() if found else None


def _options(rng: random.Random, right: str, wrong: list[str]) -> dict[str, Any]:
    options = [right, *rng.sample(wrong, 3)]
    rng.shuffle(options)
    return {"options": options, "answer": options.index(right)}


def _arithmetic(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    right = a + b
    wrong = [str(right + d) for d in (-3, -2, -1, 1, 2, 3) if right + d > 0]
    return {
        "kind": "arithmetic",
        "question": f"What is {a} plus {b}?",
        "statement": f"Question: What is {a} plus {b}?\nAnswer: {a} plus {b} is",
        **_options(rng, str(right), wrong),
    }


def _sequence(rng: random.Random) -> dict[str, Any]:
    names = rng.choice((MONTHS, DAYS))
    i = rng.randrange(len(names))
    shown = [names[(i + k) % len(names)] for k in range(3)]
    right = names[(i + 3) % len(names)]
    wrong = [name for name in names if name not in (*shown, right)]
    return {
        "kind": "sequence",
        "question": f"Which comes next: {', '.join(shown)}, ...?",
        "statement": ", ".join(shown) + ",",
        **_options(rng, right, wrong),
    }


def _pattern(rng: random.Random) -> dict[str, Any]:
    start, step = rng.randint(1, 20), rng.randint(2, 5)
    shown = [str(start + step * k) for k in range(4)]
    right = start + 4 * step
    wrong = list(dict.fromkeys(str(right + d) for d in (-2, -1, 1, 2, step, 2 * step) if right + d > 0))
    return {
        "kind": "pattern",
        "question": f"Which number comes next: {', '.join(shown)}, ...?",
        "statement": ", ".join(shown) + ",",
        **_options(rng, str(right), wrong),
    }


def _syllogism(rng: random.Random) -> dict[str, Any]:
    kind, trait, name = rng.choice(KINDS), rng.choice(TRAITS), rng.choice(NAMES)
    facts = f"All {kind} are {trait}. {name} is one of the {kind}."
    wrong = [other for other in TRAITS if other != trait]
    return {
        "kind": "syllogism",
        "question": f"{facts} What is {name}?",
        "statement": f"{facts} So {name} is",
        **_options(rng, trait, wrong),
    }
